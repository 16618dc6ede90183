import { sleep } from "./stats.js";

/**
 * Waits until `complete()` holds (checked every 250 ms) or `capMs` passed, saying how it goes every
 * 10 s; resolves with how long it took, or null if it never held. Then waits `settleMs` more, so
 * that a late repeat (a redelivery after JetStream's ack wait, a re-notification after a resend)
 * is counted too.
 */
export async function drain(
  complete: () => boolean,
  options: { capMs: number; settleMs: number; say: (line: string) => void; status: () => string },
): Promise<number | null> {
  const started = Date.now();
  let said = started;
  let tookMs: number | null = null;
  while (Date.now() - started < options.capMs) {
    if (complete()) {
      tookMs = Date.now() - started;
      break;
    }
    if (Date.now() - said >= 10_000) {
      said = Date.now();
      options.say(`waiting: ${options.status()}`);
    }
    await sleep(250);
  }
  if (tookMs === null) options.say(`not everything arrived within ${options.capMs / 1000} s: ${options.status()}`);
  await sleep(options.settleMs);
  return tookMs;
}
