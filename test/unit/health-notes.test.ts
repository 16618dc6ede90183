import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assign, comment, lastEpisode, recordFinding } from "../../functions/health/episode-notes.js";
import { acknowledge, evaluate, FanHealthSchema, type FanHealth } from "../../functions/health/evaluator.js";
import { RECENT_EPISODES } from "../../functions/health/tracker.js";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { FEATURES } from "../../lib/domain/features.js";
import { HealthRecordSchema, NOTE_EVENTS, type AlarmTransition } from "../../lib/domain/health.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import { HealthConflictError, HealthNotFoundError, InputError } from "../../lib/errors.js";
import { drawReading } from "../../simulation/draw.js";
import { seededRandom } from "../../simulation/rng.js";

// Pure tests with a fake clock: reading n of a fan is at T0 + n × 2 s and arrives then.
const T0 = Date.UTC(2026, 10, 27, 8);
const STEP = 2_000;
const ID = "7";
const random = seededRandom(31);
const healthy = (): PerSensor =>
  Object.fromEntries(FEATURES.map((f) => [f, drawReading(HEALTHY_RANGES[f], random)])) as PerSensor;
const faulty = (): PerSensor => ({ ...healthy(), temperature: 50 });

/** One fan fed one reading per evaluate() call, as the function does. */
class Fan {
  state: FanHealth | undefined;
  readonly transitions: AlarmTransition[] = [];
  n = 0;

  feed(fault: 0 | 1): void {
    const at = T0 + this.n++ * STEP;
    const prediction = {
      deviceID: ID,
      fault,
      probability: fault === 1 ? 0.97 : 0.02,
      reading: fault ? faulty() : healthy(),
    };
    const { next, transitions } = evaluate(this.state, ID, [{ prediction, at }], at);
    this.state = next;
    this.transitions.push(...transitions);
  }

  /** Faulty readings until an alarm opens; its id. */
  alarm(): string {
    for (let i = 0; i < 20 && this.state?.record.state !== "alarm"; i++) this.feed(1);
    assert.equal(this.record.state, "alarm");
    return this.record.alarmId as string;
  }

  /** Healthy readings until the episode has cleared and the fan is ok again. */
  recover(): void {
    for (let i = 0; i < 2_000 && this.record.state !== "ok"; i++) this.feed(0);
    assert.equal(this.record.state, "ok");
  }

  /** Applies an action's result as the updater would. */
  apply(result: { next: FanHealth; transitions: AlarmTransition[] }): AlarmTransition {
    this.state = result.next;
    this.transitions.push(...result.transitions);
    assert.equal(result.transitions.length, 1, "one transition per action");
    return result.transitions[0] as AlarmTransition;
  }

  get now(): number {
    return T0 + this.n * STEP;
  }

  get record() {
    assert.ok(this.state);
    return this.state.record;
  }
}

const notFound = (pattern: RegExp, field: string) => (e: unknown) =>
  e instanceof InputError &&
  e.status === 404 &&
  e.code === "FANWATCH_HEALTH_NOT_FOUND" &&
  e.field === field &&
  pattern.test(e.message);

