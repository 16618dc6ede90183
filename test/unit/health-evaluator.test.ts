import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  acknowledge,
  checkSilence,
  evaluate,
  expire,
  FanHealthSchema,
  maintain,
  shelve,
  sweepFan,
  type FanHealth,
  type HealthInput,
} from "../../functions/health/evaluator.js";
import { HealthConflictError, HealthNotFoundError, InputError } from "../../lib/errors.js";
import { isoTime } from "../../functions/health/iso-time.js";
import { DEFAULT_POLICY, readHealthPolicy, type HealthPolicy } from "../../functions/health/policy.js";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { drawReading } from "../../simulation/draw.js";
import { FEATURES } from "../../lib/domain/features.js";
import type { AlarmTransition } from "../../lib/domain/health.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import { seededRandom, type Random } from "../../simulation/rng.js";
import { createFleet } from "../../simulation/fleet-model.js";

// Pure tests with a fake clock: reading n of a fan is at T0 + n × 2 s and arrives then.
const T0 = Date.UTC(2026, 10, 27, 8);
const STEP = 2_000;
const ID = "7";

const draw = (ranges: typeof HEALTHY_RANGES, random: Random) =>
  Object.fromEntries(FEATURES.map((f) => [f, drawReading(ranges[f], random)])) as PerSensor;
const healthyReading = (random: Random) => draw(HEALTHY_RANGES, random);
/**
 * A faulty reading the model flags: one sensor (temperature) beyond its healthy range, by a value
 * that moves as a real sensor's does (one that gave 50.0 every time would be stuck: a sensor issue).
 */
const faultyReading = (random: Random) => ({ ...healthyReading(random), temperature: 50 + random() / 10 });

function input(n: number, fault: 0 | 1, reading: PerSensor, probability = fault === 1 ? 0.97 : 0.02): HealthInput {
  return { prediction: { deviceID: ID, fault, probability, reading }, at: T0 + n * STEP };
}

/** Feeds readings one evaluate() call each, as the function does; collects the transitions. */
class Fan {
  state: FanHealth | undefined;
  readonly transitions: AlarmTransition[] = [];
  n = 0;
  /** The model the next predictions name, as predict publishes them (undefined: none). */
  model: string | undefined;

  constructor(private readonly policy: HealthPolicy = DEFAULT_POLICY) {}

  feed(fault: 0 | 1, reading: PerSensor): AlarmTransition[] {
    const i = input(this.n++, fault, reading);
    if (this.model !== undefined) i.prediction.model = this.model;
    const { next, transitions } = evaluate(this.state, ID, [i], i.at, this.policy);
    this.state = next;
    this.transitions.push(...transitions);
    return transitions;
  }

  get now(): number {
    return T0 + (this.n - 1) * STEP;
  }

  get record() {
    assert.ok(this.state);
    return this.state.record;
  }
}

