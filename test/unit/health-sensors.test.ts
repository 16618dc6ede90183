import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate, FanHealthSchema, type FanHealth, type HealthInput } from "../../functions/health/evaluator.js";
import { DEFAULT_POLICY, readHealthPolicy, type HealthPolicy } from "../../functions/health/policy.js";
import { newSensorTrack, noteImplausible, noteReading, sensorsBelievable } from "../../functions/health/sensors.js";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { FEATURES } from "../../lib/domain/features.js";
import type { AlarmTransition } from "../../lib/domain/health.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import type { SensorNotice } from "../../lib/domain/sensor-notice.js";
import { drawReading } from "../../simulation/draw.js";
import { seededRandom, type Random } from "../../simulation/rng.js";

// The sensor rules (functions/health/sensors.ts) and how health applies them, with a fake clock:
// reading n of a fan is at T0 + n × 2 s and arrives then.
const T0 = Date.UTC(2026, 11, 7, 8);
const STEP = 2_000;
const ID = "7";
const SMALL: HealthPolicy = { ...DEFAULT_POLICY, stuckReadings: 5, clearReadings: 10 };

const healthy = (random: Random) =>
  Object.fromEntries(FEATURES.map((f) => [f, drawReading(HEALTHY_RANGES[f], random)])) as PerSensor;

describe("the sensor rules", () => {
  it("find a stuck sensor on the Nth identical value in a row, and not before", () => {
    let track = newSensorTrack();
    const reading = { rotation: 600.1, temperature: 40.2, vibration: 150.3, sound: 48.4 };
    for (let i = 1; i < SMALL.stuckReadings; i++) {
      const step = noteReading(track, { ...reading, rotation: 600 + i }, SMALL);
      assert.equal(step.finding, undefined, `reading ${i}: rotation moves, the rest have repeated ${i} times`);
      track = step.track;
    }
    const last = noteReading(track, { ...reading, rotation: 700 }, SMALL);
    assert.deepEqual(last.finding, { sensor: "temperature", cause: "stuck", value: 40.2 });
    assert.equal(last.track.okRun, 0);
  });

  it("never call a value of 0 stuck: a stopped fan reads 0 rpm and no vibration for as long as it stands", () => {
    let track = newSensorTrack();
    for (let i = 0; i < 50; i++) {
      const step = noteReading(
        track,
        { rotation: 0, temperature: 20 + i / 10, vibration: 0, sound: 30 + i / 10 },
        SMALL,
      );
      assert.equal(step.finding, undefined);
      track = step.track;
    }
    assert.ok(sensorsBelievable(track, SMALL));
  });

  it("find an implausible sensor on the Kth implausible reading of that sensor within the window, not of any sensor", () => {
    const policy = { ...DEFAULT_POLICY, implausibleCount: 3, implausibleWindowMs: 60_000 };
    let track = newSensorTrack();
    let step = noteImplausible(track, "rotation", -5, T0, policy);
    step = noteImplausible(step.track, "sound", 300, T0 + 1_000, policy);
    step = noteImplausible(step.track, "rotation", -5, T0 + 2_000, policy);
    assert.equal(step.finding, undefined, "two of rotation, one of sound");
    // The first rotation falls out of the window: still two.
    const late = noteImplausible(step.track, "rotation", -5, T0 + 60_000, policy);
    assert.equal(late.finding, undefined);
    track = late.track;
    const third = noteImplausible(track, "rotation", 25_000, T0 + 61_000, policy);
    assert.deepEqual(third.finding, { sensor: "rotation", cause: "implausible", value: 25_000 });
  });

  it("keep a bounded memory whatever a broken sensor sends", () => {
    let track = newSensorTrack();
    for (let i = 0; i < 10_000; i++) track = noteImplausible(track, FEATURES[i % 4]!, -1, T0 + i, DEFAULT_POLICY).track;
    assert.ok(track.implausible.length <= DEFAULT_POLICY.implausibleCount * FEATURES.length);
  });

  it("the default N: the simulator's healthy sensors never repeat a value that often by chance", () => {
    const random = seededRandom(7);
    let track = newSensorTrack();
    let longest = 0;
    for (let i = 0; i < 200_000; i++) {
      const step = noteReading(track, healthy(random), DEFAULT_POLICY);
      assert.equal(step.finding, undefined, `reading ${i}`);
      track = step.track;
      longest = Math.max(longest, ...track.same);
    }
    assert.ok(longest < DEFAULT_POLICY.stuckReadings / 3, `longest run ${longest}`);
  });

  it("are settings, refused when impossible", () => {
    const policy = readHealthPolicy({
      HEALTH_STUCK_READINGS: "12",
      HEALTH_SENSOR_IMPLAUSIBLE_COUNT: "2",
      HEALTH_SENSOR_WINDOW: "5m",
      HEALTH_SENSOR_CLEAR_READINGS: "40",
    });
    assert.deepEqual(
      [policy.stuckReadings, policy.implausibleCount, policy.implausibleWindowMs, policy.clearReadings],
      [12, 2, 300_000, 40],
    );
    assert.throws(() => readHealthPolicy({ HEALTH_STUCK_READINGS: "1" }), /HEALTH_STUCK_READINGS/);
    assert.throws(() => readHealthPolicy({ HEALTH_SENSOR_WINDOW: "soon" }), /HEALTH_SENSOR_WINDOW/);
  });
});