describe("health notes: comments, assignees and findings on an episode", () => {
  it("comments on the open episode: a `commented` transition with who and what, the record's state unchanged", () => {
    const fan = new Fan();
    const alarmId = fan.alarm();
    const before = fan.record;
    const t = fan.apply(comment(fan.state, ID, alarmId, { note: "smells of burnt grease", by: "ann" }, fan.now));
    assert.deepEqual(
      [t.event, t.alarmId, t.state, t.by, t.note, t.muted, t.at],
      ["commented", alarmId, "alarm", "ann", "smells of burnt grease", undefined, new Date(fan.now).toISOString()],
    );
    assert.deepEqual(fan.record, before, "a comment changes no field of the record");
  });

  it("assigns the open episode; the assignee stays through the clear and is gone when the next episode opens", () => {
    const fan = new Fan();
    const first = fan.alarm();
    const t = fan.apply(assign(fan.state, ID, first, { to: "bo", by: "ann" }, fan.now));
    assert.deepEqual([t.event, t.alarmId, t.to, t.by], ["assigned", first, "bo", "ann"]);
    assert.equal(fan.record.assignedTo, "bo");
    fan.recover();
    assert.equal(fan.record.assignedTo, "bo", "kept with the last episode while the fan is ok");
    const second = fan.alarm();
    assert.notEqual(second, first);
    assert.equal(fan.record.assignedTo, null, "a new episode starts unassigned");
  });

  it("refuses a finding on an open episode nobody acknowledged (409), takes it once acknowledged", () => {
    const fan = new Fan();
    const alarmId = fan.alarm();
    const finding = { result: "confirmed" as const, part: "bearing", sensor: "temperature" as const, by: "ann" };
    assert.throws(
      () => recordFinding(fan.state, ID, alarmId, finding, fan.now),
      (e: unknown) => e instanceof HealthConflictError && e.status === 409 && /not acknowledged/.test(e.message),
    );
    fan.apply(acknowledge(fan.state, ID, "ann", undefined, fan.now));
    const t = fan.apply(recordFinding(fan.state, ID, alarmId, finding, fan.now));
    assert.deepEqual(
      [t.event, t.alarmId, t.result, t.part, t.sensor, t.note, t.by],
      ["finding", alarmId, "confirmed", "bearing", "temperature", undefined, "ann"],
    );
    assert.deepEqual(fan.record.finding, {
      result: "confirmed",
      part: "bearing",
      sensor: "temperature",
      note: null,
      by: "ann",
      at: new Date(fan.now).toISOString(),
    });
  });

  it("records a finding after the clear (the usual case); a second replaces the record's, both stay transitions", () => {
    const fan = new Fan();
    const alarmId = fan.alarm();
    fan.recover();
    assert.equal(fan.record.alarmId, null, "ok: the record names no episode any more");
    assert.equal(lastEpisode(fan.state as FanHealth), alarmId);
    const first = fan.apply(recordFinding(fan.state, ID, alarmId, { result: "false-alarm", by: "ann" }, fan.now));
    const second = fan.apply(
      recordFinding(
        fan.state,
        ID,
        alarmId,
        { result: "confirmed", part: "belt", note: "frayed", by: "bo" },
        fan.now + 1,
      ),
    );
    assert.deepEqual(
      [first.alarmId, first.state, first.result, second.alarmId, second.result, second.part, second.sensor],
      [alarmId, "ok", "false-alarm", alarmId, "confirmed", "belt", undefined],
    );
    assert.notEqual(first.id, second.id);
    assert.deepEqual(
      [fan.record.finding?.result, fan.record.finding?.part, fan.record.finding?.by],
      ["confirmed", "belt", "bo"],
    );
    fan.alarm();
    assert.equal(fan.record.finding, null, "a new episode starts without a finding");
  });

  it("takes notes on an older episode into the history only: the record keeps its current episode's", () => {
    const fan = new Fan();
    const old = fan.alarm();
    fan.recover();
    const current = fan.alarm();
    fan.apply(assign(fan.state, ID, current, { to: "cy", by: "ann" }, fan.now));
    const t = fan.apply(assign(fan.state, ID, old, { to: "bo", by: "ann" }, fan.now));
    const f = fan.apply(recordFinding(fan.state, ID, old, { result: "confirmed", by: "bo" }, fan.now));
    assert.deepEqual([t.alarmId, t.to, f.alarmId, f.state], [old, "bo", old, "alarm"]);
    assert.deepEqual([fan.record.alarmId, fan.record.assignedTo, fan.record.finding], [current, "cy", null]);
  });

  it("refuses an unknown fan or episode (404 naming the field); remembers the last episodes, bounded", () => {
    assert.throws(
      () => comment(undefined, "nope", "nope@2026-11-27T08:00:00.000Z", { note: "x", by: "ann" }, T0),
      (e: unknown) => e instanceof HealthNotFoundError && e.field === "deviceID" && /nope/.test(e.message),
    );
    const fan = new Fan();
    fan.feed(0);
    assert.throws(
      () => comment(fan.state, ID, "7@2026-11-27T08:00:00.000Z", { note: "x", by: "ann" }, fan.now),
      notFound(/no episode "7@2026-11-27T08:00:00.000Z".*it has had none/, "alarmId"),
    );
    const ids: string[] = [];
    for (let i = 0; i < RECENT_EPISODES + 2; i++) {
      ids.push(fan.alarm());
      fan.recover();
    }
    assert.deepEqual(fan.state?.tracker.episodes, ids.slice(-RECENT_EPISODES), "the last ones, oldest first");
    assert.throws(
      () => assign(fan.state, ID, ids[0] as string, { to: "bo", by: "ann" }, fan.now),
      notFound(/no episode .* among its open and last 20 ones; its latest is/, "alarmId"),
    );
    const t = fan.apply(assign(fan.state, ID, ids[2] as string, { to: "bo", by: "ann" }, fan.now));
    assert.equal(t.alarmId, ids[2]);
  });

  it("notes are never muted, even in a maintenance window or shelved", () => {
    const fan = new Fan();
    const alarmId = fan.alarm();
    const state = fan.state as FanHealth;
    const later = new Date(fan.now + 3_600_000).toISOString();
    const shelved: FanHealth = {
      ...state,
      record: {
        ...state.record,
        shelvedUntil: later,
        shelvedBy: "ann",
        maintenance: { from: new Date(T0).toISOString(), until: later, by: "ops", note: null },
      },
    };
    for (const t of [
      comment(shelved, ID, alarmId, { note: "x", by: "ann" }, fan.now).transitions[0],
      assign(shelved, ID, alarmId, { to: "bo", by: "ann" }, fan.now).transitions[0],
    ])
      assert.deepEqual([NOTE_EVENTS.has(t?.event ?? "ok"), t?.muted], [true, undefined]);
  });

  it("reads a fan stored before notes existed: no assignee, no finding, no remembered episodes but the record's", () => {
    const fan = new Fan();
    const alarmId = fan.alarm();
    const stored = JSON.parse(JSON.stringify(fan.state)) as {
      record: Record<string, unknown>;
      tracker: Record<string, unknown>;
    };
    delete stored.record.assignedTo;
    delete stored.record.finding;
    delete stored.tracker.episodes;
    const old = FanHealthSchema.parse(stored);
    assert.deepEqual([old.record.assignedTo, old.record.finding, old.tracker.episodes], [null, null, []]);
    assert.equal(HealthRecordSchema.parse(stored.record).finding, null);
    const t = comment(old, ID, alarmId, { note: "still known", by: "ann" }, fan.now).transitions[0];
    assert.equal(t?.alarmId, alarmId, "the open episode of an old entry is still the record's");
  });
});