describe("health evaluator: alarms", () => {
  it("a faulty fan whose readings look healthy 9% of the time raises one alarm within a few readings and keeps it", () => {
    const random = seededRandom(11);
    const fan = new Fan();
    let looksHealthy = 0;
    for (let i = 0; i < 20_000; i++) {
      const healthy = random() < 0.09;
      if (healthy) looksHealthy++;
      fan.feed(healthy ? 0 : 1, healthy ? healthyReading(random) : faultyReading(random));
    }
    assert.ok(looksHealthy > 1_500, `${looksHealthy} healthy-looking readings`);
    const alarms = fan.transitions.filter((t) => t.event === "alarm");
    assert.equal(alarms.length, 1, "one alarm");
    assert.deepEqual(
      fan.transitions.map((t) => t.event),
      ["alarm"],
      "nothing after it: a fan staying in alarm publishes nothing new",
    );
    assert.ok(Date.parse((alarms[0] as AlarmTransition).at) <= T0 + 9 * STEP, "raised within the first 10 readings");
    assert.equal(fan.record.state, "alarm");
    assert.equal(fan.record.cause, "temperature", "without contributions the cause is the sensor beyond its range");
    assert.ok(fan.record.probability > 0.8, `smoothed probability ${fan.record.probability}`);
  });

  it("an alarm's cause and contributions come from score's explanations, averaged over the faulty predictions", () => {
    const random = seededRandom(22);
    let state: FanHealth | undefined;
    const transitions: AlarmTransition[] = [];
    for (let n = 0; n < 8; n++) {
      // Each reading's largest contribution alternates; on average vibration leads.
      const contributions =
        n % 2 === 0
          ? { rotation: 0.02, temperature: 0.3, vibration: 0.5, sound: 0.05 }
          : { rotation: 0.02, temperature: 0.35, vibration: 0.3, sound: 0.05 };
      const at = T0 + n * STEP;
      const result = evaluate(
        state,
        ID,
        [
          {
            prediction: {
              deviceID: ID,
              fault: 1,
              probability: 0.95,
              reading: faultyReading(random),
              cause: n % 2 === 0 ? "vibration" : "temperature",
              contributions,
            },
            at,
          },
        ],
        at,
      );
      state = result.next;
      transitions.push(...result.transitions);
    }
    const [alarm] = transitions;
    assert.equal(alarm?.event, "alarm");
    assert.equal(alarm?.cause, "vibration", "the sensor with the largest average contribution, not the last reading's");
    assert.ok(alarm?.contributions && alarm.contributions.vibration > alarm.contributions.temperature);
    assert.equal(state?.record.cause, "vibration");
  });

  it("a healthy fan with the model's rare false positives never changes state in a day", () => {
    const random = seededRandom(12);
    const fan = new Fan();
    let flagged = 0;
    for (let i = 0; i < 43_200; i++) {
      const fault = random() < 0.001 ? 1 : 0;
      flagged += fault;
      fan.feed(fault, healthyReading(random));
    }
    assert.ok(flagged > 20, `${flagged} false positives`);
    assert.deepEqual(fan.transitions, []);
    assert.equal(fan.record.state, "ok");
    assert.equal(fan.record.alarmId, null);
    assert.equal(fan.record.lastSeen, new Date(fan.now).toISOString());
  });

  it("an alarm clears only after enough healthy predictions in a row and a quiet period; then ok; a new episode is a new alarm", () => {
    const random = seededRandom(13);
    const fan = new Fan();
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    const first = fan.record.alarmId;
    assert.equal(fan.record.state, "alarm");
    for (let i = 0; i < DEFAULT_POLICY.clearCount - 1; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "alarm", "one healthy prediction short");
    fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "alarm", "enough healthy predictions, but not yet quiet for long enough");
    const quietReadings = DEFAULT_POLICY.quietMs / STEP;
    for (let i = 0; i < quietReadings; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "cleared");
    assert.equal(fan.record.alarmId, first, "cleared names the episode it ends");
    assert.equal(fan.record.severity, "none");
    for (let i = 0; i < DEFAULT_POLICY.clearedHoldMs / STEP; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "ok");
    assert.equal(fan.record.alarmId, null);
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    assert.equal(fan.record.state, "alarm");
    assert.notEqual(fan.record.alarmId, first, "a new episode, a new id");
    assert.deepEqual(
      fan.transitions.map((t) => t.event),
      ["alarm", "cleared", "ok", "alarm"],
      "a sudden fault is an alarm alone, no warning two seconds before it",
    );
    assert.equal(new Set(fan.transitions.map((t) => t.id)).size, fan.transitions.length, "transition ids unique");
  });

  it("ids are deterministic: the same inputs give the same alarm and transition ids on any replica", () => {
    const run = () => {
      const random = seededRandom(14);
      const fan = new Fan();
      for (let i = 0; i < 30; i++) fan.feed(i > 5 ? 1 : 0, i > 5 ? faultyReading(random) : healthyReading(random));
      return fan.transitions;
    };
    assert.deepEqual(run(), run());
    const [alarm] = run();
    assert.equal(
      alarm?.alarmId,
      `${ID}@${new Date(T0 + 9 * STEP).toISOString()}`,
      "named after the fan and the reading that opened the episode (the fourth fault)",
    );
  });
});

describe("health evaluator: the model behind each transition", () => {
  it("names the model of the prediction that moved the fan; a swap mid-episode leaves the alarm on the model that raised it", () => {
    const random = seededRandom(15);
    const fan = new Fan();
    fan.model = "fan-aaaaaaaaaaaaaaaa";
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    assert.equal(fan.record.state, "alarm");
    assert.equal(fan.record.model, "fan-aaaaaaaaaaaaaaaa");
    // Promoted: the new model's predictions keep the fan in alarm, and the record on the model that raised it.
    fan.model = "fan-bbbbbbbbbbbbbbbb";
    for (let i = 0; i < 5; i++) fan.feed(1, faultyReading(random));
    assert.equal(fan.record.model, "fan-aaaaaaaaaaaaaaaa", "no transition: the alarm is still the first model's");
    const ack = acknowledge(fan.state, ID, "ana", undefined, fan.now);
    assert.equal(
      ack.transitions[0]?.model,
      "fan-aaaaaaaaaaaaaaaa",
      "an action names the model whose alarm it is about",
    );
    fan.state = ack.next;
    const quiet = DEFAULT_POLICY.clearCount + DEFAULT_POLICY.quietMs / STEP;
    for (let i = 0; i < quiet; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "cleared");
    assert.deepEqual(
      fan.transitions.map((t) => [t.event, t.model]),
      [
        ["alarm", "fan-aaaaaaaaaaaaaaaa"],
        ["cleared", "fan-bbbbbbbbbbbbbbbb"],
      ],
    );
    const silent = checkSilence(fan.state, fan.now + DEFAULT_POLICY.silentAfterMs);
    assert.equal(silent?.transitions[0]?.model, "fan-bbbbbbbbbbbbbbbb", "silence keeps the record's model");
  });

  it("a prediction without a model un-names the model on its transition rather than blame the last one; none named, no field", () => {
    const random = seededRandom(16);
    const fan = new Fan();
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    assert.equal(fan.transitions[0]?.event, "alarm");
    assert.equal("model" in (fan.transitions[0] ?? {}), false, "no model known: the field is absent");
    assert.equal(fan.record.model, undefined, "a record that never named a model is left as it was");
    fan.model = "fan-aaaaaaaaaaaaaaaa";
    const quiet = DEFAULT_POLICY.clearCount + DEFAULT_POLICY.quietMs / STEP;
    for (let i = 0; i < quiet; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.model, "fan-aaaaaaaaaaaaaaaa");
    fan.model = undefined;
    for (let i = 0; i < DEFAULT_POLICY.clearedHoldMs / STEP; i++) fan.feed(0, healthyReading(random));
    assert.equal(fan.record.state, "ok");
    assert.equal(fan.record.model, null);
    assert.equal("model" in (fan.transitions.at(-1) ?? {}), false);
    assert.ok(FanHealthSchema.safeParse(JSON.parse(JSON.stringify(fan.state))).success, "null survives the store");
  });
});

