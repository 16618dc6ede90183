import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Prediction, Verdict } from "../../lib/domain/prediction.js";
import { ConfigError } from "../../lib/errors.js";
import {
  alarmChangeGate,
  confirmedFaultsGate,
  goldenAccuracyGate,
  labelledUnion,
  promotionGates,
  readGateSettings,
  type GateSources,
} from "../../lib/models/gates.js";
import type { GoldenSet, ShadowComparison } from "../../lib/models/schemas.js";
import type { EvidenceReading } from "../../lib/nats/evidence.js";
import { alarmsUnderRules } from "../../cli/model-gates.js";
import { autoPromote } from "../../lib/models/auto-promote.js";
import { DEFAULT_POLICY } from "../../functions/health/policy.js";

const settings = { windowMs: 7 * 86_400_000, maxAlarmChange: 1, minShadowReadings: 100, autoPromoteAfterMs: 3_600_000 };
const NOW = Date.parse("2026-12-08T00:00:00Z");

function comparison(over: Partial<ShadowComparison> = {}): ShadowComparison {
  return {
    site: "plant-a",
    replica: "predict-1",
    active: "fan-a",
    shadow: "fan-c",
    since: "2026-12-07T00:00:00.000Z",
    at: "2026-12-07T23:00:00.000Z",
    readings: 1_000,
    agreed: 990,
    alarms: { active: 3, shadow: 2 },
    fans: { opened: [], closed: [] },
    cost: { cpuRatio: 1.4, latencyRatio: 1.3 },
    ...over,
  };
}

const v = (fault: 0 | 1): Verdict => ({ fault, probability: fault });

