import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decideReplicas,
  readScaleLabels,
  replicasRefusal,
  type LoadSample,
  type ScaleBounds,
  type ScaleMemory,
} from "../../lib/openfaas/scaling.js";
import { ScaleLabelError } from "../../lib/errors.js";

const POLICY = { targetInFlight: 4, latencyMs: 1_000, scaleDownWindowMs: 30_000 };
const labels = (min?: string, max?: string, factor?: string): Record<string, string> => ({
  ...(min === undefined ? {} : { "com.openfaas.scale.min": min }),
  ...(max === undefined ? {} : { "com.openfaas.scale.max": max }),
  ...(factor === undefined ? {} : { "com.openfaas.scale.factor": factor }),
});

describe("readScaleLabels: OpenFaaS CE's label rules", () => {
  it("defaults to min 1, max 5, factor 10 (CE's defaults), a step of 1", () => {
    assert.deepEqual(readScaleLabels({}), { min: 1, max: 5, factor: 10, step: 1, enabled: true });
  });

  it("steps up by ceil(max × factor / 100), at least 1", () => {
    assert.equal(readScaleLabels(labels("1", "5", "20")).step, 1);
    assert.equal(readScaleLabels(labels("1", "5", "50")).step, 3);
    assert.equal(readScaleLabels(labels("1", "5", "100")).step, 5);
    assert.equal(readScaleLabels(labels("2", "4", "1")).step, 1);
  });

  it("is disabled by min = max or factor 0", () => {
    assert.equal(readScaleLabels(labels("3", "3", "20")).enabled, false);
    assert.equal(readScaleLabels(labels("1", "5", "0")).enabled, false);
    assert.equal(readScaleLabels(labels("1", "2", "20")).enabled, true);
  });

  it("refuses what CE refuses, saying which label and why", () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [labels("1", "6"), /scale\.max is 6: OpenFaaS CE runs at most 5/],
      [labels("0", "5"), /scale\.min is 0: it must be at least 1/],
      [labels("4", "2"), /scale\.min \(4\) is above com\.openfaas\.scale\.max \(2\)/],
      [labels("1", "5", "101"), /scale\.factor is 101: it is a percentage/],
      [labels("one"), /scale\.min is "one": it must be a whole number/],
      [labels("1", "-2"), /scale\.max is "-2"/],
    ];
    for (const [given, message] of cases)
      assert.throws(
        () => readScaleLabels(given),
        (e: unknown) => e instanceof ScaleLabelError && message.test(e.message),
        JSON.stringify(given),
      );
  });

  it("takes 0 or a count within the bounds by hand, and says why not otherwise", () => {
    const bounds = { min: 2, max: 4 };
    for (const ok of [0, 2, 3, 4]) assert.equal(replicasRefusal(ok, bounds), undefined);
    assert.match(
      replicasRefusal(1, bounds) ?? "",
      /between com\.openfaas\.scale\.min 2 and com\.openfaas\.scale\.max 4, not 1/,
    );
    assert.match(replicasRefusal(5, bounds) ?? "", /not 5/);
  });
});