describe("health evaluator: silence", () => {
  it("a fan that stops reporting is silent after the configured time, by the health process's clock, and comes back where it was", () => {
    const random = seededRandom(15);
    const fan = new Fan();
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    const state = fan.state as FanHealth;
    assert.equal(checkSilence(state, fan.now + DEFAULT_POLICY.silentAfterMs - 1), undefined, "not yet");
    const silent = checkSilence(state, fan.now + DEFAULT_POLICY.silentAfterMs);
    assert.ok(silent);
    assert.equal(silent.next.record.state, "silent");
    assert.deepEqual(
      silent.transitions.map((t) => [t.event, t.alarmId]),
      [["silent", state.record.alarmId]],
    );
    assert.equal(
      checkSilence(silent.next, fan.now + 10 * DEFAULT_POLICY.silentAfterMs),
      undefined,
      "silent once, not again and again",
    );
    const later = T0 + fan.n * STEP + 60_000;
    const back = evaluate(
      silent.next,
      ID,
      [{ prediction: { deviceID: ID, fault: 1, probability: 0.9, reading: faultyReading(random) }, at: later }],
      later,
    );
    assert.equal(back.next.record.state, "alarm");
    assert.equal(back.next.record.alarmId, state.record.alarmId, "the same alarm, not a new one");
    assert.deepEqual(
      back.transitions.map((t) => t.event),
      ["alarm"],
    );
  });

  it("silence is judged on arrival: old reading times arriving now keep the fan from going silent", () => {
    const random = seededRandom(16);
    const now = T0 + 3_600_000;
    const { next } = evaluate(undefined, ID, [input(0, 0, healthyReading(random))], now);
    assert.equal(checkSilence(next, now + 1_000), undefined);
  });
});

describe("health evaluator: acknowledgement", () => {
  it("acknowledges an open alarm once; unknown fans are 404, no open alarm or a second acknowledgement 409", () => {
    const random = seededRandom(17);
    assert.throws(
      () => acknowledge(undefined, "nope", "ann", undefined, T0),
      (e: unknown) => e instanceof HealthNotFoundError && e.status === 404 && /nope/.test(e.message),
    );
    const fan = new Fan();
    fan.feed(0, healthyReading(random));
    assert.throws(
      () => acknowledge(fan.state, ID, "ann", undefined, T0),
      (e: unknown) =>
        e instanceof HealthConflictError && e.status === 409 && /no open warning or alarm/.test(e.message),
    );
    for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
    const { next, transitions } = acknowledge(fan.state, ID, "ann", "replacing the bearing", fan.now + 5_000);
    assert.equal(next.record.acknowledged, true);
    assert.equal(next.record.acknowledgedBy, "ann");
    assert.equal(next.record.note, "replacing the bearing");
    assert.equal(next.record.state, "alarm", "acknowledging does not change the state");
    assert.deepEqual(
      transitions.map((t) => [t.event, t.state, t.acknowledged, t.by, t.note, t.alarmId]),
      [["acknowledged", "alarm", true, "ann", "replacing the bearing", fan.record.alarmId]],
    );
    assert.equal(fan.record.acknowledged, false, "the caller's state is left as it was");
    assert.throws(
      () => acknowledge(next, ID, "bob", undefined, T0),
      (e: unknown) => e instanceof HealthConflictError && /already acknowledged by ann/.test(e.message),
    );
  });

  it("an acknowledged warning that escalates to an alarm must be acknowledged again", () => {
    const random = seededRandom(18);
    const fan = new Fan();
    // Vibration beyond its range now and then: a warning, no alarm yet.
    for (let i = 0; i < 40; i++)
      fan.feed(0, i % 5 === 0 ? { ...healthyReading(random), vibration: 205 } : healthyReading(random));
    assert.equal(fan.record.state, "warning");
    assert.equal(fan.record.cause, "vibration");
    fan.state = acknowledge(fan.state, ID, "ann", undefined, fan.now).next;
    assert.equal(fan.record.acknowledged, true);
    const warningId = fan.record.alarmId;
    for (let i = 0; i < 6; i++) fan.feed(1, { ...healthyReading(random), vibration: 240 });
    assert.equal(fan.record.state, "alarm");
    assert.equal(fan.record.alarmId, warningId, "the same episode");
    assert.equal(fan.record.acknowledged, false, "the alarm is news to whoever acknowledged the warning");
    assert.equal(fan.record.severity, "major", "one sensor out of range");
  });
});

