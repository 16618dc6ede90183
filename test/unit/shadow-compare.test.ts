import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Prediction } from "../../lib/domain/prediction.js";
import { ShadowComparer, type ShadowPair } from "../../functions/predict/shadow-compare.js";

const START = Date.parse("2020-10-02T10:00:00Z");
const NOW = START + 3_600_000;

/** `n` readings of one fan a second apart, from `from`: the active says `active`, the shadow `shadow`. */
function pairs(deviceID: string, n: number, active: 0 | 1, shadow: 0 | 1, from = 0): ShadowPair[] {
  return Array.from({ length: n }, (_, i) => {
    const prediction: Prediction = {
      deviceID,
      timeStamp: new Date(START + (from + i) * 1_000).toISOString(),
      fault: active,
      probability: active,
      model: "fan-a",
      reading: { rotation: 600, temperature: 40 + (i % 3), vibration: 150 + (i % 5), sound: 48 },
    };
    return { active: prediction, shadow: { fault: shadow, probability: shadow } };
  });
}

describe("predict's shadow comparison", () => {
  it("counts agreement, and the alarms health's rules raise on each model's predictions, fan by fan", () => {
    const comparer = new ShadowComparer({ site: "s", replica: "r", maxFans: 100 });
    const batch = [...pairs("both", 12, 1, 1), ...pairs("active-only", 12, 1, 0), ...pairs("shadow-only", 12, 0, 1)];
    comparer.observe({ active: "fan-a", shadow: "fan-s", pairs: batch, timing: { activeMs: 4, shadowMs: 2 } }, NOW);
    comparer.observe(
      { active: "fan-a", shadow: "fan-s", pairs: pairs("quiet", 12, 0, 0), timing: { activeMs: 2, shadowMs: 2 } },
      NOW,
    );
    const c = comparer.current(NOW)?.comparison;
    assert.ok(c);
    assert.equal(c.readings, 48);
    assert.equal(c.agreed, 24);
    assert.deepEqual(c.alarms, { active: 2, shadow: 2 });
    assert.deepEqual(c.fans, { opened: ["shadow-only"], closed: ["active-only"] });
    // (4+2 + 2+2) / (4+2) over the batches; the median of 1.5 and 2.
    assert.deepEqual(c.cost, { cpuRatio: 1.667, latencyRatio: 1.75 });
  });

  it("follows a fan across batches: the rules keep each model's state between calls", () => {
    const comparer = new ShadowComparer({ site: "s", replica: "r", maxFans: 100 });
    for (let b = 0; b < 6; b++)
      comparer.observe({ active: "fan-a", shadow: "fan-s", pairs: pairs("7", 2, 1, 0, b * 2) }, NOW);
    const c = comparer.current(NOW)?.comparison;
    assert.deepEqual(c?.alarms, { active: 1, shadow: 0 });
    assert.deepEqual(c?.cost, { cpuRatio: null, latencyRatio: null }, "no timing, no cost");
  });

  it("follows at most maxFans fans; the others count towards agreement only", () => {
    const comparer = new ShadowComparer({ site: "s", replica: "r", maxFans: 2 });
    const batch = ["1", "2", "3", "4"].flatMap((fan) => pairs(fan, 12, 1, 0));
    comparer.observe({ active: "fan-a", shadow: "fan-s", pairs: batch }, NOW);
    const c = comparer.current(NOW)?.comparison;
    assert.equal(c?.readings, 48);
    assert.deepEqual(c?.fans.closed, ["1", "2"]);
    assert.equal(comparer.untrackedReadings, 24);
  });

  it("ends a comparison when the shadow or the active changes, handing back its totals", () => {
    const comparer = new ShadowComparer({ site: "s", replica: "r", maxFans: 100 });
    assert.equal(comparer.current(NOW), undefined);
    assert.equal(comparer.observe({ active: "fan-a", shadow: "fan-s", pairs: pairs("7", 3, 1, 1) }, NOW), undefined);
    const before = comparer.current(NOW)?.version;
    const ended = comparer.observe({ active: "fan-a", shadow: "fan-t", pairs: pairs("7", 1, 1, 0) }, NOW + 1);
    assert.equal(ended?.shadow, "fan-s");
    assert.equal(ended?.readings, 3);
    const now = comparer.current(NOW + 1);
    assert.equal(now?.comparison.shadow, "fan-t");
    assert.equal(now?.comparison.readings, 1);
    assert.notEqual(now?.version, before);
    assert.equal(now?.comparison.since, new Date(NOW + 1).toISOString());
    const promoted = comparer.observe({ active: "fan-t", shadow: "fan-t", pairs: pairs("7", 1, 0, 0) }, NOW + 2);
    assert.equal(promoted?.active, "fan-a");
  });
});
