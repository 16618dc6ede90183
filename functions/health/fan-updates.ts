import type { AlarmTransition, HealthRecord } from "../../lib/domain/health.js";
import type { Logger } from "../../lib/infra/log.js";
import { BudgetExhaustedError, CasConflictError, ContendedError } from "../../lib/errors.js";
import { Deadline } from "../../lib/infra/deadline.js";
import type { Publisher } from "../../lib/mqtt/publisher.js";
import type { FanHealth } from "./evaluator.js";
import type { HealthMetrics } from "./metrics.js";
import { type FanEntry, type HealthStore, type OutboxItem, type StoredFan } from "./store.js";

/** What a change makes of a fan's health; undefined when there is nothing to change. Pure: it may run again after a conflict. */
export type Change = (
  current: FanHealth | undefined,
) => { next: FanHealth; transitions: AlarmTransition[] } | undefined;

/** Health's event stream (FAN_HEALTH_EVENTS, store-nats.ts): absent with the memory store. */
export interface HealthEventLog {
  /** Appends the transitions, each stored once by its id; resolves once every one is acknowledged. */
  appendEvents(transitions: readonly AlarmTransition[]): Promise<void>;
}

export interface UpdateOptions {
  alarmTopic: string;
  /** SITE: stamped on every transition (the rules leave it at its default). */
  site: string;
  /** Where every transition is appended beside its publish on the alarm topic; none without NATS. */
  events?: HealthEventLog | undefined;
  /** Compare-and-set attempts per write before giving up with a 503. */
  casAttempts: number;
  /** An outbox item older than this is sent by whoever touches the fan next: its writer stopped. */
  resendMs: number;
  /** Digests of the last batches kept per fan, to recognise a batch sent again. */
  recentBatches: number;
  now: () => number;
  log: Logger;
  metrics: HealthMetrics;
  /** Told of every fan written, with its health before and after (the baseline publisher). */
  onWritten?: ((deviceID: string, before: FanHealth | undefined, after: FanHealth) => void) | undefined;
}

export interface UpdateResult {
  /** The fan's record after the write (undefined for a fan that does not exist). */
  record: HealthRecord | undefined;
  /** The transitions this change made (published). */
  transitions: AlarmTransition[];
  /** The batch had been evaluated already (its digest is in the entry): nothing evaluated again. */
  duplicate: boolean;
}

interface Pending {
  change: Change;
  digest: string | undefined;
  budget: Deadline;
  resolve: (result: UpdateResult) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; transitions: AlarmTransition[]; duplicate: boolean } | { ok: false; error: unknown };

/**
 * Applies changes to fans with compare-and-set, then publishes their transitions.
 *
 * One write at a time per fan and process, and the changes that arrive for a fan meanwhile are
 * applied together in its next write (group commit): invocations of one process holding the same
 * fan (the connector keeps several in flight) never conflict with each other, and under load a
 * fan costs one write per round trip to NATS rather than one per invocation. With 100 fans in
 * batches of 200 (every fan in every batch) health evaluated 11,700 predictions/s (docs/pipeline.md).
 *
 * A write applies the changes to the cached entry (usually current) and writes it with the entry's
 * revision; on a conflict (another process wrote the fan) the fan is read and the changes applied
 * again, at most `casAttempts` times. The transitions go into the entry's outbox with the state
 * that made them, so the write that wins is the only one whose transitions exist: none is lost
 * (the outbox survives a crash before the publish) and none is doubled (losers' transitions vanish
 * with their write). Once the broker acknowledged them they leave the outbox with one more write,
 * only for fans that had a transition.
 *
 * Re-sending: an outbox item whose publish failed here, or that is older than `resendMs` (its
 * writer stopped), is claimed by the next writer of the fan (its queuedAt set to now, in the same
 * CAS write, so one process claims it) and published again with its original `id`.
 *
 * With NATS each transition also goes to the event stream FAN_HEALTH_EVENTS (`events`), at the
 * same time as the publish: it leaves the outbox only once both the broker and JetStream took it,
 * so an outage of either loses none, and a resend is stored once (its id is the message id).
 */
export class FanUpdater {
  /** Transitions this process wrote but could not publish: sent again at the fan's next write. */
  readonly #unsent = new Set<string>();
  /** Changes waiting for each fan whose write is under way. */
  readonly #waiting = new Map<string, Pending[]>();

  constructor(
    private readonly store: HealthStore,
    /** How transitions reach the alarm topic: the function's MQTT publisher (tests pass a stand-in). */
    private readonly publisher: Pick<Publisher, "publish">,
    private readonly options: UpdateOptions,
  ) {}

  /** Applies `change` to the fan (with `digest`, once per batch); resolves once it is written and its transitions published. */
  apply(deviceID: string, change: Change, budget: Deadline, digest?: string): Promise<UpdateResult> {
    const done = new Promise<UpdateResult>((resolve, reject) => {
      const waiting = this.#waiting.get(deviceID);
      const pending = { change, digest, budget, resolve, reject };
      if (waiting !== undefined) waiting.push(pending);
      else {
        this.#waiting.set(deviceID, []);
        void this.#run(deviceID, [pending]);
      }
    });
    // The caller may be answered first (its time ran out, even before this call): the rejection
    // that reaches `done` later is then nobody's, and unhandled it would end the process.
    done.catch(() => {});
    return budget.wait(done, `the update of fan ${deviceID}`);
  }