/** A fan in alarm after ten faulty readings (the clock is the reading time). */
function fanInAlarm(seed: number): Fan {
  const random = seededRandom(seed);
  const fan = new Fan();
  for (let i = 0; i < 10; i++) fan.feed(1, faultyReading(random));
  assert.equal(fan.record.state, "alarm");
  return fan;
}

/** Feeds healthy readings until the fan's episode clears (quiet period and all); the transitions made meanwhile. */
function clearFan(fan: Fan, random: Random): AlarmTransition[] {
  const made: AlarmTransition[] = [];
  for (let i = 0; i < 1_000 && fan.record.state !== "cleared"; i++) made.push(...fan.feed(0, healthyReading(random)));
  assert.equal(fan.record.state, "cleared");
  return made;
}

const HOUR = 3_600_000;

describe("health evaluator: shelving", () => {
  it("shelves the open alarm until a time; shelving again moves it; its transitions meanwhile are muted, not the action itself", () => {
    const fan = fanInAlarm(31);
    const now = fan.now + 1_000;
    const { next, transitions } = shelve(fan.state, ID, { until: now + HOUR, by: "ann", note: "parts tomorrow" }, now);
    assert.deepEqual(
      [next.record.state, next.record.shelvedUntil, next.record.shelvedBy],
      ["alarm", new Date(now + HOUR).toISOString(), "ann"],
    );
    assert.deepEqual(
      transitions.map((t) => [t.event, t.state, t.until, t.by, t.note, t.muted, t.alarmId]),
      [
        [
          "shelved",
          "alarm",
          new Date(now + HOUR).toISOString(),
          "ann",
          "parts tomorrow",
          undefined,
          fan.record.alarmId,
        ],
      ],
    );
    assert.equal(fan.record.shelvedUntil, null, "the caller's state is left as it was");
    const again = shelve(next, ID, { until: now + 2 * HOUR, by: "bob" }, now + 5_000);
    assert.deepEqual(
      [again.next.record.shelvedUntil, again.next.record.shelvedBy],
      [new Date(now + 2 * HOUR).toISOString(), "bob"],
    );
    fan.state = again.next;
    const cleared = clearFan(fan, seededRandom(32));
    assert.deepEqual(
      cleared.map((t) => [t.event, t.muted]),
      [["cleared", undefined]],
      "the end of the episode is news to whoever was told of its alarm: never muted",
    );
    assert.deepEqual(
      [fan.record.shelvedUntil, fan.record.shelvedBy],
      [null, null],
      "the shelving ends with its episode",
    );
  });

  it("shelves a silent fan's open episode: its silence is muted; acknowledging meanwhile is not", () => {
    const fan = fanInAlarm(33);
    const silentAt = fan.now + DEFAULT_POLICY.silentAfterMs;
    const shelved = shelve(fan.state, ID, { until: silentAt + HOUR, by: "ann" }, fan.now).next;
    const silent = checkSilence(shelved, silentAt);
    assert.deepEqual(
      silent?.transitions.map((t) => [t.event, t.muted]),
      [["silent", "shelved"]],
    );
    const stillShelved = shelve(silent?.next, ID, { until: silentAt + 2 * HOUR, by: "ann" }, silentAt + 1);
    assert.equal(stillShelved.next.record.state, "silent", "a silent fan with an open episode can be shelved");
    const acknowledged = acknowledge(stillShelved.next, ID, "bob", undefined, silentAt + 2);
    assert.deepEqual(
      acknowledged.transitions.map((t) => [t.event, t.muted]),
      [["acknowledged", undefined]],
      "an action is never muted",
    );
  });

  it("refuses an unknown fan (404), a fan with nothing open (409) and an until that is not in the future (400)", () => {
    const random = seededRandom(34);
    assert.throws(
      () => shelve(undefined, "nope", { until: T0 + HOUR, by: "ann" }, T0),
      (e: unknown) => e instanceof HealthNotFoundError && e.status === 404 && e.field === "deviceID",
    );
    const fan = new Fan();
    fan.feed(0, healthyReading(random));
    assert.throws(
      () => shelve(fan.state, ID, { until: fan.now + HOUR, by: "ann" }, fan.now),
      (e: unknown) => e instanceof HealthConflictError && e.status === 409 && /nothing|no open/.test(e.message),
    );
    const open = fanInAlarm(35);
    for (const until of [open.now, open.now - 1])
      assert.throws(
        () => shelve(open.state, ID, { until, by: "ann" }, open.now),
        (e: unknown) => e instanceof InputError && e.status === 400 && e.field === "until",
      );
  });

  it("a shelving whose time has passed ends with `resumed` while the episode is open (nothing before); the timer's sweep does it", () => {
    const fan = fanInAlarm(36);
    const until = fan.now + HOUR;
    const shelved = shelve(fan.state, ID, { until, by: "ann", note: "later" }, fan.now).next;
    assert.equal(expire(shelved, until - 1), undefined, "not yet");
    const resumed = expire(shelved, until);
    assert.ok(resumed);
    assert.deepEqual([resumed.next.record.shelvedUntil, resumed.next.record.shelvedBy], [null, null]);
    assert.deepEqual(
      resumed.transitions.map((t) => [t.event, t.state, t.alarmId, t.by, t.note, t.muted]),
      [["resumed", "alarm", fan.record.alarmId, undefined, undefined, undefined]],
    );
    assert.equal(expire(resumed.next, until + HOUR), undefined, "once");
    // The timer's look at the fan: the shelving ends, and then it is silent (its last reading long ago).
    assert.deepEqual(
      sweepFan(shelved, until + HOUR)?.transitions.map((t) => [t.event, t.muted]),
      [
        ["resumed", undefined],
        ["silent", undefined],
      ],
    );
    assert.deepEqual(
      sweepFan(shelved, until + HOUR, DEFAULT_POLICY, false)?.transitions.map((t) => t.event),
      ["resumed"],
      "silence only when the timer may judge it",
    );
  });
});

