import { BudgetExhaustedError } from "../errors.js";

/**
 * Room left for a function's answer to travel back through the watchdog and the gateway: a tenth
 * of the caller's timeout, at most half a second (a garbage-collection pause on a loaded node).
 */
const MARGIN_MS = 500;

/**
 * The time one function invocation may take, shared by everything it waits for (predict: the
 * score calls and the publishes; health: the store writes and the publishes). The caller's timeout
 * (X-Timeout-Ms, sent by our MQTT connector) lowers the function's own budget, less a margin so
 * that the answer gets back before the caller stops waiting; callers that send no header (the
 * official connector, faas-cli invoke) get the function's own budget.
 *
 * Whatever the number of waits (health waits once per fan of an invocation), the deadline holds
 * one timer and one abort listener: a listener per wait drew Node's leak warning at 11 fans.
 */
export class Deadline {
  /** Aborts when the budget runs out. */
  readonly signal: AbortSignal;
  readonly budgetMs: number;
  readonly #end: number;
  /** Where the budget comes from, for error messages. */
  readonly #source: string;
  /** Whose time it is ("predict", "health"), for error messages. */
  readonly #owner: string;
  /** The waits under way, each failed when the budget runs out. */
  readonly #waits = new Set<(error: Error) => void>();
  #listening = false;

  constructor(budgetMs: number, source: string, owner = "the invocation") {
    this.budgetMs = Math.max(0, Math.floor(budgetMs));
    this.#end = Date.now() + this.budgetMs;
    this.signal = AbortSignal.timeout(this.budgetMs);
    this.#source = source;
    this.#owner = owner;
  }

  /**
   * The budget from the caller's X-Timeout-Ms (ignored unless a positive whole number) and the
   * function's own, `ownMs` from the setting `ownSetting` (named in error messages).
   */
  static forCall(
    header: string | string[] | undefined,
    ownMs: number,
    owner = "the invocation",
    ownSetting = "its own budget",
  ): Deadline {
    const callerMs = typeof header === "string" && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
    const own = new Deadline(ownMs, `${ownSetting} ${ownMs} ms`, owner);
    if (callerMs === undefined || callerMs <= 0) return own;
    const usable = callerMs - Math.min(MARGIN_MS, Math.round(callerMs / 10));
    return usable < ownMs ? new Deadline(usable, `X-Timeout-Ms ${callerMs} ms less a margin`, owner) : own;
  }

  /** What is left of the budget, in ms (0 once it ran out). */
  get remainingMs(): number {
    return Math.max(0, this.#end - Date.now());
  }

  /** Throws a BudgetExhaustedError (503) once the time is up: checked before work is started. */
  check(waitingFor: string): void {
    if (this.signal.aborted || Date.now() >= this.#end) throw this.#exhausted(waitingFor);
  }

  /**
   * `work`, or a BudgetExhaustedError naming what we were waiting for once the budget runs out.
   * The work itself goes on unless it also listens to `signal`.
   */
  async wait<T>(work: Promise<T>, waitingFor: string): Promise<T> {
    this.check(waitingFor);
    let expire = (_: Error) => {};
    const expired = new Promise<never>((_, reject) => (expire = reject));
    this.#listen();
    this.#waits.add(expire);
    try {
      return await Promise.race([work, expired]);
    } catch (error) {
      throw this.signal.aborted ? this.#exhausted(waitingFor) : error;
    } finally {
      // Removed at once: a wait kept until the budget ends would keep its work's result alive too.
      this.#waits.delete(expire);
    }
  }

  /** One listener for every wait of the invocation, added at the first. */
  #listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    this.signal.addEventListener(
      "abort",
      () => {
        for (const expire of this.#waits) expire(this.signal.reason as Error);
      },
      { once: true },
    );
  }

  #exhausted(waitingFor: string): BudgetExhaustedError {
    return new BudgetExhaustedError(
      `${this.#owner}'s time ran out (${this.#source}) waiting for ${waitingFor}; try again later`,
    );
  }
}
