/**
 * The tests' one way to wait for an outcome that no event announces (a counter reaching a value, a
 * metric, a status, a row in a database): ask again at a pace until it holds or a deadline passes.
 * On a ManualClock, a check may move the clock itself (`clock.advance()`) before it looks.
 */
export interface PollOptions {
  /** Give up, naming what was waited for, after this long. @default 20_000 */
  timeoutMs?: number;
  /** Between two checks: the poll's pace, not a measure of anything. @default 20 */
  paceMs?: number;
  /**
   * What a check that throws (or rejects) means. "retry" (the default): not yet, as when a server
   * is not listening yet; the last error is named if time runs out. "fail": the wait ends with
   * that error at once, for a check whose error means the outcome will never come.
   */
  onError?: "retry" | "fail";
}

/**
 * Resolves once `check` returns true; rejects, naming `what`, if it has not within the timeout
 * (a number is the timeout in ms).
 */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  options: number | PollOptions = {},
): Promise<void> {
  await eventuallyValue(what, check, (done) => done, options);
}

/**
 * Resolves with `probe`'s value once `done` accepts it; rejects, naming `what` and the last value
 * (or error), if none was accepted within the timeout.
 */
export async function eventuallyValue<T>(
  what: string,
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  options: number | PollOptions = {},
): Promise<T> {
  const {
    timeoutMs = 20_000,
    paceMs = 20,
    onError = "retry",
  } = typeof options === "number" ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    try {
      const value = await probe();
      if (done(value)) return value;
      last = typeof value === "boolean" ? undefined : `the last value was ${describe(value)}`;
    } catch (error) {
      if (onError === "fail")
        throw new Error(`while waiting for ${what}: ${(error as Error).message}`, { cause: error });
      last = `the last check failed: ${(error as Error).message}`;
    }
    if (Date.now() > deadline)
      throw new Error(`not within ${timeoutMs} ms: ${what}${last === undefined ? "" : ` (${last})`}`);
    await new Promise((resolve) => setTimeout(resolve, paceMs));
  }
}

function describe(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