describe("health evaluator: maintenance windows", () => {
  it("puts any fan in maintenance, planned or under way: its transitions within the window (reading time) are muted", () => {
    const random = seededRandom(41);
    const fan = new Fan();
    fan.feed(0, healthyReading(random));
    const from = T0 + 100 * STEP;
    const until = T0 + 200 * STEP;
    const plan = { from, until, by: "ops", note: "bearing swap" };
    const planned = maintain(fan.state, ID, plan, fan.now);
    assert.ok(planned);
    assert.deepEqual(planned.next.record.maintenance, {
      from: new Date(from).toISOString(),
      until: new Date(until).toISOString(),
      by: "ops",
      note: "bearing swap",
    });
    assert.deepEqual(
      planned.transitions.map((t) => [t.event, t.state, t.from, t.until, t.by, t.note, t.muted]),
      [
        [
          "maintenance",
          "ok",
          new Date(from).toISOString(),
          new Date(until).toISOString(),
          "ops",
          "bearing swap",
          undefined,
        ],
      ],
    );
    assert.equal(maintain(planned.next, ID, plan, fan.now + 1), undefined, "the same window again: no change");
    fan.state = planned.next;
    // Faulty before the window: notified; the episode clears; faulty again within it: muted.
    while (fan.n < 20) fan.feed(1, faultyReading(random));
    const before = fan.transitions.filter((t) => t.event === "alarm");
    assert.deepEqual(
      before.map((t) => t.muted),
      [undefined],
    );
    clearFan(fan, random);
    assert.ok(fan.now >= until, "the test's clear took longer than the window");
    // A window of its own for the next alarm: readings within it.
    const window = { from: fan.now, until: fan.now + HOUR, by: "ops" };
    fan.state = maintain(fan.state, ID, window, fan.now)?.next;
    const during: AlarmTransition[] = [];
    for (let i = 0; i < 10; i++) during.push(...fan.feed(1, faultyReading(random)));
    assert.deepEqual(
      during.map((t) => [t.event, t.muted]),
      [["alarm", "maintenance"]],
    );
    assert.equal(fan.record.maintenance?.note, null);
  });

  it("a window that ends passes: `resumed` when an episode is open, no transition when none is", () => {
    const open = fanInAlarm(42);
    const until = open.now + HOUR;
    const inWindow = maintain(open.state, ID, { from: open.now - HOUR, until, by: "ops" }, open.now);
    assert.ok(inWindow);
    assert.equal(expire(inWindow.next, until - 1), undefined);
    const resumed = expire(inWindow.next, until);
    assert.deepEqual(
      [resumed?.next.record.maintenance, resumed?.transitions.map((t) => [t.event, t.state, t.muted])],
      [null, [["resumed", "alarm", undefined]]],
    );
    const random = seededRandom(43);
    const idle = new Fan();
    idle.feed(0, healthyReading(random));
    const planned = maintain(idle.state, ID, { from: idle.now, until: idle.now + HOUR, by: "ops" }, idle.now);
    const ended = expire(planned?.next as FanHealth, idle.now + HOUR);
    assert.deepEqual(
      [ended?.next.record.maintenance, ended?.transitions],
      [null, []],
      "the window is gone; nothing to notify",
    );
  });

  it("a shelving that ends within a maintenance window resumes nothing yet: the window still mutes", () => {
    const fan = fanInAlarm(44);
    const inWindow = maintain(fan.state, ID, { from: fan.now, until: fan.now + 2 * HOUR, by: "ops" }, fan.now);
    const shelved = shelve(inWindow?.next, ID, { until: fan.now + HOUR, by: "ann" }, fan.now);
    const ended = expire(shelved.next, fan.now + HOUR);
    assert.deepEqual([ended?.next.record.shelvedUntil, ended?.transitions], [null, []]);
    assert.deepEqual(
      expire(ended?.next as FanHealth, fan.now + 2 * HOUR)?.transitions.map((t) => t.event),
      ["resumed"],
    );
  });

  it("refuses an unknown fan (404 naming it), a window that ends when or before it starts and an until in the past (400)", () => {
    assert.throws(
      () => maintain(undefined, "nope", { from: T0, until: T0 + HOUR, by: "ops" }, T0),
      (e: unknown) => e instanceof HealthNotFoundError && e.status === 404 && /"nope"/.test(e.message),
    );
    const fan = fanInAlarm(45);
    for (const [from, until] of [
      [fan.now + HOUR, fan.now + HOUR],
      [fan.now + HOUR, fan.now + 1],
      [fan.now - HOUR, fan.now - 1],
    ] as const)
      assert.throws(
        () => maintain(fan.state, ID, { from, until, by: "ops" }, fan.now),
        (e: unknown) => e instanceof InputError && e.status === 400 && e.field === "until",
        `${from}…${until}`,
      );
  });
});

