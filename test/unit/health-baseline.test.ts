import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { acknowledge, evaluate, expire, maintain, type FanHealth } from "../../functions/health/evaluator.js";
import { recordFinding } from "../../functions/health/episode-notes.js";
import { publishedBaseline } from "../../functions/health/baseline.js";
import { worthPublishing } from "../../functions/health/baseline-publisher.js";
import { DEFAULT_POLICY, readHealthPolicy, type HealthPolicy } from "../../functions/health/policy.js";
import { HEALTHY_RANGES, type Range } from "../../lib/domain/fan-ranges.js";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import type { AlarmTransition } from "../../lib/domain/health.js";
import type { PublishedBaseline } from "../../lib/domain/baseline.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import { ConfigError } from "../../lib/errors.js";
import { drawReadings, type FanRanges, type ProfileName, type Ranges } from "../../simulation/fan-profiles.js";
import { seededRandom, type Random } from "../../simulation/rng.js";

// Pure tests with a fake clock: reading n of a fan is at T0 + n × 2 s and arrives then.
const T0 = Date.UTC(2026, 11, 7, 8);
const STEP = 2_000;
const HOUR = 3_600_000;
const ID = "own-7";
const LEARN = DEFAULT_POLICY.baselineReadings;

/**
 * A fan at its own level: each sensor spread evenly over a narrow band well inside the fleet's
 * healthy range (lib/domain/fan-ranges.ts), as simulation/fan-profiles.ts's own-level fans.
 */
const OWN: Ranges = {
  rotation: { min: 630, max: 650 },
  temperature: { min: 37.4, max: 38.6 },
  vibration: { min: 123, max: 137 },
  sound: { min: 48.5, max: 49.5 },
};

const middle = (r: Range) => (r.min + r.max) / 2;
const halfWidth = (r: Range) => (r.max - r.min) / 2;

function inFleetRange(reading: PerSensor): boolean {
  return FEATURES.every((f) => reading[f] >= HEALTHY_RANGES[f].min && reading[f] <= HEALTHY_RANGES[f].max);
}

/** Feeds readings one evaluate() call each, as the function does; collects the transitions. */
class Fan {
  state: FanHealth | undefined;
  readonly transitions: AlarmTransition[] = [];
  n = 0;

  constructor(private readonly policy: HealthPolicy = DEFAULT_POLICY) {}

  /** The model's verdict, as the tests decide it: faulty exactly when a sensor is beyond the fleet's range. */
  feed(reading: PerSensor): AlarmTransition[] {
    const fault = inFleetRange(reading) ? 0 : 1;
    const at = T0 + this.n++ * STEP;
    const prediction = { deviceID: ID, fault, probability: fault === 1 ? 0.97 : 0.02, reading } as const;
    const { next, transitions } = evaluate(this.state, ID, [{ prediction, at }], at, this.policy);
    this.state = next;
    this.transitions.push(...transitions);
    return transitions;
  }

  get now(): number {
    return T0 + (this.n - 1) * STEP;
  }

  get health(): FanHealth {
    assert.ok(this.state);
    return this.state;
  }

  get published(): PublishedBaseline {
    const baseline = this.health.tracker.baseline;
    assert.ok(baseline, "the fan has a baseline");
    const frozen = this.health.tracker.state === "warning" || this.health.tracker.state === "alarm";
    return publishedBaseline(ID, baseline, frozen, this.policy);
  }

  events(): string[] {
    return this.transitions.map((t) => t.event);
  }
}

/**
 * An own-level fan whose `drifting` sensors move (simulation's drift shapes) from its own level
 * towards their worn range from reading `startAt` on, reaching it after `wearReadings` readings.
 */
function ownFan(drifting: readonly FeatureName[], startAt: number, wearReadings: number, seed: number) {
  const random: Random = seededRandom(seed);
  const fan: FanRanges = { healthy: OWN, drifting };
  const profile: ProfileName = drifting.length === 0 ? "healthy" : drifting.length === 1 ? "drift" : "drift-pair";
  return (n: number): PerSensor => drawReadings(profile, Math.max(0, n - startAt) / wearReadings, random, false, fan);
}