/** A fan fed one reading per evaluate() call, as the function does. */
class Fan {
  state: FanHealth | undefined;
  readonly transitions: AlarmTransition[] = [];
  n = 0;

  constructor(private readonly policy: HealthPolicy = SMALL) {}

  predict(reading: PerSensor, fault: 0 | 1 = 0, cause?: (typeof FEATURES)[number]): AlarmTransition[] {
    const at = T0 + this.n++ * STEP;
    const prediction: HealthInput["prediction"] = {
      deviceID: ID,
      fault,
      probability: fault === 1 ? 0.97 : 0.02,
      reading,
      ...(cause === undefined ? {} : { cause }),
    };
    return this.#apply(evaluate(this.state, ID, [{ prediction, at }], at, this.policy));
  }

  implausible(sensor: (typeof FEATURES)[number], value: number): AlarmTransition[] {
    const at = T0 + this.n++ * STEP;
    const notice: SensorNotice = {
      deviceID: ID,
      implausible: { sensor, value, code: "FANWATCH_READING_IMPLAUSIBLE" },
    };
    return this.#apply(evaluate(this.state, ID, [], at, this.policy, [{ notice, at }]));
  }

  #apply({ next, transitions }: ReturnType<typeof evaluate>): AlarmTransition[] {
    // Through JSON, as the store keeps it: what is read back must parse.
    this.state = FanHealthSchema.parse(JSON.parse(JSON.stringify(next)));
    this.transitions.push(...transitions);
    return transitions;
  }
}