describe("health evaluator: escalation", () => {
  /** Vibration beyond its range more and more often (1 in 8 readings, then closer): a warning whose eta draws nearer. */
  function wearing(fan: Fan, random: Random, readings: number): AlarmTransition[] {
    const made: AlarmTransition[] = [];
    for (let i = 0; i < readings; i++) {
      const n = fan.n;
      const every = Math.max(2, 8 - Math.floor(n / 300));
      made.push(
        ...fan.feed(0, n % every === 0 ? { ...healthyReading(random), vibration: 205 } : healthyReading(random)),
      );
    }
    return made;
  }

  it("raises a warning's severity once, when its eta comes within the horizon of the reading time: an `escalated` transition, state and acknowledgement unchanged", () => {
    const random = seededRandom(51);
    const horizon = 3 * 60_000;
    const fan = new Fan({ ...DEFAULT_POLICY, escalationHorizonMs: horizon });
    const first: AlarmTransition[] = [];
    while (fan.state?.record.state !== "warning") first.push(...wearing(fan, random, 1));
    const warning = first.find((t) => t.event === "warning");
    assert.ok(warning?.eta);
    assert.ok(Date.parse(warning.eta) - Date.parse(warning.at) > horizon, "its first eta is beyond the horizon");
    assert.equal(warning.severity, "minor");
    fan.state = acknowledge(fan.state, ID, "ann", "planned for Monday", fan.now).next;
    let before = Date.parse(fan.record.eta ?? "") - fan.now;
    let escalated: AlarmTransition | undefined;
    for (let i = 0; i < 3_000 && escalated === undefined; i++) {
      escalated = wearing(fan, random, 1).find((t) => t.event === "escalated");
      if (escalated === undefined) before = Date.parse(fan.record.eta ?? "") - fan.now;
    }
    assert.ok(escalated?.eta, "escalated within 3,000 readings");
    assert.ok(before > horizon, `the eta was ${before} ms ahead, beyond the horizon, just before`);
    assert.ok(Date.parse(escalated.eta) - Date.parse(escalated.at) <= horizon, "and within it now");
    assert.deepEqual(
      [escalated.state, escalated.severity, escalated.alarmId, escalated.acknowledged, escalated.muted],
      ["warning", "major", warning.alarmId, true, undefined],
    );
    assert.deepEqual([fan.record.severity, fan.record.acknowledgedBy], ["major", "ann"]);
    const later = wearing(fan, random, 500);
    assert.deepEqual(
      later.filter((t) => t.event === "escalated"),
      [],
      "once per episode",
    );
  });

  it("escalates a warning at once when its first eta is within the horizon already, and not while it is beyond", () => {
    const near = new Fan({ ...DEFAULT_POLICY, escalationHorizonMs: 24 * HOUR });
    const madeNear = wearing(near, seededRandom(52), 100);
    assert.deepEqual(
      madeNear.map((t) => [t.event, t.severity]),
      [
        ["warning", "minor"],
        ["escalated", "major"],
      ],
    );
    assert.equal(madeNear[0]?.at, madeNear[1]?.at, "at the same reading");
    const far = new Fan({ ...DEFAULT_POLICY, escalationHorizonMs: 0 });
    const madeFar = wearing(far, seededRandom(52), 100);
    assert.deepEqual(
      madeFar.map((t) => [t.event, t.severity]),
      [["warning", "minor"]],
    );
  });

  it("HEALTH_ESCALATION_HORIZON is a duration", () => {
    assert.equal(readHealthPolicy({}).escalationHorizonMs, 30 * 60_000);
    assert.equal(readHealthPolicy({ HEALTH_ESCALATION_HORIZON: "1h30m" }).escalationHorizonMs, 90 * 60_000);
    assert.throws(() => readHealthPolicy({ HEALTH_ESCALATION_HORIZON: "soon" }), /HEALTH_ESCALATION_HORIZON/);
  });
});