/**
 * Feeds the drifting fan until its first transition, stopping before any reading leaves the
 * fleet's healthy range: the warning, if any, came while every reading was within it.
 */
function feedWhileInRange(fan: Fan, reading: (n: number) => PerSensor, limit: number): AlarmTransition | undefined {
  while (fan.n < limit) {
    const r = reading(fan.n);
    if (!inFleetRange(r)) return undefined;
    const [first] = fan.feed(r);
    if (first !== undefined) return first;
  }
  return undefined;
}

describe("health baselines: learning", () => {
  it(`a fan at its own level learns its baseline from its first ${LEARN} readings: near its true level and spread`, () => {
    const fan = new Fan();
    const reading = ownFan([], 0, 1, 101);
    for (let i = 0; i < LEARN - 1; i++) fan.feed(reading(fan.n));
    assert.equal(fan.health.tracker.baseline?.readyAt, null, "one reading short: still learning");
    assert.equal(fan.published.state, "learning");
    fan.feed(reading(fan.n));
    assert.equal(fan.health.tracker.baseline?.readyAt, fan.now, "ready with its last reading learnt");
    const published = fan.published;
    assert.deepEqual(
      [published.state, published.readings, published.needs, published.reason, published.readyAt],
      ["ready", LEARN, LEARN, "new", new Date(fan.now).toISOString()],
    );
    for (const f of FEATURES) {
      const hw = halfWidth(OWN[f]);
      const { level, spread } = published.sensors[f];
      // Uniform over ±hw: mean the band's middle, standard deviation hw/√3.
      assert.ok(Math.abs(level - middle(OWN[f])) < 0.05 * hw, `${f} level ${level}, true ${middle(OWN[f])}`);
      const trueSpread = hw / Math.sqrt(3);
      assert.ok(Math.abs(spread / trueSpread - 1) < 0.06, `${f} spread ${spread}, true ${trueSpread.toFixed(4)}`);
    }
    assert.deepEqual(fan.transitions, [], "learning raises nothing");
  });
});

