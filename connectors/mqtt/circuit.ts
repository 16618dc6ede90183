import { backoffDelay, type Backoff, type Clock } from "../../lib/infra/retry.js";

export interface CircuitOptions {
  /** Consecutive failed attempts that open the circuit. */
  threshold: number;
  /** Waits between probes while open: the n-th consecutive failure waits backoffDelay(n). */
  backoff: Backoff;
  clock: Clock;
  /** Ends every wait (drain): waiting callers then reject with the signal's reason. */
  signal: AbortSignal;
  /** Told when the circuit opens (with why) and when it closes again. */
  onChange(open: boolean, reason: string): void;
}

/**
 * One function's circuit breaker. Closed, every batch goes. After `threshold` failed attempts in
 * a row (connection refused, timeout, 429, 5xx) it opens: no batch is sent, the connector stops
 * taking messages, and what it holds waits unacknowledged. After a backoff it lets one batch
 * through (half-open): an answer closes it and every waiting batch goes; another failure opens it
 * again for longer, up to the backoff's cap. An outage therefore costs one request per probe,
 * not `max_inflight` requests per retry, and never turns a message into a dead letter.
 */
export class Circuit {
  #state: "closed" | "open" | "half-open" = "closed";
  #failures = 0;
  #probing = false;
  #reason = "";
  #waiters: Array<() => void> = [];

  constructor(private readonly options: CircuitOptions) {}

  get open(): boolean {
    return this.#state !== "closed";
  }

  /** Resolves when the caller may send: at once while closed, else when it is the probe or the circuit closed. */
  async admit(): Promise<void> {
    while (this.#state !== "closed") {
      this.options.signal.throwIfAborted();
      if (this.#state === "half-open" && !this.#probing) {
        this.#probing = true;
        return;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The function answered (2xx, or a rejection of the message: either way it is up). */
  succeeded(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#wake();
    this.options.onChange(false, this.#reason);
  }

  /** An attempt failed for a reason worth retrying. */
  failed(reason: string): void {
    this.#failures++;
    this.#probing = false;
    this.#reason = reason;
    if (this.#state === "open" || (this.#state === "closed" && this.#failures < this.options.threshold)) return;
    const wasClosed = this.#state === "closed";
    this.#state = "open";
    if (wasClosed) this.options.onChange(true, reason);
    this.options.clock.sleep(backoffDelay(this.options.backoff, this.#failures), this.options.signal).then(
      () => {
        // Unless an attempt sent before it opened has closed it meanwhile.
        if (this.#state === "open") this.#state = "half-open";
        this.#wake();
      },
      () => this.#wake(), // aborted: waiters see the signal and give up
    );
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
