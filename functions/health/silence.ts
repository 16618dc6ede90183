import type { Logger } from "../../lib/infra/log.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { checkSilence } from "./evaluator.js";
import type { FanUpdater } from "./fan-updates.js";
import type { HealthPolicy } from "./policy.js";
import type { HealthStore } from "./store.js";

export interface SilenceTimerOptions {
  store: HealthStore;
  updater: FanUpdater;
  policy: HealthPolicy;
  intervalMs: number;
  budgetMs: number;
  resendMs: number;
  log: Logger;
  /** Fans written at once by one sweep. */
  concurrency?: number;
}

/**
 * Every intervalMs, looks at every fan in the cache: a fan that stopped reporting becomes silent
 * (checkSilence), and a fan whose outbox holds a transition older than resendMs (its writer
 * stopped) has it sent. Each replica runs its own timer; they race through compare-and-set, so a
 * fan turns silent once, whoever wins. Silence is judged on arrival time, so it needs no message.
 */
export class SilenceTimer {
  #timer: NodeJS.Timeout | undefined;
  #sweep: Promise<void> | undefined;

  constructor(private readonly options: SilenceTimerOptions) {}

  start(): void {
    this.#timer ??= setInterval(() => {
      this.#sweep ??= this.sweep(Date.now()).finally(() => (this.#sweep = undefined));
    }, this.options.intervalMs);
  }

  /** Stops the timer and waits for a sweep under way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweep;
  }

  /** One pass over every fan at time `now`; resolves when its writes are done (failures are logged). */
  async sweep(now: number): Promise<void> {
    const { store, updater, policy, resendMs, log } = this.options;
    if (!store.available) return;
    const due: string[] = [];
    for (const fan of store.fans()) {
      const entry = fan.entry;
      if (entry === null) continue;
      if (
        checkSilence(entry.health, now, policy) !== undefined ||
        entry.outbox.some((item) => now - item.queuedAt >= resendMs)
      )
        due.push(fan.deviceID);
    }
    if (due.length === 0) return;
    const budget = new Deadline(
      this.options.budgetMs,
      `HEALTH_BUDGET_MS ${this.options.budgetMs} ms`,
      "health's silence check",
    );
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < due.length) {
        const deviceID = due[next++] as string;
        await updater
          .apply(
            deviceID,
            (current) => (current === undefined ? undefined : checkSilence(current, now, policy)),
            budget,
          )
          .catch((error: unknown) => {
            failed++;
            if (failed === 1)
              log.warn(
                { event: "silence_check_failed", deviceID, err: (error as Error).message },
                "silence check could not write a fan; the next one tries again",
              );
          });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 16, due.length) }, worker));
  }
}
