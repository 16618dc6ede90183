/**
 * The time one invocation may take, for its store writes and its publishes together: the caller's
 * X-Timeout-Ms (sent by our connector) less a margin for the answer to travel back, or
 * HEALTH_BUDGET_MS for callers that send none.
 */
export class Budget {
  /** Aborts when the budget runs out. */
  readonly signal: AbortSignal;
  readonly ms: number;

  constructor(ms: number) {
    this.ms = Math.max(0, Math.floor(ms));
    this.signal = AbortSignal.timeout(this.ms);
  }

  static forCall(header: string | string[] | undefined, ownMs: number): Budget {
    const callerMs = typeof header === "string" && /^\d+$/.test(header.trim()) ? Number(header) : 0;
    // A tenth of the caller's timeout, at most half a second: room for a garbage-collection pause.
    const usable = callerMs - Math.min(500, Math.round(callerMs / 10));
    return new Budget(callerMs > 0 && usable < ownMs ? usable : ownMs);
  }

  /** `work`, or a BudgetExhaustedError (503) naming what we waited for once the time is up. */
  async wait<T>(work: Promise<T>, waitingFor: string): Promise<T> {
    if (this.signal.aborted) throw this.#exhausted(waitingFor);
    let onAbort = () => {};
    const exhausted = new Promise<never>((_, reject) => (onAbort = () => reject(this.#exhausted(waitingFor))));
    this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await Promise.race([work, exhausted]);
    } finally {
      this.signal.removeEventListener("abort", onAbort);
    }
  }

  #exhausted(waitingFor: string): BudgetExhaustedError {
    return new BudgetExhaustedError(`health's time (${this.ms} ms) ran out waiting for ${waitingFor}; try again later`);
  }
}

/** The invocation's time ran out: a 503, so that the caller tries again later. */
export class BudgetExhaustedError extends Error {
  override readonly name = "BudgetExhaustedError";
  readonly status = 503;
}
