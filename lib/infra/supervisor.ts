import type { Logger } from "./log.js";
import { backoffDelay, systemClock, type Clock } from "./retry.js";
import { ServiceBase, type Service } from "./service.js";

export interface SupervisorOptions<S extends Service> {
  /** Makes a fresh instance of the service: the first, and one after each time it ended on its own. */
  create: () => S;
  log: Logger;
  /** Readable lines for the console: that it stopped, and when it is back. */
  say?: (line: string) => void;
  /** Time for the backoff; tests pass a fake one. */
  clock?: Clock;
  /** First wait before a restart, doubled each failure in a row up to `capMs`. @default 500 */
  baseMs?: number;
  /** @default 30000 */
  capMs?: number;
}

/**
 * Keeps a service running: when it ends on its own (its `closed` resolves with an error, as a
 * nats-server that was killed does), a fresh instance is started after a backoff that doubles
 * with each failure in a row and starts again from the first wait once an instance has run for a
 * minute. drain() and close() reach the instance running then, and end the supervision.
 */
export class Supervisor<S extends Service> extends ServiceBase {
  readonly name: string;
  #current: S;
  #restarts = 0;
  #failuresInARow = 0;
  readonly #stopped = new AbortController();
  readonly #clock: Clock;

  constructor(private readonly options: SupervisorOptions<S>) {
    super();
    this.#current = options.create();
    this.name = this.#current.name;
    this.#clock = options.clock ?? systemClock;
  }

  /** The instance running now (a restart replaces it). */
  get current(): S {
    return this.#current;
  }

  /** How many times the service was started again. */
  get restarts(): number {
    return this.#restarts;
  }

  protected async onStart(): Promise<void> {
    await this.#current.start();
    this.#watch(this.#current);
  }

  protected override async onDrain(): Promise<void> {
    this.#stopped.abort();
    await this.#current.drain();
  }

  protected async onClose(): Promise<void> {
    this.#stopped.abort();
    await this.#current.close();
  }

  #watch(instance: S): void {
    const startedAt = this.#clock.now();
    void instance.closed.then((error) => {
      if (error === undefined || this.stopping || instance !== this.#current) return;
      // An instance that ran for a while was healthy: its failure starts the backoff afresh.
      if (this.#clock.now() - startedAt > 60_000) this.#failuresInARow = 0;
      // What the ended instance still holds (a port, a socket) is let go before the next one starts.
      void instance
        .close()
        .catch(() => {})
        .then(() => this.#restart(error));
    });
  }

  async #restart(error: Error): Promise<void> {
    for (;;) {
      this.#failuresInARow++;
      this.#restarts++;
      const delay = Math.round(
        backoffDelay({ baseMs: this.options.baseMs ?? 500, capMs: this.options.capMs ?? 30_000 }, this.#failuresInARow),
      );
      const { log, say } = this.options;
      log.warn(
        {
          event: "service_restarting",
          service: this.name,
          err: error.message,
          delayMs: delay,
          restart: this.#restarts,
        },
        `${this.name} stopped: ${error.message}; restarting in ${delay} ms`,
      );
      say?.(`${this.name} stopped: ${error.message}; restarting in ${delay} ms (restart ${this.#restarts})`);
      try {
        await this.#clock.sleep(delay, this.#stopped.signal);
      } catch {
        return; // stopping
      }
      const instance = this.options.create();
      this.#current = instance;
      try {
        await instance.start();
      } catch (failure) {
        error = failure instanceof Error ? failure : new Error(String(failure));
        if (this.stopping) return;
        continue;
      }
      if (this.stopping) {
        await instance.close();
        return;
      }
      log.info({ event: "service_restarted", service: this.name, restart: this.#restarts }, `${this.name} is back`);
      say?.(`${this.name} is back (restart ${this.#restarts})`);
      this.#watch(instance);
      return;
    }
  }
}
