/** Timers the batcher uses; tests pass fake ones. */
export interface BatchTimers {
  schedule(callback: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
}

type RealHandle = { immediate: NodeJS.Immediate } | { timeout: NodeJS.Timeout };

export const realTimers: BatchTimers = {
  // A wait of 0 still lets every request already read from the sockets join the batch.
  schedule: (callback, ms): RealHandle =>
    ms <= 0 ? { immediate: setImmediate(callback) } : { timeout: setTimeout(callback, ms) },
  // clearImmediate on a Timeout corrupts Node's count of live handles (the process may exit with
  // work pending), so each kind is cleared by its own function.
  cancel: (handle) => {
    const h = handle as RealHandle;
    if ("immediate" in h) clearImmediate(h.immediate);
    else clearTimeout(h.timeout);
  },
};

export interface BatcherOptions {
  /** Flush as soon as this many items wait. 1 turns batching off. @default 256 */
  maxBatchSize?: number;
  /** Longest time the first item of a batch waits for company, in ms. @default 1 */
  maxWaitMs?: number;
  timers?: BatchTimers;
}

export const DEFAULT_MAX_BATCH_SIZE = 256;
export const DEFAULT_MAX_WAIT_MS = 1;

interface Pending<In, Out> {
  item: In;
  resolve: (value: Out) => void;
  reject: (reason: unknown) => void;
}

/**
 * Dynamic batching: concurrent `submit` calls are coalesced into one call of `run`, so a burst of
 * single-reading requests costs one tensor call instead of one each. A batch runs when it is full
 * or when its first item has waited `maxWaitMs`, whichever comes first.
 */
export class DynamicBatcher<In, Out> {
  readonly #run: (items: In[]) => Out[];
  readonly #maxBatchSize: number;
  readonly #maxWaitMs: number;
  readonly #timers: BatchTimers;
  #pending: Pending<In, Out>[] = [];
  #timer: unknown = undefined;

  constructor(run: (items: In[]) => Out[], options: BatcherOptions = {}) {
    this.#run = run;
    this.#maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.#maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    this.#timers = options.timers ?? realTimers;
    if (!Number.isInteger(this.#maxBatchSize) || this.#maxBatchSize < 1) {
      throw new RangeError(`maxBatchSize must be a whole number >= 1, not ${this.#maxBatchSize}`);
    }
    if (!Number.isFinite(this.#maxWaitMs) || this.#maxWaitMs < 0) {
      throw new RangeError(`maxWaitMs must be a number >= 0, not ${this.#maxWaitMs}`);
    }
  }

  get pending(): number {
    return this.#pending.length;
  }

  submit(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (this.#pending.length >= this.#maxBatchSize) this.flush();
      else if (this.#timer === undefined) this.#timer = this.#timers.schedule(() => this.flush(), this.#maxWaitMs);
    });
  }

  /** Runs whatever is waiting now. */
  flush(): void {
    if (this.#timer !== undefined) {
      this.#timers.cancel(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    let results: Out[];
    try {
      results = this.#run(batch.map((p) => p.item));
      if (results.length !== batch.length) {
        throw new Error(`batch function returned ${results.length} results for ${batch.length} items`);
      }
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i] as Out));
  }
}
