import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate, acknowledge, type HealthInput } from "../../functions/health/evaluator.js";
import { FanUpdater, type Change, type UpdateOptions } from "../../functions/health/fan-updates.js";
import { HealthMetrics } from "../../functions/health/metrics.js";
import { MemoryStore } from "../../functions/health/store-memory.js";
import type { FanEntry, StoredFan } from "../../functions/health/store.js";
import type { AlarmTransition } from "../../lib/domain/health.js";
import {
  BudgetExhaustedError,
  CasConflictError,
  ContendedError,
  HealthConflictError,
  PublishFailedError,
  StoreUnavailableError,
} from "../../lib/errors.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { createLogger } from "../../lib/infra/log.js";

// Health's writes to its store (the in-memory one: the same compare-and-set as the NATS bucket)
// and its publishes on the alarm topic (a stand-in that keeps them, or fails on demand).

const ID = "7";
const T0 = Date.UTC(2026, 10, 27, 8);
const NOW = T0 + 60_000;
const RESEND_MS = 30_000;
const SITE = "plant-a";
const reading = { rotation: 600, temperature: 40, vibration: 150, sound: 48 };

/** What the rules make of five faulty predictions in a row: an alarm. */
const alarm: Change = (current) =>
  evaluate(
    current,
    ID,
    Array.from({ length: 5 }, (_, n): HealthInput => ({
      prediction: { deviceID: ID, fault: 1, probability: 0.97, reading: { ...reading, temperature: 50 } },
      at: T0 + n * 2_000,
    })),
    NOW,
  );

/** A change that adds `mark` to the fan's note (a fan heard once, healthy, if it is new): no transition. */
const noted =
  (mark: string): Change =>
  (current) => {
    const base =
      current ??
      evaluate(undefined, ID, [{ prediction: { deviceID: ID, fault: 0, probability: 0.02, reading }, at: T0 }], NOW)
        .next;
    return {
      next: { ...base, record: { ...base.record, note: `${base.record.note ?? ""}${mark}` } },
      transitions: [],
    };
  };

/** The alarm topic: keeps what is published, or refuses the next `failing` publishes as an unreachable broker does. */
class AlarmTopic {
  readonly published: AlarmTransition[] = [];
  failing = 0;
  async publish(_topic: string, messages: readonly object[]): Promise<void> {
    if (this.failing > 0) {
      this.failing--;
      throw new PublishFailedError(
        `the broker is unreachable; not publishing ${messages.length} messages to fan/alarm`,
      );
    }
    this.published.push(...(messages as AlarmTransition[]));
  }
}

/** Health's event stream (FAN_HEALTH_EVENTS): keeps what is appended, or refuses the next `failing` appends as JetStream away does. */
class EventStream {
  readonly appended: AlarmTransition[] = [];
  failing = 0;
  async appendEvents(transitions: readonly AlarmTransition[]): Promise<void> {
    if (this.failing > 0) {
      this.failing--;
      throw new StoreUnavailableError("JetStream has no stream for the health event stream right now; try again later");
    }
    this.appended.push(...transitions);
  }
}

/** The in-memory store, with a gate its writes wait at and a hook that runs before an update (another writer). */
class Store extends MemoryStore {
  readonly writes: string[] = [];
  gate: Promise<void> = Promise.resolve();
  beforeUpdate: (() => Promise<void>) | undefined;

  override async create(deviceID: string, entry: FanEntry): Promise<StoredFan> {
    this.writes.push("create");
    await this.gate;
    return super.create(deviceID, entry);
  }

  override async update(deviceID: string, entry: FanEntry, revision: number): Promise<StoredFan> {
    this.writes.push("update");
    await this.gate;
    await this.beforeUpdate?.();
    return super.update(deviceID, entry, revision);
  }

  /** What another replica does: writes the fan with its own change. */
  async writeAsAnother(change: Change): Promise<void> {
    const fan = await this.read(ID);
    const entry = fan?.entry;
    assert.ok(fan !== undefined && entry !== null && entry !== undefined);
    const next = change(entry.health);
    assert.ok(next !== undefined);
    await super.update(ID, { ...entry, health: next.next }, fan.revision);
  }

  entryOf(deviceID = ID): FanEntry | null | undefined {
    return this.cached(deviceID)?.entry;
  }
}

function setup(options: Partial<UpdateOptions> = {}) {
  const store = new Store();
  const topic = new AlarmTopic();
  const events = new EventStream();
  const metrics = new HealthMetrics(() => ({}));
  const updater = new FanUpdater(store, topic, {
    events,
    alarmTopic: "fan/alarm",
    site: SITE,
    casAttempts: 3,
    resendMs: RESEND_MS,
    recentBatches: 16,
    now: () => NOW,
    log: createLogger("fan-updates-test", "silent"),
    metrics,
    ...options,
  });
  return { store, topic, events, metrics, updater };
}