describe("decideReplicas: up by the step, down one at a time after the window", () => {
  const bounds: ScaleBounds = readScaleLabels(labels("1", "5", "40"));
  const busy: LoadSample = { inFlight: 20, rate: 400, p99Ms: 50 };
  const idle: LoadSample = { inFlight: 0, rate: 0, p99Ms: undefined };
  const fresh: ScaleMemory = { lowSince: undefined };

  it("steps up by ceil(5 × 40 / 100) = 2 when over the target in flight, and stops at max", () => {
    const first = decideReplicas(1, bounds, busy, 0, fresh, POLICY);
    assert.deepEqual([first.direction, first.replicas], ["up", 3]);
    assert.match(first.reason, /over target: 20 in flight per replica \(target 4\), 400\/s, p99 50 ms/);
    assert.equal(decideReplicas(3, bounds, { ...busy, inFlight: 13 }, 1_000, first.memory, POLICY).replicas, 5);
    const atMax = decideReplicas(5, bounds, { ...busy, inFlight: 40 }, 2_000, first.memory, POLICY);
    assert.deepEqual([atMax.direction, atMax.replicas], ["hold", 5]);
    assert.match(atMax.reason, /at max 5/);
  });

  it("steps up when slow with every replica busy, not when slow and idle", () => {
    const slowBusy = decideReplicas(2, bounds, { inFlight: 4, rate: 2, p99Ms: 3_000 }, 0, fresh, POLICY);
    assert.deepEqual([slowBusy.direction, slowBusy.replicas], ["up", 4]);
    assert.match(slowBusy.reason, /p99 over 1000 ms with every replica busy/);
    assert.equal(
      decideReplicas(2, bounds, { inFlight: 1, rate: 0.5, p99Ms: 3_000 }, 0, fresh, POLICY).direction,
      "hold",
    );
  });

  it("scales down one replica only after the load stayed low for the whole window, then waits a window again", () => {
    let memory = fresh;
    let now = 0;
    const step = (sample: LoadSample, replicas: number) => {
      const decision = decideReplicas(replicas, bounds, sample, now, memory, POLICY);
      memory = decision.memory;
      return decision;
    };
    assert.equal(step(idle, 4).direction, "hold");
    now = 29_999;
    assert.match(step(idle, 4).reason, /low for 29 s of the 30 s window/);
    now = 30_000;
    const down = step(idle, 4);
    assert.deepEqual([down.direction, down.replicas], ["down", 3]);
    now = 45_000;
    assert.equal(step(idle, 3).direction, "hold", "the next replica waits a full window of its own");
    now = 60_000;
    assert.deepEqual(step(idle, 3).replicas, 2);
  });

  it("comes down to one replica at light load: 2.1 in flight fits one replica at three quarters of the target 4", () => {
    const light: LoadSample = { inFlight: 2.1, rate: 100, p99Ms: 15 };
    const first = decideReplicas(2, bounds, light, 0, fresh, POLICY);
    assert.equal(first.direction, "hold");
    assert.deepEqual(decideReplicas(2, bounds, light, 30_000, first.memory, POLICY).replicas, 1);
    assert.match(
      decideReplicas(2, bounds, { ...light, inFlight: 3.5 }, 0, fresh, POLICY).reason,
      /^steady/,
      "3.5 would put one replica near its target",
    );
  });

  it("starts the window again when the load rises in between", () => {
    let memory = fresh;
    const at = (now: number, sample: LoadSample) => {
      const decision = decideReplicas(3, bounds, sample, now, memory, POLICY);
      memory = decision.memory;
      return decision;
    };
    at(0, idle);
    assert.equal(at(20_000, { inFlight: 9, rate: 100, p99Ms: 20 }).reason.startsWith("steady"), true);
    assert.equal(at(31_000, idle).direction, "hold", "low again only since 31 s");
    assert.equal(at(61_000, idle).direction, "down");
  });

  it("never goes below min, holds a function scaled to 0, and holds when disabled", () => {
    assert.match(decideReplicas(1, bounds, idle, 1e9, { lowSince: 0 }, POLICY).reason, /^steady/);
    assert.equal(decideReplicas(0, bounds, busy, 0, fresh, POLICY).replicas, 0);
    const fixed = readScaleLabels(labels("2", "2"));
    const disabled = decideReplicas(2, fixed, busy, 0, fresh, POLICY);
    assert.deepEqual(
      [disabled.direction, disabled.replicas, disabled.reason],
      ["hold", 2, "scaling disabled (min = max)"],
    );
    assert.equal(
      decideReplicas(1, readScaleLabels(labels("1", "5", "0")), busy, 0, fresh, POLICY).reason,
      "scaling disabled (factor 0)",
    );
  });
});

describe("decideReplicas on one machine: a replica needs an idle core", () => {
  const bounds = readScaleLabels({
    "com.openfaas.scale.min": "1",
    "com.openfaas.scale.max": "5",
    "com.openfaas.scale.factor": "20",
  });
  const policy = { ...POLICY, minIdleCpu: 0.2 };
  const overloaded = { inFlight: 12, rate: 100, p99Ms: 2_000 };
  it("holds an overloaded function when the machine's CPU is busy, saying so", () => {
    const decision = decideReplicas(1, bounds, { ...overloaded, idleCpu: 0.05 }, 0, { lowSince: undefined }, policy);
    assert.equal(decision.direction, "hold");
    assert.match(decision.reason, /95% busy/);
  });
  it("scales it up when a fifth of the machine is idle, or where the CPU is not measured", () => {
    assert.equal(
      decideReplicas(1, bounds, { ...overloaded, idleCpu: 0.5 }, 0, { lowSince: undefined }, policy).replicas,
      2,
    );
    assert.equal(decideReplicas(1, bounds, overloaded, 0, { lowSince: undefined }, policy).replicas, 2);
    assert.equal(
      decideReplicas(1, bounds, { ...overloaded, idleCpu: 0.05 }, 0, { lowSince: undefined }, POLICY).replicas,
      2,
      "a cluster: no machine-wide check",
    );
  });
});
