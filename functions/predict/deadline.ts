/**
 * Room left for predict's answer to travel back through the watchdog and the gateway: a tenth of
 * the caller's timeout, at most half a second (a garbage-collection pause on a loaded node).
 */
const MARGIN_MS = 500;

/**
 * The time one invocation may take, shared by the score call and the publishes. The caller's
 * timeout (X-Timeout-Ms, sent by our MQTT connector) lowers predict's own budget, less a margin so
 * that predict's answer gets back before the caller stops waiting; callers that send no header
 * (the official connector, faas-cli invoke) get PREDICT_BUDGET_MS.
 */
export class Deadline {
  /** Aborts when the budget runs out. */
  readonly signal: AbortSignal;
  readonly budgetMs: number;
  /** Where the budget comes from, for error messages. */
  readonly #source: string;

  constructor(budgetMs: number, source: string) {
    this.budgetMs = Math.max(0, Math.floor(budgetMs));
    this.signal = AbortSignal.timeout(this.budgetMs);
    this.#source = source;
  }

  /** Budget from the caller's X-Timeout-Ms (ignored unless a positive whole number) and predict's own. */
  static forCall(header: string | string[] | undefined, ownBudgetMs: number): Deadline {
    const callerMs = typeof header === "string" && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
    if (callerMs === undefined || callerMs <= 0) return new Deadline(ownBudgetMs, `PREDICT_BUDGET_MS ${ownBudgetMs} ms`);
    const usable = callerMs - Math.min(MARGIN_MS, Math.round(callerMs / 10));
    return usable < ownBudgetMs ? new Deadline(usable, `X-Timeout-Ms ${callerMs} ms less a margin`) : new Deadline(ownBudgetMs, `PREDICT_BUDGET_MS ${ownBudgetMs} ms`);
  }

  /**
   * `work`, or a BudgetExhaustedError naming what we were waiting for once the budget runs out.
   * The work itself goes on unless it also listens to `signal`.
   */
  async wait<T>(work: Promise<T>, waitingFor: string): Promise<T> {
    let onAbort = () => {};
    const exhausted = new Promise<never>((_, reject) => {
      onAbort = () => reject(this.#exhausted(waitingFor));
    });
    if (this.signal.aborted) onAbort();
    else this.signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await Promise.race([work, exhausted]);
    } catch (error) {
      throw this.signal.aborted ? this.#exhausted(waitingFor) : error;
    } finally {
      this.signal.removeEventListener("abort", onAbort);
    }
  }

  #exhausted(waitingFor: string): BudgetExhaustedError {
    return new BudgetExhaustedError(`predict's time ran out (${this.#source}) waiting for ${waitingFor}; try again later`);
  }
}

/** The invocation's budget ran out: a 503, so that the caller tries again later. */
export class BudgetExhaustedError extends Error {
  override readonly name = "BudgetExhaustedError";
  readonly status = 503;
}
