import type { Logger } from "../../lib/infra/log.js";

/** A part of the system: how it starts, stops taking work (drain) and lets go of what it holds (close). */
export interface Part<T> {
  name: string;
  start: () => Promise<T> | T;
  /** Stops taking new work and finishes what it holds. */
  drain?: (started: T) => Promise<unknown> | unknown;
  /** Releases its sockets, processes and timers. */
  close?: (started: T) => Promise<unknown> | unknown;
}

export interface LifecycleOptions {
  log: Logger;
  /** Readable lines for the console: a part that fails to stop. */
  say?: (line: string) => void;
  /**
   * Longest one part's drain or close is waited for before the next part goes on. Above the 10 s
   * after which a function process or nats-server is killed, so those bounds act first.
   */
  stepTimeoutMs?: number;
}

interface Started {
  name: string;
  drain: () => Promise<unknown>;
  close: () => Promise<unknown>;
}

/**
 * Starts the parts of a system in order and stops them in reverse: first every part drains, the
 * last started first (the fleet stops publishing, then the connector finishes its batches, then
 * the functions theirs), then every part closes in the same order, the broker last. A drain or
 * close that throws or outlasts `stepTimeoutMs` is logged and the others go on: stopping never
 * hangs on one part. stop() and each part's drain and close are safe to call twice.
 */
export class Lifecycle {
  readonly #parts: Started[] = [];
  readonly #log: Logger;
  readonly #say: (line: string) => void;
  readonly #stepTimeoutMs: number;
  #stopping: Promise<void> | undefined;

  constructor(options: LifecycleOptions) {
    this.#log = options.log;
    this.#say = options.say ?? (() => {});
    this.#stepTimeoutMs = options.stepTimeoutMs ?? 15_000;
  }

  /** Starts a part and registers it for stop(); a part that fails to start is not registered (it cleans up after itself). */
  async start<T>(part: Part<T>): Promise<T> {
    if (this.#stopping !== undefined) throw new Error(`cannot start ${part.name}: stopping`);
    const started = await part.start();
    this.#parts.push({
      name: part.name,
      drain: once(async () => part.drain?.(started)),
      close: once(async () => part.close?.(started)),
    });
    return started;
  }

  /** Drains, then closes, every started part in reverse order of start. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const parts = [...this.#parts].reverse();
      for (const part of parts) await this.#step(part, "drain");
      for (const part of parts) await this.#step(part, "close");
    })();
    return this.#stopping;
  }

  async #step(part: Started, phase: "drain" | "close"): Promise<void> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), this.#stepTimeoutMs)));
    try {
      const outcome = await Promise.race([part[phase](), late]);
      if (outcome === "late") {
        this.#log.warn(
          { event: "stop_timeout", part: part.name, phase, ms: this.#stepTimeoutMs },
          `${part.name}: ${phase} took longer than ${this.#stepTimeoutMs} ms`,
        );
        this.#say(`${part.name} did not ${phase} within ${this.#stepTimeoutMs / 1000} s; stopping the rest`);
      } else {
        this.#log.info(
          { event: "stopped_part", part: part.name, phase, ms: Date.now() - started },
          `${part.name}: ${phase} done`,
        );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn({ event: "stop_failed", part: part.name, phase, err: message }, `${part.name}: ${phase} failed`);
      this.#say(`${part.name} failed to ${phase}: ${message}; stopping the rest`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** `fn` run at most once; later calls get the first call's promise. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= fn());
}
