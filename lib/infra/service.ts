/**
 * The one lifecycle every long-lived part of fanwatch has (the connector, the InfluxDB writer, the
 * local gateway, the embedded broker, the nats-server runner, the page, the fleet simulator; the
 * template's function host has the same shape, written out again because the template builds
 * alone). The names follow nats.js: `drain()` stops taking work, finishes what is in flight and
 * then closes; `close()` lets go at once; `closed` says when it is over and why.
 *
 * Every method is safe to call again and in any order: a second drain() returns the first one's
 * promise, close() during a drain cuts the drain short, drain() after close() waits for the close.
 */
export interface Service {
  /** What the console and the logs call it: "connector", "nats-server". */
  readonly name: string;
  /** Resolves once the service does its work (listening, connected, subscribed); rejects, having let go of what it took, if it cannot. */
  start(): Promise<void>;
  /** Stops taking new work, finishes what it holds, then closes. */
  drain(): Promise<void>;
  /** Lets go of sockets, timers and processes now; work in flight is abandoned (a broker redelivers it). */
  close(): Promise<void>;
  /**
   * Resolves once the service has closed, by drain(), close() or on its own: with the error that
   * ended it, or undefined for an orderly stop. Never rejects: a supervisor waits on it.
   */
  readonly closed: Promise<Error | undefined>;
}

/**
 * The bookkeeping every service shares, so that each writes only what it does: `onStart`,
 * `onDrain` (finish the work; the default is to close) and `onClose` (let go). A service that dies
 * on its own (a child process exiting) calls `ended(error)`.
 */
export abstract class ServiceBase implements Service {
  abstract readonly name: string;
  readonly closed: Promise<Error | undefined>;
  #resolveClosed: (error: Error | undefined) => void = () => {};
  #starting: Promise<void> | undefined;
  #draining: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #ended = false;

  constructor() {
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** True once drain() or close() was called, or the service ended on its own. */
  get stopping(): boolean {
    return this.#draining !== undefined || this.#closing !== undefined || this.#ended;
  }

  start(): Promise<void> {
    this.#starting ??= (async () => {
      if (this.stopping) throw new Error(`${this.name} cannot start: it was stopped`);
      try {
        await this.onStart();
      } catch (error) {
        await this.close().catch(() => {}); // what it took before failing
        throw error;
      }
    })();
    return this.#starting;
  }

  drain(): Promise<void> {
    this.#draining ??= (async () => {
      // A start under way finishes first: draining half-started work would leave the rest running.
      await this.#starting?.catch(() => {});
      if (this.#closing === undefined) {
        try {
          await this.onDrain();
        } finally {
          await this.close();
        }
      } else await this.#closing;
    })();
    return this.#draining;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.onClose();
      } finally {
        this.ended(undefined);
      }
    })();
    return this.#closing;
  }

  /** Marks the service as over: `closed` resolves with `error` (the first call wins). */
  protected ended(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#resolveClosed(error);
  }

  protected abstract onStart(): Promise<void>;

  /** Finishes the work in flight; close() follows. By default there is nothing to finish. */
  protected async onDrain(): Promise<void> {}

  protected abstract onClose(): Promise<void>;
}