describe("health evaluator: replays and stored state", () => {
  it("a replayed or older prediction changes nothing; a batch is evaluated in reading-time order", () => {
    const random = seededRandom(19);
    const inputs = Array.from({ length: 12 }, (_, n) =>
      input(n, n >= 4 ? 1 : 0, n >= 4 ? faultyReading(random) : healthyReading(random)),
    );
    const now = T0 + 12 * STEP;
    const inOrder = evaluate(undefined, ID, inputs, now);
    const shuffled = evaluate(undefined, ID, inputs.slice().reverse(), now);
    assert.deepEqual(shuffled, inOrder, "order of arrival within a batch does not matter");
    const replay = evaluate(inOrder.next, ID, inputs.slice(6), now + 1_000);
    assert.deepEqual(replay.transitions, []);
    assert.deepEqual(
      replay.next,
      inOrder.next,
      "a connector retry's replay is skipped whole, the latest reading included",
    );
    const straggler = evaluate(inOrder.next, ID, [input(2, 1, faultyReading(random))], now + 2_000);
    assert.deepEqual(straggler.next.tracker, inOrder.next.tracker, "an older reading does not enter the trends");
    const sameSecond = evaluate(inOrder.next, ID, [{ ...input(11, 0, healthyReading(random)) }], now + 3_000);
    assert.equal(
      sameSecond.next.tracker.n,
      inOrder.next.tracker.n + 1,
      "a different reading with the same time stamp is new",
    );
  });

  it("a reading stamped far in the future (a fan's wrong clock) does not make the fan's later readings look like replays", () => {
    const random = seededRandom(21);
    const now = T0;
    const future = evaluate(
      undefined,
      ID,
      [
        {
          prediction: { deviceID: ID, fault: 0, probability: 0.01, reading: healthyReading(random) },
          at: now + 365 * 86_400_000,
        },
      ],
      now,
    );
    assert.equal(
      future.next.record.lastSeen,
      new Date(now + DEFAULT_POLICY.maxAheadMs).toISOString(),
      "taken as at most HEALTH_MAX_AHEAD_MS ahead",
    );
    const later = now + DEFAULT_POLICY.maxAheadMs + STEP;
    const next = evaluate(
      future.next,
      ID,
      [{ prediction: { deviceID: ID, fault: 0, probability: 0.01, reading: healthyReading(random) }, at: later }],
      later,
    );
    assert.equal(next.next.tracker.n, 2, "the next reading is evaluated");
  });

  it("the stored state survives JSON and parses back with FanHealthSchema", () => {
    const random = seededRandom(20);
    const fan = new Fan();
    for (let i = 0; i < 20; i++) fan.feed(1, faultyReading(random));
    const parsed = FanHealthSchema.parse(JSON.parse(JSON.stringify(fan.state)));
    assert.deepEqual(parsed, fan.state);
    assert.throws(() => FanHealthSchema.parse({ record: fan.record, tracker: { v: 1 } }));
  });

  it("a fan evaluated for weeks keeps its state and ids: the stored times move their base forward and stay small", () => {
    const random = seededRandom(23);
    const day = 86_400_000;
    let state: FanHealth | undefined;
    const transitions: AlarmTransition[] = [];
    // A reading an hour for 20 days, faulty from day 9 on: the alarm opens after two moves of the base.
    for (let n = 0; n < 20 * 24; n++) {
      const at = T0 + n * 3_600_000;
      const fault = n >= 9 * 24 ? 1 : 0;
      const result = evaluate(
        state,
        ID,
        [
          {
            prediction: {
              deviceID: ID,
              fault,
              probability: fault === 1 ? 0.97 : 0.02,
              reading: fault === 1 ? faultyReading(random) : healthyReading(random),
            },
            at,
          },
        ],
        at,
      );
      state = result.next;
      transitions.push(...result.transitions);
    }
    assert.ok(state);
    const alarmAt = T0 + (9 * 24 + 3) * 3_600_000;
    assert.deepEqual(
      transitions.map((t) => [t.event, t.id, t.alarmId]),
      [["alarm", `${ID}:${alarmAt}:0`, `${ID}@${new Date(alarmAt).toISOString()}`]],
    );
    assert.equal(state.record.since, new Date(alarmAt).toISOString());
    assert.equal(state.record.lastSeen, new Date(T0 + (20 * 24 - 1) * 3_600_000).toISOString());
    const t = state.tracker;
    assert.ok(t.base > T0 + 12 * day, "the base moved forward");
    for (const time of [t.lastAt, t.arrivedAt, t.lastFaultAt, t.lastExceedAt, t.stateSince, ...t.runs.map((r) => r[1])])
      assert.ok(time === null || Math.abs(time) < 2 ** 30, `${time} is a small integer`);
    assert.equal(
      checkSilence(state, T0 + 20 * day + DEFAULT_POLICY.silentAfterMs)?.next.record.state,
      "silent",
      "silence still judged on the arrival time",
    );
  });

  it("times are formatted as toISOString formats them", () => {
    const times = [
      0,
      1,
      999,
      59_999,
      86_399_999,
      86_400_000,
      T0,
      T0 + 0.9,
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      -1,
      Date.UTC(10_000, 0, 1),
      Date.UTC(1969, 5, 1),
    ];
    const random = seededRandom(24);
    for (let i = 0; i < 2_000; i++) times.push(Math.floor(random() * 4e12));
    for (const ms of times) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
    assert.throws(() => isoTime(Number.NaN), RangeError);
  });

  it("HEALTH_* variables override the defaults; an impossible value says which", () => {
    assert.equal(readHealthPolicy({}).alarmCount, DEFAULT_POLICY.alarmCount);
    const policy = readHealthPolicy({ HEALTH_SILENT_AFTER_MS: "5000", HEALTH_ALARM_COUNT: "3" });
    assert.equal(policy.silentAfterMs, 5000);
    assert.equal(policy.alarmCount, 3);
    assert.throws(
      () => readHealthPolicy({ HEALTH_ALARM_COUNT: "9" }),
      /HEALTH_ALARM_COUNT \(9\) is more than HEALTH_ALARM_WINDOW \(5\)/,
    );
    assert.throws(() => readHealthPolicy({ HEALTH_QUIET_MS: "soon" }), /HEALTH_QUIET_MS/);
  });
});