  /** Writes `group`, then whatever arrived for the fan meanwhile, until nothing waits. */
  async #run(deviceID: string, group: Pending[]): Promise<void> {
    for (let next: Pending[] | undefined = group; next !== undefined && next.length > 0;) {
      // Callers whose time ran out have their 503 already: their changes are not made.
      const live = next.filter((p) => {
        try {
          p.budget.check(`the update of fan ${deviceID}`);
          return true;
        } catch (error) {
          p.reject(error);
          return false;
        }
      });
      if (live.length > 0) await this.#write(deviceID, live);
      next = this.#waiting.get(deviceID)?.splice(0);
    }
    this.#waiting.delete(deviceID);
  }

  async #write(deviceID: string, group: Pending[]): Promise<void> {
    // The group has as long as its most patient member; each caller still waits only its own budget.
    // A group of one (the usual case: a fan per invocation) uses its caller's: no timer per fan.
    const own = group.length === 1 ? (group[0] as Pending).budget : undefined;
    const budget =
      own ??
      new Deadline(
        Math.max(...group.map((p) => p.budget.remainingMs)),
        "the longest budget of the invocations waiting for this fan",
        "health",
      );
    try {
      const { record, outcomes } = await this.#commit(deviceID, group, budget);
      group.forEach((p, i) => {
        const o = outcomes[i] as Outcome;
        if (o.ok) p.resolve({ record, transitions: o.transitions, duplicate: o.duplicate });
        else p.reject(o.error);
      });
    } catch (error) {
      for (const p of group) p.reject(error);
    }
  }

  async #commit(
    deviceID: string,
    group: Pending[],
    budget: Deadline,
  ): Promise<{ record: HealthRecord | undefined; outcomes: Outcome[] }> {
    const { store, options } = this;
    let fan = store.cached(deviceID);
    for (let attempt = 1; attempt <= options.casAttempts; attempt++) {
      if (attempt > 1)
        fan = await budget
          .wait(store.read(deviceID), `the health store to read fan ${deviceID}`)
          .catch((error: unknown) => {
            throw this.#storeError(error);
          });
      const entry = this.#entryOf(fan);
      const now = options.now();
      const { health, recent, fresh, outcomes } = applyChanges(entry, group, now, options.recentBatches, options.site);
      const resend = (entry?.outbox ?? []).filter(
        (item) => this.#unsent.has(item.transition.id) || now - item.queuedAt >= options.resendMs,
      );
      const changed = health !== entry?.health || recent !== (entry?.recent ?? []);
      if (health === undefined || (!changed && resend.length === 0)) return { record: health?.record, outcomes };

      const claimed = new Set(resend.map((item) => item.transition.id));
      const next: FanEntry = {
        health,
        outbox: [
          ...(entry?.outbox ?? []).map((item) => (claimed.has(item.transition.id) ? { ...item, queuedAt: now } : item)),
          ...fresh,
        ],
        recent,
      };
      let written: StoredFan;
      try {
        written = await budget.wait(
          fan === undefined ? store.create(deviceID, next) : store.update(deviceID, next, fan.revision),
          `the health store to write fan ${deviceID}`,
        );
      } catch (error) {
        if (!(error instanceof CasConflictError)) throw this.#storeError(error);
        options.metrics.conflicts.inc();
        // A few milliseconds at random, so that processes that conflicted do not collide again in step.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * attempt));
        continue;
      }
      for (const { transition: t } of fresh) {
        options.metrics.transitions.inc({ event: t.event });
        if (t.event === "warning" || t.event === "alarm")
          options.metrics.raised.inc({ event: t.event, model: t.model ?? "none" });
      }
      try {
        options.onWritten?.(deviceID, entry?.health, health);
      } catch (error) {
        // A listener's failure is its own: the fan is written and its transitions go out.
        options.log.error(
          { event: "on_written_failed", deviceID, err: (error as Error).message },
          "a write listener failed",
        );
      }
      await this.#send(deviceID, [...resend, ...fresh], written, budget);
      options.metrics.resent.inc(resend.length);
      return { record: health.record, outcomes };
    }
    throw new ContendedError(
      `fan ${deviceID} was written by others ${options.casAttempts} times in a row while this invocation tried to; try again later`,
    );
  }

  /**
   * Publishes the items in order and appends them to the event stream, then removes them from the
   * outbox (best effort: a leftover is sent again later, same id).
   */
  async #send(deviceID: string, items: OutboxItem[], written: StoredFan, budget: Deadline): Promise<void> {
    if (items.length === 0) return;
    const transitions = items.map((item) => item.transition);
    const toStore = items.filter((item) => item.stored !== true).map((item) => item.transition);
    const { metrics, events } = this.options;
    // Both at once, each settled: what one of them took is not asked of it again.
    const [published, stored] = await Promise.allSettled([
      this.publisher.publish(this.options.alarmTopic, transitions, budget),
      events === undefined || toStore.length === 0
        ? Promise.resolve()
        : budget.wait(events.appendEvents(toStore), `JetStream to store fan ${deviceID}'s transitions`),
    ]);
    if (published.status === "rejected") metrics.publishFailures.inc(transitions.length);
    if (stored.status === "rejected") metrics.appendFailures.inc(toStore.length);
    const ids = new Set(transitions.map((t) => t.id));
    if (published.status === "fulfilled" && stored.status === "fulfilled") {
      for (const id of ids) this.#unsent.delete(id);
      await this.#rewriteOutbox(deviceID, written, ids, budget, (outbox) =>
        outbox.filter((item) => !ids.has(item.transition.id)),
      );
      return;
    }
    for (const id of ids) this.#unsent.add(id);
    // Stored but not published (the broker away): said in the outbox, so the resend only publishes.
    if (stored.status === "fulfilled" && toStore.length > 0) {
      const storedIds = new Set(toStore.map((t) => t.id));
      await this.#rewriteOutbox(deviceID, written, storedIds, budget, (outbox) =>
        outbox.map((item) => (storedIds.has(item.transition.id) ? { ...item, stored: true } : item)),
      ).catch(() => {}); // best effort: at worst it is appended again, with the same id
    }
    throw published.status === "rejected" ? published.reason : (stored as PromiseRejectedResult).reason;
  }

  /**
   * Changes the outbox of the fan's entry as written (`written`, re-read after a conflict) for the
   * items `ids`, with compare-and-set; best effort: an item left as it was is sent again later,
   * with its id.
   */
  async #rewriteOutbox(
    deviceID: string,
    written: StoredFan,
    ids: ReadonlySet<string>,
    budget: Deadline,
    change: (outbox: OutboxItem[]) => OutboxItem[],
  ): Promise<void> {
    let fan: StoredFan | undefined = written;
    for (let attempt = 1; attempt <= this.options.casAttempts && fan !== undefined; attempt++) {
      const entry = this.#entryOf(fan);
      if (entry === undefined || !entry.outbox.some((item) => ids.has(item.transition.id))) return;
      try {
        await budget.wait(
          this.store.update(deviceID, { ...entry, outbox: change(entry.outbox) }, fan.revision),
          `the health store to update fan ${deviceID}'s outbox`,
        );
        return;
      } catch (error) {
        if (!(error instanceof CasConflictError)) {
          this.options.log.warn(
            { event: "outbox_kept", deviceID, err: (error as Error).message },
            "the outbox stays as it was; its transitions may be sent again (same id)",
          );
          return;
        }
        this.options.metrics.conflicts.inc();
        fan = await budget
          .wait(this.store.read(deviceID), `the health store to read fan ${deviceID}`)
          .catch(() => undefined);
      }
    }
  }

  #entryOf(fan: StoredFan | undefined): FanEntry | undefined {
    if (fan === undefined) return undefined;
    const entry = fan.entry;
    if (entry === null) {
      // Never a crash and never a stuck fan: the entry is replaced by one evaluated afresh.
      this.options.metrics.storeErrors.inc({ kind: "unreadable_entry" });
      this.options.log.error(
        { event: "unreadable_entry", deviceID: fan.deviceID, revision: fan.revision },
        "a stored fan entry cannot be read; it is replaced by a fresh one",
      );
      return undefined;
    }
    return entry;
  }

  #storeError(error: unknown): unknown {
    this.options.metrics.storeErrors.inc({ kind: error instanceof BudgetExhaustedError ? "timeout" : "unavailable" });
    return error;
  }
}