describe("health baselines: drift", () => {
  // Temperature leaves the fan's own level (38 °C) 200 readings after its baseline is ready and
  // would reach the middle of its worn range (50 °C) after 20,000 more: a slow drift, which stays
  // inside the fleet's 35–45 °C for more than 10,000 readings.
  const START = LEARN + 200;
  const WEAR = 20_000;

  it("a single sensor drifting from its own level is warned about while every reading is inside the fleet's range: basis baseline, the sensor named, an eta with its interval", () => {
    const fan = new Fan();
    const warning = feedWhileInRange(fan, ownFan(["temperature"], START, WEAR, 102), START + WEAR);
    assert.ok(warning, `a warning before temperature left 35–45 °C (fed ${fan.n} readings)`);
    assert.deepEqual(
      [warning.event, warning.severity, warning.basis, warning.sensors, warning.cause],
      ["warning", "minor", "baseline", ["temperature"], "temperature"],
    );
    assert.ok(fan.n > START, "not before the drift began");
    const at = Date.parse(warning.at);
    assert.ok(warning.eta && warning.etaInterval, "an eta and its interval");
    const eta = Date.parse(warning.eta);
    const { from, to, coverage } = warning.etaInterval;
    assert.ok(eta > at, `eta ${warning.eta} after the warning at ${warning.at}`);
    assert.ok(Date.parse(from) <= eta && eta <= Date.parse(to), `${from} ≤ ${warning.eta} ≤ ${to}`);
    assert.ok(Date.parse(from) > at, "the interval is in the future too");
    assert.equal(coverage, 0.8);
    assert.deepEqual(
      [fan.health.record.basis, fan.health.record.sensors, fan.health.record.etaInterval],
      ["baseline", ["temperature"], warning.etaInterval],
      "the record says the same",
    );
  });

  it("with HEALTH_BASELINE_READINGS=0 (no baselines) the same readings raise nothing while they stay inside the fleet's range", () => {
    const policy = readHealthPolicy({ HEALTH_BASELINE_READINGS: "0" });
    assert.equal(policy.baselineReadings, 0);
    const fan = new Fan(policy);
    const reading = ownFan(["temperature"], START, WEAR, 102);
    const transition = feedWhileInRange(fan, reading, START + WEAR);
    assert.equal(transition, undefined, JSON.stringify(transition));
    assert.ok(fan.n > START + 10_000, `fed ${fan.n} readings, well into the drift`);
    assert.equal(fan.health.record.state, "ok");
    assert.equal(fan.health.tracker.baseline, undefined, "no baseline learnt");
  });

  it("two sensors drifting together: the warning names both", () => {
    const fan = new Fan();
    const warning = feedWhileInRange(fan, ownFan(["temperature", "vibration"], START, WEAR, 103), START + WEAR);
    assert.ok(warning, `a warning while inside the fleet's range (fed ${fan.n} readings)`);
    assert.equal(warning.event, "warning");
    assert.equal(warning.basis, "baseline");
    assert.deepEqual([...(warning.sensors ?? [])].sort(), ["temperature", "vibration"]);
    assert.equal(warning.cause, warning.sensors?.[0], "the cause is named first");
    assert.ok(warning.etaInterval && warning.eta, "an eta and its interval");
  });

  it("a fan that wears before its baseline is ready warns on the fleet's range once it leaves it, and says so", () => {
    const fan = new Fan();
    // Temperature drifts from the first reading, leaving 35–45 °C after about 1,600 readings.
    const reading = ownFan(["temperature"], 0, 3_000, 104);
    let warning: AlarmTransition | undefined;
    let leftAt: number | undefined;
    while (warning === undefined && fan.n < 3_000) {
      const r = reading(fan.n);
      if (!inFleetRange(r)) leftAt ??= fan.n;
      warning = fan.feed(r).find((t) => t.event === "warning");
    }
    assert.ok(warning, `a warning (events ${fan.events().join(", ")})`);
    assert.ok(leftAt !== undefined && fan.n > leftAt, "after the readings left the fleet's range");
    assert.equal(fan.health.tracker.baseline?.readyAt, null, "the baseline was still being learnt");
    assert.deepEqual([warning.basis, warning.sensors, warning.cause], ["fleet-range", ["temperature"], "temperature"]);
    // The eta comes once the exceedances give a trend; an interval with it.
    for (let i = 0; i < 300 && fan.health.record.eta == null; i++) fan.feed(reading(fan.n));
    const record = fan.health.record;
    assert.equal(record.state, "warning", `still a warning (events ${fan.events().join(", ")})`);
    assert.ok(record.eta && record.etaInterval, "an eta and its interval");
    const eta = Date.parse(record.eta);
    assert.ok(Date.parse(record.etaInterval.from) <= eta && eta <= Date.parse(record.etaInterval.to));
    assert.equal(record.etaInterval.coverage, 0.8);
    assert.equal(record.basis, "fleet-range");
  });

  it("HEALTH_ETA_COVERAGE sets a drift's stated coverage; a fleet-range interval keeps its measured 0.8", () => {
    const policy = readHealthPolicy({ HEALTH_ETA_COVERAGE: "0.95" });
    const drifting = new Fan(policy);
    const warning = feedWhileInRange(drifting, ownFan(["temperature"], START, WEAR, 102), START + WEAR);
    assert.deepEqual([warning?.basis, warning?.etaInterval?.coverage], ["baseline", 0.95]);
    const young = new Fan(policy);
    const reading = ownFan(["temperature"], 0, 3_000, 104);
    while (young.n < 3_000 && young.state?.record.etaInterval == null) young.feed(reading(young.n));
    assert.deepEqual([young.health.record.basis, young.health.record.etaInterval?.coverage], ["fleet-range", 0.8]);
  });

  it("a baseline learnt, then baselines turned off: what was learnt is dropped and decides nothing", () => {
    const fan = new Fan();
    const reading = ownFan(["temperature"], START, WEAR, 102);
    assert.ok(feedWhileInRange(fan, reading, START + WEAR), "a drift warning with baselines on");
    const off = new Fan(readHealthPolicy({ HEALTH_BASELINE_READINGS: "0" }));
    off.state = fan.state;
    off.n = fan.n;
    off.feed(reading(off.n));
    assert.deepEqual([off.health.tracker.baseline, off.health.tracker.drift], [undefined, undefined]);
  });

  it("a drift warning clears once the fan is back at its level, and does not open again while its statistic wanders near h", () => {
    const fan = new Fan();
    const drift = ownFan(["temperature"], START, WEAR, 107);
    assert.ok(feedWhileInRange(fan, drift, START + WEAR), "a drift warning");
    // Repaired without a finding: back at its own level for good.
    const steady = ownFan([], 0, 1, 108);
    for (let i = 0; i < 20_000; i++) fan.feed(steady(fan.n));
    const events = fan.events();
    assert.deepEqual(events.slice(0, 2), ["warning", "cleared"], events.join(", "));
    assert.equal(events.filter((e) => e === "warning").length, 1, `one episode: ${events.join(", ")}`);
  });

  it("a sensor under an issue (stuck) loses its drift statistic: evidence of nothing", () => {
    const fan = new Fan();
    const drift = ownFan(["temperature"], START, WEAR, 102);
    assert.ok(feedWhileInRange(fan, drift, START + WEAR), "a drift warning");
    const stuckAt = drift(fan.n).temperature;
    for (let i = 0; i < DEFAULT_POLICY.stuckReadings + 1; i++) fan.feed({ ...drift(fan.n), temperature: stuckAt });
    assert.equal(fan.health.record.sensorIssue?.sensor, "temperature", "temperature is stuck");
    const drifts = fan.health.tracker.drift ?? [];
    const t = FEATURES.indexOf("temperature");
    assert.deepEqual([drifts[8 * t], drifts[8 * t + 4]], [0, 0], "both of its sides start again");
  });

  it("a healthy own-level fan and a noisy one (single readings far beyond the fleet's range) raise nothing in 100,000 readings", () => {
    for (const [profile, seed] of [
      ["healthy", 105],
      ["noisy", 106],
    ] as const) {
      const random = seededRandom(seed);
      const fan = new Fan();
      let spikes = 0;
      for (let i = 0; i < 100_000; i++) {
        const r = drawReadings(profile, 0, random, false, { healthy: OWN, drifting: [] });
        if (!inFleetRange(r)) spikes++;
        fan.feed(r);
      }
      if (profile === "noisy") assert.ok(spikes > 100, `${spikes} spikes, each a faulty prediction`);
      else assert.equal(spikes, 0);
      assert.deepEqual(fan.events(), [], `${profile}: no warning, no alarm`);
      assert.equal(fan.published.state, "ready", `${profile}: its baseline is ready`);
      for (const f of FEATURES)
        assert.ok(
          Math.abs(fan.published.sensors[f].level - middle(OWN[f])) < 0.1 * halfWidth(OWN[f]),
          `${profile}: ${f} level ${fan.published.sensors[f].level} stays at the fan's own level`,
        );
    }
  });
});