describe("health evaluator: early warning, with the real model", { timeout: 120_000 }, () => {
  it("a fan whose vibration drifts is warned about, naming vibration, with an eta, well before its alarm", async () => {
    const model = await ScoringModel.load("model/artifact", { backend: "wasm" });
    try {
      const [fan] = createFleet({
        fans: 1,
        faulty: 0,
        degrading: 0,
        bearing: 1,
        intervalMs: STEP,
        degradeMs: 2 * 3_600_000,
        onsetMs: 3_600_000,
        seed: 3,
      });
      assert.ok(fan);
      const readings = Array.from({ length: fan.truth.failsAtReading as number }, () => fan.next());
      const scored = model.predict(readings.map((r) => FEATURES.map((f) => r[f])));
      const transitions: AlarmTransition[] = [];
      let state: FanHealth | undefined;
      readings.forEach((reading, n) => {
        const at = T0 + n * STEP;
        const result = evaluate(
          state,
          "bearing",
          [
            {
              prediction: { deviceID: "bearing", ...(scored[n] as { fault: 0 | 1; probability: number }), reading },
              at,
            },
          ],
          at,
        );
        state = result.next;
        transitions.push(...result.transitions);
      });
      const warning = transitions.find((t) => t.event === "warning");
      const alarm = transitions.find((t) => t.event === "alarm");
      assert.ok(warning && alarm, `warned and alarmed: ${transitions.map((t) => t.event).join(", ")}`);
      const wearStart = T0 + (fan.truth.wearStartsAtReading as number) * STEP;
      assert.ok(Date.parse(warning.at) > wearStart, "not before the wear began");
      assert.ok(Date.parse(warning.at) < Date.parse(alarm.at), "before the alarm");
      assert.equal(warning.cause, "vibration");
      assert.equal(warning.severity, "minor");
      assert.equal(alarm.alarmId, warning.alarmId, "the alarm continues the warning's episode");
      const eta = Date.parse(warning.eta ?? "");
      const actual = Date.parse(alarm.at) - Date.parse(warning.at);
      assert.ok(eta > Date.parse(warning.at), "the eta is ahead");
      assert.ok(
        eta - Date.parse(warning.at) > actual / 5 && eta - Date.parse(warning.at) < actual * 5,
        `eta in ${(eta - Date.parse(warning.at)) / 60_000} min, alarm came in ${actual / 60_000} min`,
      );
    } finally {
      model.dispose();
    }
  });
});
