import type { Logger } from "../../lib/infra/log.js";
import type { Service } from "../../lib/infra/service.js";

export interface LifecycleOptions {
  log: Logger;
  /** Readable lines for the console: a service that fails to stop. */
  say?: (line: string) => void;
  /**
   * Longest one service's drain is waited for before it is closed outright and the next one goes
   * on. Above the 10 s after which a function process or nats-server is killed, so those bounds
   * act first.
   */
  stepTimeoutMs?: number;
}

/**
 * Starts the services of a system in order and drains them in reverse: the last started first
 * (the fleet stops publishing, then the connector finishes its batches, then the functions theirs,
 * the broker last), each drained before the next, so nothing in flight is lost. A drain that
 * fails or outlasts `stepTimeoutMs` is logged, that service is closed outright, and the others go
 * on: stopping never hangs on one service. stop() is safe to call twice.
 */
export class Lifecycle {
  readonly #services: Service[] = [];
  readonly #log: Logger;
  readonly #say: (line: string) => void;
  readonly #stepTimeoutMs: number;
  #stopping: Promise<void> | undefined;

  constructor(options: LifecycleOptions) {
    this.#log = options.log;
    this.#say = options.say ?? (() => {});
    this.#stepTimeoutMs = options.stepTimeoutMs ?? 15_000;
  }

  /** Starts a service and registers it for stop(); one that fails to start let go of what it took and is not registered. */
  async start<S extends Service>(service: S): Promise<S> {
    if (this.#stopping !== undefined) throw new Error(`cannot start ${service.name}: stopping`);
    await service.start();
    this.#services.push(service);
    return service;
  }

  /** Drains every started service in reverse order of start. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const service of [...this.#services].reverse()) await this.#drain(service);
    })();
    return this.#stopping;
  }

  async #drain(service: Service): Promise<void> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), this.#stepTimeoutMs)));
    try {
      const outcome = await Promise.race([service.drain(), late]);
      if (outcome === "late") {
        this.#log.warn(
          { event: "stop_timeout", service: service.name, ms: this.#stepTimeoutMs },
          `${service.name}: drain took longer than ${this.#stepTimeoutMs} ms; closing it`,
        );
        this.#say(
          `${service.name} did not drain within ${this.#stepTimeoutMs / 1000} s; closing it and stopping the rest`,
        );
        await this.#close(service);
      } else {
        this.#log.info(
          { event: "stopped_service", service: service.name, ms: Date.now() - started },
          `${service.name}: drained`,
        );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn({ event: "stop_failed", service: service.name, err: message }, `${service.name}: drain failed`);
      this.#say(`${service.name} failed to drain: ${message}; stopping the rest`);
      await this.#close(service);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes a service whose drain failed, bounded too: a close that hangs is left behind. */
  async #close(service: Service): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#stepTimeoutMs)));
    await Promise.race([service.close().catch(() => {}), late]);
    clearTimeout(timer);
  }
}