describe("health baselines: frozen, and learnt again", () => {
  /** An own-level fan with a ready baseline, then a warning from vibration leaving its fleet range now and then. */
  function fanWithWarning(seed: number): { fan: Fan; reading: (n: number) => PerSensor } {
    const fan = new Fan();
    const reading = ownFan([], 0, 1, seed);
    for (let i = 0; i < LEARN + 100; i++) fan.feed(reading(fan.n));
    assert.equal(fan.published.state, "ready");
    for (let i = 0; i < 20; i++) fan.feed(i % 5 === 0 ? { ...reading(fan.n), vibration: 205 } : reading(fan.n));
    assert.equal(fan.health.record.state, "warning", `events ${fan.events().join(", ")}`);
    return { fan, reading };
  }

  it("while a warning is open the baseline does not move; once it has cleared it moves again", () => {
    const { fan, reading } = fanWithWarning(107);
    const held = fan.health.tracker.baseline;
    assert.equal(fan.published.frozen, true);
    // Healthy readings at the fan's own level: the warning stays open for the quiet period.
    for (let i = 0; i < 250; i++) fan.feed(reading(fan.n));
    assert.equal(fan.health.record.state, "warning");
    assert.deepEqual(fan.health.tracker.baseline?.mean, held?.mean, "the level is held");
    assert.deepEqual(fan.health.tracker.baseline?.variance, held?.variance, "the spread is held");
    assert.equal(fan.health.tracker.baseline?.updatedAt, held?.updatedAt, "no reading learnt");
    for (let i = 0; i < 1_000 && fan.health.record.state === "warning"; i++) fan.feed(reading(fan.n));
    assert.equal(fan.health.record.state, "cleared");
    assert.equal(fan.published.frozen, false);
    for (let i = 0; i < 200; i++) fan.feed(reading(fan.n));
    assert.ok((fan.health.tracker.baseline?.updatedAt ?? 0) > (held?.updatedAt ?? 0), "learning again");
    assert.notDeepEqual(fan.health.tracker.baseline?.mean, held?.mean);
  });

  it("a finding on the fan's episode restarts the learning (reason finding); `not-checked` does not", () => {
    const { fan } = fanWithWarning(108);
    const alarmId = fan.health.record.alarmId;
    assert.ok(alarmId);
    const acked = acknowledge(fan.state, ID, "ana", undefined, fan.now).next;
    const unchecked = recordFinding(acked, ID, alarmId, { result: "not-checked", by: "ana" }, fan.now).next;
    assert.notEqual(unchecked.tracker.baseline?.readyAt, null, "nobody looked: the baseline stays");
    for (const result of ["confirmed", "false-alarm"] as const) {
      const found: FanHealth = recordFinding(acked, ID, alarmId, { result, by: "ana" }, fan.now + 1_000).next;
      const baseline = found.tracker.baseline;
      assert.ok(baseline, result);
      assert.deepEqual(
        [baseline.readyAt, baseline.reason, baseline.n, found.tracker.drift],
        [null, "finding", 0, undefined],
        result,
      );
      assert.equal(publishedBaseline(ID, baseline, false, DEFAULT_POLICY).state, "learning");
    }
  });

  it("the end of a maintenance window restarts the learning (reason maintenance), not its start", () => {
    const fan = new Fan();
    const reading = ownFan([], 0, 1, 109);
    for (let i = 0; i < LEARN; i++) fan.feed(reading(fan.n));
    const readyAt = fan.health.tracker.baseline?.readyAt;
    assert.equal(readyAt, fan.now);
    const until = fan.now + HOUR;
    const planned = maintain(fan.state, ID, { from: fan.now, until, by: "ops" }, fan.now);
    assert.ok(planned);
    assert.equal(planned.next.tracker.baseline?.readyAt, readyAt, "the window starting changes nothing");
    assert.equal(expire(planned.next, until - 1), undefined, "not over yet");
    const ended = expire(planned.next, until);
    assert.ok(ended);
    assert.deepEqual(
      [ended.next.record.maintenance, ended.next.tracker.baseline?.readyAt, ended.next.tracker.baseline?.reason],
      [null, null, "maintenance"],
    );
    // It is learnt anew from the readings after the window.
    fan.state = ended.next;
    fan.n += HOUR / STEP;
    for (let i = 0; i < LEARN; i++) fan.feed(reading(fan.n));
    assert.deepEqual([fan.published.state, fan.published.reason], ["ready", "maintenance"]);
  });

  it("a baseline learnt again says it began with the first reading learnt, by reading time, even when the clock runs hours ahead of the readings", () => {
    const fan = new Fan();
    const reading = ownFan([], 0, 1, 110);
    for (let i = 0; i < LEARN; i++) fan.feed(reading(fan.n));
    const clock = fan.now + 6 * HOUR; // the health process's clock: the readings arrive late
    const planned = maintain(fan.state, ID, { from: clock, until: clock + 1_000, by: "ops" }, clock);
    const ended = expire(planned?.next as FanHealth, clock + 1_000);
    fan.state = ended?.next;
    const firstAfter = fan.now + STEP;
    for (let i = 0; i < LEARN; i++) fan.feed(reading(fan.n));
    const published = fan.published;
    assert.equal(published.since, new Date(firstAfter).toISOString());
    assert.ok(Date.parse(published.since) <= Date.parse(published.readyAt as string));
  });
});