describe("health's sensor issues", () => {
  it("opens an implausible sensor issue beside the fan's state on the Kth notice, once; no fan alarm", () => {
    const fan = new Fan();
    const random = seededRandom(1);
    fan.predict(healthy(random));
    assert.deepEqual(fan.implausible("rotation", -600), []);
    fan.predict(healthy(random));
    assert.deepEqual(fan.implausible("rotation", -600), []);
    const [opened, ...rest] = fan.implausible("rotation", 25_000);
    assert.deepEqual(rest, []);
    assert.equal(opened?.event, "sensor");
    assert.equal(opened?.state, "ok", "the fan's state is its own");
    assert.equal(opened?.severity, "none");
    assert.deepEqual(opened?.sensorIssue, {
      sensor: "rotation",
      cause: "implausible",
      value: 25_000,
      since: new Date(T0 + 4 * STEP).toISOString(),
    });
    assert.deepEqual(fan.state?.record.sensorIssue, opened?.sensorIssue);
    assert.equal(fan.state?.record.state, "ok");
    assert.deepEqual(fan.implausible("rotation", -1), [], "one issue, not one per notice");
    assert.equal(fan.state?.record.lastSeen, new Date(T0 + 5 * STEP).toISOString(), "a notice is the fan reporting");
  });

  it("opens a stuck sensor issue, clears it after M plausible moving readings, and says which issue cleared", () => {
    const fan = new Fan();
    const random = seededRandom(2);
    for (let i = 0; i < SMALL.stuckReadings - 1; i++)
      assert.deepEqual(fan.predict({ ...healthy(random), sound: 49.9 }), []);
    const [stuck] = fan.predict({ ...healthy(random), sound: 49.9 });
    assert.equal(stuck?.event, "sensor");
    assert.deepEqual(
      { sensor: stuck?.sensorIssue?.sensor, cause: stuck?.sensorIssue?.cause },
      { sensor: "sound", cause: "stuck" },
    );
    // Still stuck: nothing clears, however long.
    for (let i = 0; i < 3 * SMALL.clearReadings; i++)
      assert.deepEqual(fan.predict({ ...healthy(random), sound: 49.9 }), []);
    // Repaired: M moving readings clear it, not one fewer.
    for (let i = 0; i < SMALL.clearReadings - 1; i++) assert.deepEqual(fan.predict(healthy(random)), []);
    const [cleared, ...rest] = fan.predict(healthy(random));
    assert.deepEqual(rest, []);
    assert.equal(cleared?.event, "sensor-cleared");
    assert.deepEqual(cleared?.sensorIssue, stuck?.sensorIssue);
    assert.equal(fan.state?.record.sensorIssue, null);
  });

  it("does not count faults blamed on a distrusted sensor towards an alarm, and still those blamed on the others", () => {
    const fan = new Fan();
    const random = seededRandom(3);
    // Vibration stuck at a value the model reads as a fault.
    for (let i = 0; i < SMALL.stuckReadings; i++) fan.predict({ ...healthy(random), vibration: 240 }, 1, "vibration");
    assert.deepEqual(
      fan.transitions.map((t) => t.event),
      ["alarm", "sensor"],
      "the alarm came before the sensor could be known stuck",
    );
    const cleared = new Fan();
    for (let i = 0; i < SMALL.stuckReadings; i++) cleared.predict({ ...healthy(random), vibration: 151.1 });
    assert.deepEqual(
      cleared.transitions.map((t) => t.event),
      ["sensor"],
    );
    for (let i = 0; i < 20; i++) cleared.predict({ ...healthy(random), vibration: 151.1 }, 1, "vibration");
    assert.deepEqual(
      cleared.transitions.map((t) => t.event),
      ["sensor"],
      "faults blamed on the stuck sensor raise nothing",
    );
    assert.equal(cleared.state?.record.state, "ok");
    for (let i = 0; i < 5; i++)
      cleared.predict({ ...healthy(random), vibration: 151.1, temperature: 55 }, 1, "temperature");
    assert.deepEqual(
      cleared.transitions.map((t) => [t.event, t.cause]),
      [
        ["sensor", null],
        ["alarm", "temperature"],
      ],
    );
  });

  it("reads a record stored before sensor issues existed, and adds the field", () => {
    const fan = new Fan();
    fan.predict(healthy(seededRandom(4)));
    const old = JSON.parse(JSON.stringify(fan.state)) as {
      record: Record<string, unknown>;
      tracker: Record<string, unknown>;
    };
    delete old.record.sensorIssue;
    delete old.tracker.sensors;
    fan.state = FanHealthSchema.parse(old);
    assert.deepEqual(fan.predict(healthy(seededRandom(5))), []);
    assert.ok(fan.state.tracker.sensors !== undefined);
  });
});
