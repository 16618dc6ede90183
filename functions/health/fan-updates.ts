import type { AlarmTransition, HealthRecord } from "../../lib/health.js";
import type { Logger } from "../../lib/log.js";
import type { AlarmPublisher } from "./alarm-publisher.js";
import type { Budget } from "./budget.js";
import type { FanHealth } from "./evaluator.js";
import type { HealthMetrics } from "./metrics.js";
import { CasConflictError, ContendedError, type FanEntry, type HealthStore, type OutboxItem, type StoredFan } from "./store.js";

/** What a change makes of a fan's health; undefined when there is nothing to change. Pure: it may run again after a conflict. */
export type Change = (current: FanHealth | undefined) => { next: FanHealth; transitions: AlarmTransition[] } | undefined;

export interface UpdateOptions {
  alarmTopic: string;
  /** Compare-and-set attempts per fan and invocation before giving up with a 503. */
  casAttempts: number;
  /** An outbox item older than this is sent by whoever touches the fan next: its writer stopped. */
  resendMs: number;
  /** Digests of the last batches kept per fan, to recognise a batch sent again. */
  recentBatches: number;
  now: () => number;
  log: Logger;
  metrics: HealthMetrics;
}

export interface UpdateResult {
  /** The fan's record after the change (undefined for a fan that does not exist). */
  record: HealthRecord | undefined;
  /** The transitions this change made (published). */
  transitions: AlarmTransition[];
  /** The batch had been evaluated already (its digest is in the entry): nothing evaluated again. */
  duplicate: boolean;
}

/**
 * Applies a change to one fan with compare-and-set, then publishes its transitions.
 *
 * Writes: the change is applied to the cached entry (usually current) and written with the
 * entry's revision; on a conflict the fan is read and the change applied again, at most
 * `casAttempts` times. A change writes its transitions into the entry's outbox together with the
 * new state, so the write that wins is the only one whose transitions exist: none is lost (the
 * outbox survives a crash before the publish) and none is doubled (losers' transitions vanish
 * with their write). After the broker acknowledged them they are removed from the outbox with one
 * more write, which happens only for fans that had a transition.
 *
 * Re-sending: an outbox item whose publish failed here, or that is older than `resendMs` (its
 * writer stopped), is claimed by the next writer of the fan (its queuedAt set to now, in the same
 * CAS write, so one replica claims it) and published again with its original `id`.
 */