describe("health baselines: settings", () => {
  it("reads HEALTH_DRIFT_K, HEALTH_DRIFT_H, HEALTH_DRIFT_RATE_ERROR and HEALTH_ETA_COVERAGE", () => {
    const policy = readHealthPolicy({
      HEALTH_DRIFT_K: "0.75",
      HEALTH_DRIFT_H: "30",
      HEALTH_DRIFT_RATE_ERROR: "0.2",
      HEALTH_ETA_COVERAGE: "0.9",
    });
    assert.deepEqual([policy.driftK, policy.driftH, policy.driftRateError, policy.etaCoverage], [0.75, 30, 0.2, 0.9]);
  });

  it("refuses bad values with a ConfigError naming the variable", () => {
    const bad: Array<[string, string]> = [
      ["HEALTH_DRIFT_H", "0"],
      ["HEALTH_DRIFT_H", "-5"],
      ["HEALTH_DRIFT_H", "high"],
      ["HEALTH_DRIFT_K", "-0.5"],
      ["HEALTH_DRIFT_K", "lots"],
      ["HEALTH_ETA_COVERAGE", "1"],
      ["HEALTH_ETA_COVERAGE", "0.2"],
      ["HEALTH_ETA_COVERAGE", "80%"],
      ["HEALTH_DRIFT_RATE_ERROR", "0"],
      ["HEALTH_DRIFT_RATE_ERROR", "-0.1"],
      ["HEALTH_BASELINE_READINGS", "-1"],
      ["HEALTH_BASELINE_READINGS", "1.5"],
    ];
    for (const [name, value] of bad)
      assert.throws(
        () => readHealthPolicy({ [name]: value }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(name),
        `${name}=${value}`,
      );
  });
});

describe("health baselines: when fan_baselines is written", () => {
  it("on the first write, when ready, when it freezes or thaws, after an hour of readings; not a reading later", () => {
    const fan = new Fan();
    const reading = ownFan([], 0, 1, 110);
    fan.feed(reading(fan.n));
    const first = fan.health;
    const learning = first.tracker.baseline;
    assert.ok(learning);
    assert.equal(worthPublishing(undefined, first), true, "the first baseline of a fan");
    assert.equal(worthPublishing(first, first), true, "never published by this process");
    let published = learning.updatedAt;
    fan.feed(reading(fan.n));
    assert.equal(worthPublishing(first, fan.health, published), false, "a reading later, still learning");
    while (fan.n < LEARN - 1) fan.feed(reading(fan.n));
    const before = fan.health;
    published = before.tracker.baseline?.updatedAt ?? assert.fail("no baseline");
    fan.feed(reading(fan.n));
    assert.equal(fan.published.state, "ready");
    assert.equal(worthPublishing(before, fan.health, published), true, "it became ready");
    const ready = fan.health;
    published = ready.tracker.baseline?.updatedAt ?? assert.fail("no baseline");
    fan.feed(reading(fan.n));
    assert.equal(worthPublishing(ready, fan.health, published), false, "a reading later, unchanged");
    const warning: FanHealth = { ...ready, tracker: { ...ready.tracker, state: "warning" } };
    assert.equal(worthPublishing(ready, warning, published), true, "frozen");
    assert.equal(worthPublishing(warning, ready, published), true, "thawed");
    const baseline = ready.tracker.baseline ?? assert.fail("no baseline");
    const later = (ms: number): FanHealth => ({
      ...ready,
      tracker: { ...ready.tracker, baseline: { ...baseline, updatedAt: published + ms } },
    });
    assert.equal(worthPublishing(ready, later(HOUR - STEP), published), false, "within the hour");
    assert.equal(worthPublishing(ready, later(HOUR), published), true, "an hour of reading time");
  });
});
