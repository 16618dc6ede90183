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
    const granted = await new Promise<boolean>((resolve) => {
      const grant = () => {
        signal.removeEventListener("abort", aborted);
        resolve(true);
      };
      const aborted = () => {
        this.#waiting = this.#waiting.filter((w) => w !== grant);
        resolve(false);
      };
      this.#waiting.push(grant);
      signal.addEventListener("abort", aborted, { once: true });
    });
    // Not granted: aborted, and this throws the signal's reason as it is.
    if (!granted) signal.throwIfAborted();
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
