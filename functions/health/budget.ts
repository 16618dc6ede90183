/**
 * The time one invocation may take, for its store writes and its publishes together: the caller's
 * X-Timeout-Ms (sent by our connector) less a margin for the answer to travel back, or
 * HEALTH_BUDGET_MS for callers that send none.
 *
 * One timer per invocation, whatever the number of fans in it: every wait races the same promise
 * (an AbortSignal with a listener per fan drew Node's leak warning at 11 fans).
 */
export class Budget {
  readonly ms: number;
  readonly #deadline: number;
  readonly #expired: Promise<never>;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.ms = Math.max(0, Math.floor(ms));
    this.#deadline = Date.now() + this.ms;
    this.#expired = new Promise<never>((_, reject) => {
      this.#timer = setTimeout(() => reject(new BudgetExhaustedError("")), this.ms);
    });
    this.#expired.catch(() => {});
  }

  static forCall(header: string | string[] | undefined, ownMs: number): Budget {
    const callerMs = typeof header === "string" && /^\d+$/.test(header.trim()) ? Number(header) : 0;
    // A tenth of the caller's timeout, at most half a second: room for a garbage-collection pause.
    const usable = callerMs - Math.min(500, Math.round(callerMs / 10));
    return new Budget(callerMs > 0 && usable < ownMs ? usable : ownMs);
  }

  /** What is left of the budget, in ms (0 once it ran out). */
  get remainingMs(): number {
    return Math.max(0, this.#deadline - Date.now());
  }

  /** Throws a BudgetExhaustedError (503) once the time is up: checked before work is started. */
  check(waitingFor: string): void {
    if (Date.now() >= this.#deadline) throw this.#exhausted(waitingFor);
  }

  /** `work`, or a BudgetExhaustedError (503) naming what we waited for once the time is up. The work itself goes on. */
  async wait<T>(work: Promise<T>, waitingFor: string): Promise<T> {
    this.check(waitingFor);
    try {
      return await Promise.race([work, this.#expired]);
    } catch (error) {
      throw error instanceof BudgetExhaustedError ? this.#exhausted(waitingFor) : error;
    }
  }

  /** Stops the timer once the invocation has its answer. */
  end(): void {
    clearTimeout(this.#timer);
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