const budget = () => new Deadline(10_000, "the test's budget", "health");
const count = async (counter: { get(): Promise<{ values: Array<{ value: number }> }> }) =>
  (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);
/** Lets every callback that can run, run (the store and the topic here do no I/O). */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("health's fan updates", () => {
  it("writes a fan's new state, publishes its transition on the alarm topic once, then empties the outbox", async () => {
    const { store, topic, updater } = setup();
    const result = await updater.apply(ID, alarm, budget());
    assert.deepEqual(
      result.transitions.map((t) => t.event),
      ["alarm"],
    );
    assert.equal(result.record?.state, "alarm");
    assert.deepEqual(topic.published, result.transitions);
    assert.equal(store.entryOf()?.health.record.state, "alarm");
    assert.deepEqual(store.entryOf()?.outbox, [], "published: nothing left to send");
  });

  it("stamps the site on every transition, and appends each to the event stream as it publishes it", async () => {
    const { topic, events, updater } = setup();
    const result = await updater.apply(ID, alarm, budget());
    assert.deepEqual(
      result.transitions.map((t) => [t.event, t.site]),
      [["alarm", SITE]],
    );
    assert.deepEqual(events.appended, result.transitions);
    assert.deepEqual(topic.published, events.appended);
  });

  it("keeps a transition the event stream did not take in the outbox (a 503), and appends it, same id, at the fan's next write", async () => {
    const { store, topic, events, metrics, updater } = setup();
    events.failing = 1;
    await assert.rejects(updater.apply(ID, alarm, budget()), StoreUnavailableError);
    const kept = (store.entryOf()?.outbox ?? []).map((item) => item.transition);
    assert.deepEqual(
      kept.map((t) => t.event),
      ["alarm"],
      "the broker took it, JetStream did not: it stays",
    );
    assert.equal(await count(metrics.appendFailures), 1);
    await updater.apply(ID, () => undefined, budget());
    assert.deepEqual(
      events.appended.map((t) => t.id),
      kept.map((t) => t.id),
    );
    assert.deepEqual(
      topic.published.map((t) => t.id),
      [...kept, ...kept].map((t) => t.id),
      "the broker gets it again, with the same id (subscribers drop a repeat by it)",
    );
    assert.deepEqual(store.entryOf()?.outbox, []);
  });

  it("appends a transition the event stream took while the broker was away only once: the resend only publishes it", async () => {
    const { store, topic, events, updater } = setup();
    topic.failing = 1;
    await assert.rejects(updater.apply(ID, alarm, budget()), PublishFailedError);
    const kept = store.entryOf()?.outbox ?? [];
    assert.deepEqual(
      kept.map((item) => [item.transition.event, item.stored]),
      [["alarm", true]],
      "in the outbox, marked as stored",
    );
    await updater.apply(ID, () => undefined, budget());
    assert.deepEqual(
      events.appended.map((t) => t.id),
      kept.map((item) => item.transition.id),
      "appended once, whatever the stream's duplicate window",
    );
    assert.deepEqual(
      topic.published.map((t) => t.id),
      kept.map((item) => item.transition.id),
    );
    assert.deepEqual(store.entryOf()?.outbox, []);
  });

  it("without an event stream (the memory store) only publishes", async () => {
    const { topic, updater } = setup({ events: undefined });
    await updater.apply(ID, alarm, budget());
    assert.deepEqual(
      topic.published.map((t) => t.event),
      ["alarm"],
    );
  });

  it("puts the changes that arrive for a fan during its write into the next write, one write for all, none lost", async () => {
    const { store, updater } = setup();
    let open = (): void => {};
    store.gate = new Promise((resolve) => (open = resolve));
    const first = updater.apply(ID, noted("A"), budget());
    await settled(); // A's write is at the store
    const later = [updater.apply(ID, noted("B"), budget()), updater.apply(ID, noted("C"), budget())];
    open();
    const results = await Promise.all([first, ...later]);
    assert.deepEqual(
      results.map((r) => r.record?.note),
      ["A", "ABC", "ABC"],
    );
    assert.deepEqual(store.writes, ["create", "update"], "B and C went in one write");
  });

  it("recognises a batch sent again (the connector's retry) and evaluates it once", async () => {
    const { topic, updater } = setup();
    let evaluations = 0;
    const counted: Change = (current) => (evaluations++, alarm(current));
    const first = await updater.apply(ID, counted, budget(), "digest-of-the-batch");
    const again = await updater.apply(ID, counted, budget(), "digest-of-the-batch");
    assert.deepEqual([first.duplicate, again.duplicate, again.transitions], [false, true, []]);
    assert.equal(evaluations, 1);
    assert.deepEqual(
      topic.published.map((t) => t.event),
      ["alarm"],
      "one alarm, not two",
    );
  });

  it("keeps a transition the broker did not take in the fan's outbox, and sends it, same id, at the fan's next write", async () => {
    const { store, topic, metrics, updater } = setup();
    topic.failing = 1;
    await assert.rejects(updater.apply(ID, alarm, budget()), PublishFailedError);
    const kept = (store.entryOf()?.outbox ?? []).map((item) => item.transition);
    assert.deepEqual(
      kept.map((t) => t.event),
      ["alarm"],
      "written with the state that made it",
    );
    assert.equal(topic.published.length, 0, "nothing on the alarm topic yet");

    await updater.apply(ID, () => undefined, budget()); // the next touch, even one that changes nothing
    assert.deepEqual(
      topic.published.map((t) => t.id),
      kept.map((t) => t.id),
      "the same transition, by its id",
    );
    assert.deepEqual(store.entryOf()?.outbox, []);
    assert.equal(await count(metrics.resent), 1);
  });

  it("sends what a writer that stopped left in the outbox once it is older than the resend time, and not before", async () => {
    const { store, topic, updater } = setup();
    const { next, transitions } = alarm(undefined) ?? assert.fail("no alarm");
    const left = (age: number) => ({
      health: next,
      outbox: transitions.map((t) => ({ transition: t, queuedAt: NOW - age })),
      recent: [],
    });
    await store.create(ID, left(RESEND_MS + 1));
    await store.create("8", left(RESEND_MS - 1_000));
    await updater.apply(ID, () => undefined, budget());
    await updater.apply("8", () => undefined, budget());
    assert.deepEqual(
      topic.published.map((t) => t.id),
      transitions.map((t) => t.id),
      "fan 7's, whose writer is gone; fan 8's writer may still publish its own",
    );
    assert.deepEqual([store.entryOf(ID)?.outbox, store.entryOf("8")?.outbox.length], [[], 1]);
  });

  it("after another replica wrote the fan, applies the change again on top of theirs: neither change is lost", async () => {
    const { store, metrics, updater } = setup();
    await updater.apply(ID, noted("first;"), budget());
    store.beforeUpdate = async () => {
      store.beforeUpdate = undefined;
      await store.writeAsAnother(noted("theirs;"));
    };
    const result = await updater.apply(ID, noted("mine;"), budget());
    assert.equal(result.record?.note, "first;theirs;mine;");
    assert.equal(store.entryOf()?.health.record.note, "first;theirs;mine;");
    assert.equal(await count(metrics.conflicts), 1);
  });

  it("answers 503 (contended) when others win the fan casAttempts times in a row", async () => {
    const { store, updater } = setup();
    await updater.apply(ID, noted("first;"), budget());
    store.beforeUpdate = () => store.writeAsAnother(noted("theirs;"));
    await assert.rejects(updater.apply(ID, noted("mine;"), budget()), (e: unknown) => {
      assert.ok(e instanceof ContendedError, String(e));
      assert.equal(e.status, 503);
      assert.match(e.message, /fan 7 was written by others 3 times in a row/);
      return true;
    });
    assert.doesNotMatch(store.entryOf()?.health.record.note ?? "", /mine/);
  });

  it("makes no change for a caller whose time ran out: it has its 503 already", async () => {
    const { store, updater } = setup();
    await assert.rejects(
      updater.apply(ID, noted("late"), new Deadline(0, "X-Timeout-Ms 5 ms less a margin", "health")),
      (e: unknown) => e instanceof BudgetExhaustedError && e.status === 503,
    );
    await settled();
    assert.equal(store.cached(ID), undefined);
    assert.deepEqual(store.writes, []);
  });

  it("fails only the caller whose change is refused (nothing to acknowledge); the others in the same write go on", async () => {
    const { store, updater } = setup();
    let open = (): void => {};
    store.gate = new Promise((resolve) => (open = resolve));
    const first = updater.apply(ID, noted("A"), budget());
    await settled();
    const refused = updater.apply(ID, (current) => acknowledge(current, ID, "ops", undefined, NOW), budget());
    const other = updater.apply(ID, noted("C"), budget());
    open();
    await assert.rejects(refused, (e: unknown) => e instanceof HealthConflictError && e.status === 409);
    assert.equal((await other).record?.note, "AC");
    assert.equal((await first).record?.note, "A");
  });

  it("takes the next change for a fan after a write that ended in a 503: nothing is left waiting", async () => {
    const { store, updater } = setup();
    await updater.apply(ID, noted("first;"), budget());
    store.beforeUpdate = () => Promise.reject(new CasConflictError("fan 7 is at revision 9, not 1"));
    await assert.rejects(updater.apply(ID, noted("mine;"), budget()), ContendedError);
    store.beforeUpdate = undefined;
    assert.equal((await updater.apply(ID, noted("again;"), budget())).record?.note, "first;again;");
  });
});
