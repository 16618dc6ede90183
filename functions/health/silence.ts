import type { Logger } from "../../lib/infra/log.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { expire, sweepFan, type FanHealth } from "./evaluator.js";
import type { FanUpdater } from "./fan-updates.js";
import type { HealthPolicy } from "./policy.js";
import { closeRetired } from "./retire.js";
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
  /**
   * Whether the device registry says the fan is retired: a retired fan is never declared silent,
   * and its open episode, silence and sensor issue are closed (closeRetired).
   */
  retired?: (deviceID: string) => boolean;
}

/**
 * Every intervalMs, looks at every fan in the cache: a fan that stopped reporting becomes silent
 * (checkSilence), a shelving or maintenance window whose end has passed ends (expire: `resumed`
 * when an episode is still open), and a fan whose outbox holds a transition older than resendMs
 * (its writer stopped) has it sent. Each replica runs its own timer; they race through
 * compare-and-set, so a fan turns silent (or resumes) once, whoever wins. Silence is judged on
 * arrival time and the windows on the clock, so neither needs a message.
 *
 * Arrival time says something about a fan only while this process could hear it. While its store
 * or the broker is away it refuses predictions (503) and the connector holds them back; once they
 * are back the held predictions come, but only after the connector's next probe (up to
 * retry_max_ms × 1.5 later) and its backlog. Measured: after NATS was down 60 s, a sweep that ran
 * before the backlog marked all 20 fans of the test silent, and their next predictions ok again,
 * 40 transitions about no fan at all. So silence counts from the later of the fan's last arrival
 * and the moment this process could hear again (`hearingSince`): the process's start, the store's
 * return, the last prediction it had to refuse. A fan silent during an outage is reported
 * silentAfterMs after it, not at once.
 */
export class SilenceTimer {
  #timer: NodeJS.Timeout | undefined;
  #sweep: Promise<void> | undefined;
  /** Since when this process has heard every prediction sent to it (ms since the epoch). */
  #hearingSince: number;

  constructor(private readonly options: SilenceTimerOptions) {
    // A process that just started has heard no one yet: what it missed may be held for it.
    this.#hearingSince = Date.now();
  }

  /** Predictions were refused at `at` (the store or the broker away): they come again later. */
  missed(at: number): void {
    this.#hearingSince = Math.max(this.#hearingSince, at);
  }

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
    if (!store.available) {
      this.missed(now);
      return;
    }
    // Outboxes are resent and windows ended whatever; silence only once this process has heard long enough.
    const judging = now - this.#hearingSince >= policy.silentAfterMs;
    const retired = this.options.retired ?? (() => false);
    // A retired fan is gone on purpose: its silence is no news, and what it left open is closed
    // (closeRetired), here rather than once on the registry's change so that a write that failed
    // (the store away, a conflict lost) is tried again at the next sweep.
    const sweep = (health: FanHealth) =>
      retired(health.record.deviceID)
        ? (closeRetired(health, now) ?? expire(health, now))
        : sweepFan(health, now, policy, judging);
    const due: string[] = [];
    for (const fan of store.fans()) {
      const entry = fan.entry;
      if (entry === null) continue;
      if (sweep(entry.health) !== undefined || entry.outbox.some((item) => now - item.queuedAt >= resendMs))
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
          .apply(deviceID, (current) => (current === undefined ? undefined : sweep(current)), budget)
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