describe("promotion gates: each verdict and its numbers", () => {
  it("golden accuracy: the candidate passes at the active's accuracy or above, and says both", () => {
    const labels = [1, 1, 0, 0] as const;
    const same = goldenAccuracyGate(labels, [v(1), v(0), v(0), v(0)], [v(0), v(1), v(0), v(0)]);
    assert.deepEqual(same, {
      gate: "golden-accuracy",
      passed: true,
      detail: "candidate 0.750 ≥ active 0.750 on 4 labelled readings of both golden sets",
    });
    const worse = goldenAccuracyGate(labels, [v(1), v(1), v(0), v(0)], [v(1), v(0), v(0), v(0)]);
    assert.equal(worse.passed, false);
    assert.equal(worse.detail, "candidate 0.750 < active 1.000 on 4 labelled readings of both golden sets");
    assert.equal(goldenAccuracyGate([], [], []).passed, false, "nothing to measure is no pass");
  });

  it("golden accuracy is measured on the union of both golden sets' labelled readings, each reading once", () => {
    const set = (inputs: number[][], label?: 0 | 1): GoldenSet => ({
      tolerance: 0.001,
      readings: inputs.map((input) => ({ input, fault: 0, probability: 0, ...(label === undefined ? {} : { label }) })),
    });
    const union = labelledUnion([
      set(
        [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
        1,
      ),
      set([[1, 2, 3, 4]], 1),
      set([[9, 9, 9, 9]]),
    ]);
    assert.deepEqual(
      union.map((r) => r.input),
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
    );
  });

  it("confirmed faults: every confirmed episode must still alarm; the missed ones are named", () => {
    const episode = (n: number) => ({
      deviceID: String(n),
      alarmId: `${n}@2026-12-07T10:00:00.000Z`,
      result: "confirmed" as const,
    });
    assert.deepEqual(confirmedFaultsGate([], settings.windowMs), {
      gate: "confirmed-faults",
      passed: true,
      detail: "no confirmed-fault episode in the last 7d",
    });
    const gate = confirmedFaultsGate(
      [
        { episode: episode(1), readings: 40, alarmed: true },
        { episode: episode(2), readings: 30, alarmed: false },
        { episode: episode(3), readings: 0, alarmed: false },
      ],
      settings.windowMs,
    );
    assert.equal(gate.passed, false);
    assert.equal(
      gate.detail,
      "1 of 3 confirmed-fault episodes of the last 7d still alarmed; missed: 2@2026-12-07T10:00:00.000Z (30 readings, no alarm), 3@2026-12-07T10:00:00.000Z (no readings kept)",
    );
  });

  it("alarm change: fans with a finding are excused; the rest are counted against MODEL_GATE_MAX_ALARM_CHANGE", () => {
    const since = NOW - settings.windowMs;
    const comparisons = [
      comparison({ fans: { opened: ["9"], closed: ["hot-1", "hot-2"] } }),
      comparison({ replica: "predict-2", fans: { opened: ["9"], closed: ["4"] } }),
    ];
    const excused = alarmChangeGate(comparisons, "fan-a", since, new Set(["hot-1", "hot-2", "4"]), settings);
    assert.equal(excused.passed, true);
    assert.equal(
      excused.detail,
      "1 fans without a finding would alarm differently ≤ 1 (MODEL_GATE_MAX_ALARM_CHANGE); opened: 9; alarms 6 → 4 over 2000 readings",
    );
    const counted = alarmChangeGate(comparisons, "fan-a", since, new Set(["hot-1"]), settings);
    assert.equal(counted.passed, false);
    assert.match(counted.detail, /^3 fans without a finding would alarm differently > 1 .*opened: 9; closed: hot-2, 4/);
  });

  it("alarm change: too short a shadow, or one against another active model or older than the window, is no pass", () => {
    const since = NOW - settings.windowMs;
    const few = alarmChangeGate([comparison({ readings: 50 })], "fan-a", since, new Set(), settings);
    assert.equal(few.passed, false);
    assert.match(few.detail, /^50 readings compared as a shadow of fan-a, 100 needed/);
    assert.equal(alarmChangeGate([comparison({ active: "fan-b" })], "fan-a", since, new Set(), settings).passed, false);
    const old = comparison({ at: "2026-11-01T00:00:00.000Z" });
    assert.equal(alarmChangeGate([old], "fan-a", since, new Set(), settings).passed, false);
  });

  it("reads its settings through the settings registry, refusing bad ones by name", () => {
    assert.deepEqual(readGateSettings({}), {
      windowMs: 7 * 86_400_000,
      maxAlarmChange: 0,
      minShadowReadings: 1_000,
      autoPromoteAfterMs: 86_400_000,
    });
    assert.deepEqual(
      readGateSettings({
        MODEL_GATE_WINDOW: "36h",
        MODEL_GATE_MAX_ALARM_CHANGE: "3",
        MODEL_GATE_MIN_SHADOW_READINGS: "0",
      }),
      { windowMs: 36 * 3_600_000, maxAlarmChange: 3, minShadowReadings: 0, autoPromoteAfterMs: 86_400_000 },
    );
    assert.throws(
      () => readGateSettings({ MODEL_GATE_MAX_ALARM_CHANGE: "-1" }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /MODEL_GATE_MAX_ALARM_CHANGE/);
        return true;
      },
    );
  });
});

