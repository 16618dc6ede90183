import type { Clock } from "../../lib/infra/retry.js";

/** Time that moves only when the test says: a wait ends at the next `advance()`. */
export class ManualClock implements Clock {
  time = 0;
  #waits: Array<{ at: number; end: () => void }> = [];

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted === true) return reject(signal.reason);
      const wait = { at: this.time + ms, end: resolve };
      this.#waits.push(wait);
      signal?.addEventListener(
        "abort",
        () => {
          this.#waits = this.#waits.filter((w) => w !== wait);
          reject(signal.reason);
        },
        { once: true },
      );
    });
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
