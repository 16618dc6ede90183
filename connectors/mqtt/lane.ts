/**
 * One function's share of the connector's concurrency. `limit` follows the function's replicas
 * (max_inflight per replica); two counts are kept against it:
 * - batches taken and not finished (sent, waiting out a retry, or having their answer published):
 *   no new batch is taken while these are at the limit, so that messages wait in their queue and
 *   fill the next batch instead of leaving in small ones;
 * - attempts open (HTTP requests awaiting an answer): every attempt, first or retry, waits for a
 *   permit. When the limit falls (the function was scaled down), batches already taken may
 *   outnumber it; their retries then go no more than `limit` at a time, in order, instead of all
 *   at once at the replicas that are left.
 * `ready` holds the function's queues that have messages to send, in round-robin order.
 */
export class Lane<Q> {
  readonly ready: Q[] = [];
  #limit: number;
  #batches = 0;
  #attempts = 0;
  #completed = 0;
  #waiting: Array<() => void> = [];

  constructor(
    readonly name: string,
    limit: number,
  ) {
    this.#limit = limit;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Batches taken and not finished. */
  get batches(): number {
    return this.#batches;
  }

  /** Attempts finished so far, whatever their outcome. */
  get completed(): number {
    return this.#completed;
  }

  /** Whether a new batch may be taken. */
  get hasRoom(): boolean {
    return this.#batches < this.#limit;
  }

  /** Sets the limit; true when it rose (the caller then takes more batches). */
  setLimit(limit: number): boolean {
    const rose = limit > this.#limit;
    this.#limit = limit;
    this.#grant();
    return rose;
  }

  batchTaken(): void {
    this.#batches++;
  }

  batchFinished(): void {
    this.#batches--;
  }

  /** Resolves when an attempt may be sent; rejects with the signal's reason once it is aborted. */
  async acquire(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.#attempts < this.#limit && this.#waiting.length === 0) {
      this.#attempts++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const granted = () => {
        signal.removeEventListener("abort", aborted);
        resolve();
      };
      const aborted = () => {
        this.#waiting = this.#waiting.filter((w) => w !== granted);
        reject(signal.reason);
      };
      this.#waiting.push(granted);
      signal.addEventListener("abort", aborted, { once: true });
    });
  }

  release(): void {
    this.#attempts--;
    this.#completed++;
    this.#grant();
  }

  #grant(): void {
    while (this.#attempts < this.#limit && this.#waiting.length > 0) {
      this.#attempts++;
      (this.#waiting.shift() as () => void)();
    }
  }
}
