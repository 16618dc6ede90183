import type { Clock } from "../../lib/infra/retry.js";

/** Time that moves only when the test says: a wait ends at the next `advance()`. */
export class ManualClock implements Clock {
  time = 0;
  #waits: Array<{ at: number; end: () => void }> = [];

  now(): number {
    return this.time;
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const ended = await new Promise<boolean>((resolve) => {
      const wait = { at: this.time + ms, end: () => resolve(true) };
      this.#waits.push(wait);
      signal?.addEventListener(
        "abort",
        () => {
          this.#waits = this.#waits.filter((w) => w !== wait);
          resolve(false);
        },
        { once: true },
      );
    });
    // Aborted first: throwIfAborted() throws the signal's reason as it is, as Clock.sleep rejects.
    if (!ended) signal?.throwIfAborted();
  }

  get waiting(): number {
    return this.#waits.length;
  }

  /** Ends every wait begun so far, moving the time to the latest of their ends. */
  advance(): void {
    const waits = this.#waits;
    this.#waits = [];
    for (const w of waits) {
      this.time = Math.max(this.time, w.at);
      w.end();
    }
  }
}