export class FanUpdater {
  /** Transitions this process wrote but could not publish: sent again at the fan's next write. */
  readonly #unsent = new Set<string>();
  /** The last update queued per fan: a process applies one change to a fan at a time. */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: HealthStore,
    private readonly publisher: AlarmPublisher,
    private readonly options: UpdateOptions,
  ) {}

  /**
   * Applies `change` to the fan. Changes to one fan within this process run one after the other,
   * in the order they came: concurrent invocations holding the same fan (the connector keeps
   * several in flight) would otherwise only conflict with each other. Other processes are
   * serialised by compare-and-set.
   */
  apply(deviceID: string, change: Change, budget: Budget, digest?: string): Promise<UpdateResult> {
    const previous = this.#queues.get(deviceID);
    const run = (previous === undefined ? this.#apply(deviceID, change, budget, digest) : budget.wait(previous.catch(() => {}), `earlier updates of fan ${deviceID}`).then(() => this.#apply(deviceID, change, budget, digest)));
    const settled = run.catch(() => {});
    this.#queues.set(deviceID, settled);
    void settled.then(() => {
      if (this.#queues.get(deviceID) === settled) this.#queues.delete(deviceID);
    });
    return run;
  }

  async #apply(deviceID: string, change: Change, budget: Budget, digest?: string): Promise<UpdateResult> {
    const { store, options } = this;
    let fan = store.cached(deviceID);
    for (let attempt = 1; attempt <= options.casAttempts; attempt++) {
      if (attempt > 1) fan = await budget.wait(store.read(deviceID), `the health store to read fan ${deviceID}`).catch((error: unknown) => Promise.reject(this.#storeError(error)));
      const entry = this.#entryOf(fan);
      const now = options.now();
      const duplicate = digest !== undefined && entry?.recent.includes(digest) === true;
      const result = duplicate ? undefined : change(entry?.health);
      const resend = (entry?.outbox ?? []).filter((item) => this.#unsent.has(item.transition.id) || now - item.queuedAt >= options.resendMs);
      if (result === undefined && resend.length === 0) return { record: entry?.health.record, transitions: [], duplicate };
      const health = result?.next ?? entry?.health;
      if (health === undefined) return { record: undefined, transitions: [], duplicate };

      const fresh = (result?.transitions ?? []).map((transition) => ({ transition, queuedAt: now }));
      const claimed = new Set(resend.map((item) => item.transition.id));
      const next: FanEntry = {
        health,
        outbox: [...(entry?.outbox ?? []).map((item) => (claimed.has(item.transition.id) ? { ...item, queuedAt: now } : item)), ...fresh],
        recent: digest === undefined || duplicate ? (entry?.recent ?? []) : [...(entry?.recent ?? []), digest].slice(-options.recentBatches),
      };
      let written: StoredFan;
      try {
        written = await budget.wait(fan === undefined ? store.create(deviceID, next) : store.update(deviceID, next, fan.revision), `the health store to write fan ${deviceID}`);
      } catch (error) {
        if (!(error instanceof CasConflictError)) throw this.#storeError(error);
        options.metrics.conflicts.inc();
        // A few milliseconds at random, so that processes that conflicted do not collide again in step.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * attempt));
        continue;
      }
      for (const { transition } of fresh) options.metrics.transitions.inc({ event: transition.event });
      await this.#send(deviceID, [...resend, ...fresh], written, budget);
      options.metrics.resent.inc(resend.length);
      return { record: health.record, transitions: fresh.map((item) => item.transition), duplicate };
    }
    throw new ContendedError(`fan ${deviceID} was written by others ${options.casAttempts} times in a row while this invocation tried to; try again later`);
  }

  /** Publishes the items in order, then removes them from the outbox (best effort: a leftover is sent again later, same id). */
  async #send(deviceID: string, items: OutboxItem[], written: StoredFan, budget: Budget): Promise<void> {
    if (items.length === 0) return;
    const transitions = items.map((item) => item.transition);
    try {
      await this.publisher.publish(this.options.alarmTopic, transitions, budget);
    } catch (error) {
      for (const t of transitions) this.#unsent.add(t.id);
      this.options.metrics.publishFailures.inc(transitions.length);
      throw error;
    }
    const ids = new Set(transitions.map((t) => t.id));
    for (const id of ids) this.#unsent.delete(id);
    let fan: StoredFan | undefined = written;
    for (let attempt = 1; attempt <= this.options.casAttempts && fan !== undefined; attempt++) {
      const entry = this.#entryOf(fan);
      if (entry === undefined || !entry.outbox.some((item) => ids.has(item.transition.id))) return;
      try {
        await budget.wait(this.store.update(deviceID, { ...entry, outbox: entry.outbox.filter((item) => !ids.has(item.transition.id)) }, fan.revision), `the health store to empty fan ${deviceID}'s outbox`);
        return;
      } catch (error) {
        if (!(error instanceof CasConflictError)) {
          this.options.log.warn({ event: "outbox_kept", deviceID, err: (error as Error).message }, "published transitions stay in the outbox; they may be sent again (same id)");
          return;
        }
        this.options.metrics.conflicts.inc();
        fan = await budget.wait(this.store.read(deviceID), `the health store to read fan ${deviceID}`).catch(() => undefined);
      }
    }
  }

  #entryOf(fan: StoredFan | undefined): FanEntry | undefined {
    if (fan === undefined) return undefined;
    const entry = fan.entry;
    if (entry === null) {
      // Never a crash and never a stuck fan: the entry is replaced by one evaluated afresh.
      this.options.metrics.storeErrors.inc({ kind: "unreadable_entry" });
      this.options.log.error({ event: "unreadable_entry", deviceID: fan.deviceID, revision: fan.revision }, "a stored fan entry cannot be read; it is replaced by a fresh one");
      return undefined;
    }
    return entry;
  }

  #storeError(error: unknown): unknown {
    const kind = (error as Error).name === "BudgetExhaustedError" ? "timeout" : "unavailable";
    this.options.metrics.storeErrors.inc({ kind });
    return error;
  }
}