describe("promotion gates run together on their sources, with health's rules", () => {
  /** Faulty readings, a second apart: what a fan with a worn bearing sends. */
  const faulty = (n: number): EvidenceReading[] =>
    Array.from({ length: n }, (_, i) => ({
      at: new Date(NOW - 3_600_000 + i * 1_000).toISOString(),
      rotation: 600,
      temperature: 45,
      vibration: 260,
      sound: 60,
      probability: 1,
      fault: 1,
    }));

  function sources(candidateCallsFaulty: boolean): GateSources {
    const golden: GoldenSet = {
      tolerance: 0.001,
      readings: [
        { input: [600, 40, 150, 48], fault: 0, probability: 0, label: 0 },
        { input: [600, 45, 260, 60], fault: 1, probability: 1, label: 1 },
      ],
    };
    return {
      golden: async () => golden,
      verdicts: async (id, inputs) =>
        inputs.map(([, , vibration]) => v((vibration ?? 0) > 200 && (id === "fan-a" || candidateCallsFaulty) ? 1 : 0)),
      findings: async () => [
        { deviceID: "7", alarmId: "7@a", result: "confirmed" },
        { deviceID: "hot-1", alarmId: "hot-1@a", result: "false-alarm" },
      ],
      evidence: async () => faulty(20),
      comparisons: async () => [comparison({ fans: { opened: [], closed: ["hot-1"] } })],
      alarms: (deviceID: string, predictions: Prediction[]) => alarmsUnderRules(deviceID, predictions, DEFAULT_POLICY),
    };
  }

  it("passes a candidate as good on the golden sets, alarming on the confirmed fault, closing only a false alarm's fan", async () => {
    const gates = promotionGates(sources(true), settings, () => NOW);
    const results = await gates({ site: "plant-a", active: "fan-a", candidate: "fan-c" });
    assert.deepEqual(
      results.map((r) => [r.gate, r.passed]),
      [
        ["golden-accuracy", true],
        ["confirmed-faults", true],
        ["alarm-change", true],
      ],
    );
    assert.equal(results[1]?.detail, "1 of 1 confirmed-fault episodes of the last 7d still alarmed");
  });

  it("fails a candidate blind to the fault on the golden sets and on the confirmed episode, with the numbers", async () => {
    const gates = promotionGates(sources(false), settings, () => NOW);
    const [golden, confirmed, change] = await gates({ site: "plant-a", active: "fan-a", candidate: "fan-c" });
    assert.equal(golden?.passed, false);
    assert.equal(golden?.detail, "candidate 0.500 < active 1.000 on 2 labelled readings of both golden sets");
    assert.equal(confirmed?.passed, false);
    assert.match(confirmed?.detail ?? "", /^0 of 1 .*missed: 7@a \(20 readings, no alarm\)/);
    assert.equal(change?.passed, true);
  });

  it("health's rules: a run of faults alarms, a few scattered ones do not", () => {
    const predictions = (faults: number[]): Prediction[] =>
      faulty(20).map((r, i) => ({
        deviceID: "7",
        timeStamp: r.at,
        fault: faults.includes(i) ? 1 : 0,
        probability: faults.includes(i) ? 1 : 0,
      }));
    assert.equal(alarmsUnderRules("7", predictions([...Array(20).keys()]), DEFAULT_POLICY), true);
    assert.equal(alarmsUnderRules("7", predictions([3, 11]), DEFAULT_POLICY), false);
  });
});

describe("auto-promotion", () => {
  it("dates the shadow by the replicas' records that hold a time, one without a time ignored", async () => {
    const pointer = {
      active: "fan-a",
      previous: null,
      shadow: "fan-c",
      reason: "shadow" as const,
      by: "ana",
      at: "2026-12-06T00:00:00.000Z",
      forced: false,
      note: null,
    };
    let moved = 0;
    const registry = {
      pointer: () => Promise.resolve({ pointer, revision: 4 }),
      comparisons: () =>
        Promise.resolve([
          comparison({ replica: "predict-1" }),
          comparison({ replica: "predict-2", since: "yesterday" }),
        ]),
      setPointer: () => Promise.resolve(5 + moved++),
    };
    const passed = () => Promise.resolve([{ gate: "golden-accuracy" as const, passed: true, detail: "ok" }]);
    // The good record's since is 24 h before NOW: enough for 1 h, too soon for 2 days.
    assert.equal((await autoPromote(registry, passed, "plant-a", 3_600_000, NOW)).outcome, "promoted");
    const soon = await autoPromote(registry, passed, "plant-a", 2 * 86_400_000, NOW);
    assert.equal(soon.outcome, "too-soon");
    assert.match(soon.detail, /1440 min of the 2880 min/);
  });
});