/**
 * Applies each caller's change in turn to the fan's entry as read: a batch already applied (its
 * digest among the recent ones) is a duplicate, and a change that throws fails its caller alone
 * (e.g. nothing to acknowledge: that caller's 409) while the others go on.
 */
function applyChanges(
  entry: FanEntry | undefined,
  group: readonly Pending[],
  now: number,
  recentBatches: number,
  site: string,
): { health: FanHealth | undefined; recent: string[]; fresh: OutboxItem[]; outcomes: Outcome[] } {
  let health = entry?.health;
  let recent = entry?.recent ?? [];
  const fresh: OutboxItem[] = [];
  const outcomes: Outcome[] = group.map(({ change, digest }) => {
    if (digest !== undefined && recent.includes(digest)) return { ok: true, transitions: [], duplicate: true };
    let result;
    try {
      result = change(health);
    } catch (error) {
      return { ok: false, error };
    }
    let transitions: AlarmTransition[] = [];
    if (result !== undefined) {
      health = result.next;
      transitions = result.transitions.map((t) => (t.site === site ? t : { ...t, site }));
      for (const transition of transitions) fresh.push({ transition, queuedAt: now });
    }
    if (digest !== undefined) recent = [...recent, digest].slice(-recentBatches);
    return { ok: true, transitions, duplicate: false };
  });
  return { health, recent, fresh, outcomes };
}
