import { backoffDelay } from "../lib/infra/retry.js";

/**
 * The wait before the `failures`-th retry of something only NATS can do (connect, open the
 * streams, read a consumer, store a dead letter): 0.5 s doubling to 10 s, jittered. Short enough
 * that an outage's end is noticed soon, long enough not to flood a NATS that is struggling.
 */
export function natsRetryDelay(failures: number): number {
  return backoffDelay({ baseMs: 500, capMs: 10_000 }, Math.min(failures, 10));
}
