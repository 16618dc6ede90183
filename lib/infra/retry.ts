import { setTimeout as sleepFor } from "node:timers/promises";

/**
 * The one retry rule of the project: what is worth retrying, how long to wait between attempts,
 * and when to give up. `isRetryableStatus` is what every HTTP client here counts as a passing
 * outage (the connector's invocations, which also wait out 401/403/404; predict's score call,
 * which answers 503 for it so that the connector retries); `retry` and `backoffDelay` are how the
 * connector (batches, replies, circuit probes), the InfluxDB writer (whose line writer tells bad
 * data apart from outages itself) and the local gateway's restarts wait. Time and randomness are
 * injected so that tests run on a fake clock.
 */

/** Where retries get the time and how they wait; tests pass a fake one. */
export interface Clock {
  /** Milliseconds, on the same scale as `RetryOptions.deadline`. */
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  // timers/promises rejects with its own AbortError; the contract is the signal's reason, which
  // throwIfAborted() throws as it is.
  sleep: (ms, signal) =>
    sleepFor(ms, undefined, signal === undefined ? undefined : { signal }).catch((error: unknown) => {
      signal?.throwIfAborted();
      throw error;
    }),
};

export interface Backoff {
  /** Delay before the first retry, doubled for each further one. */
  baseMs: number;
  /** Longest un-jittered delay. @default 30_000 */
  capMs?: number;
  /**
   * "half" spreads each delay over ±50% (so the longest wait is 1.5 × capMs); "full" over
   * [0, delay), for many clients retrying against one server. Either way clients that failed
   * together do not retry together. @default "half"
   */
  jitter?: "half" | "full";
}

/** Delay before retry `retry` (1, 2, …); `random` returns [0, 1). */
export function backoffDelay(backoff: Backoff, retry: number, random: () => number = Math.random): number {
  const delay = Math.min(backoff.baseMs * 2 ** (retry - 1), backoff.capMs ?? 30_000);
  return backoff.jitter === "full" ? delay * random() : delay * (0.5 + random());
}

/** 429 (too many requests), 408 (request timeout) and 5xx are passing states of the server. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || status >= 500;
}

// Node and undici codes of a connection that could not be made or broke off.
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

/**
 * Worth retrying: HTTP 429/408/5xx, a timeout or an attempt aborted by its deadline, a connection
 * refused, reset or not resolved (looked for along the `cause` chain, where fetch puts it), and
 * any error that says so with `retryable: true`. Everything else (another 4xx: the request itself
 * is bad; a bug) is a definitive rejection: retrying would give the same answer.
 */
export function isRetryable(error: unknown): boolean {
  for (
    let e: unknown = error, depth = 0;
    e instanceof Object && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const { retryable, status, code, name } = e as {
      retryable?: unknown;
      status?: unknown;
      code?: unknown;
      name?: unknown;
    };
    if (typeof retryable === "boolean") return retryable;
    if (typeof status === "number") return isRetryableStatus(status);
    if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
    if (name === "TimeoutError" || name === "AbortError") return true;
  }
  return false;
}

export interface RetryOptions extends Backoff {
  /** Most attempts in all, the first included; unlimited when absent. */
  attempts?: number;
  /** Clock time after which no attempt starts: a retry that would wait past it is not made. */
  deadline?: number;
  /** Ends a wait at once; `retry` then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Which errors to retry. @default isRetryable */
  retryable?: (error: unknown) => boolean;
  /** Told before each wait, e.g. to log the first failure or count retries. */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  clock?: Clock;
  random?: () => number;
}

/**
 * Runs `attempt` until it resolves, retrying what `retryable` accepts with capped, jittered
 * exponential backoff. Rejects with the last error when it is not retryable, the attempts are used
 * up or the deadline would pass; with the signal's reason when the signal aborts.
 */
export async function retry<T>(attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const clock = options.clock ?? systemClock;
  const retryable = options.retryable ?? isRetryable;
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      options.signal?.throwIfAborted();
      if (!retryable(error) || (options.attempts !== undefined && n >= options.attempts)) throw error;
      const delay = backoffDelay(options, n, options.random);
      if (options.deadline !== undefined && clock.now() + delay > options.deadline) throw error;
      options.onRetry?.(error, n, delay);
      await clock.sleep(delay, options.signal);
    }
  }
}
