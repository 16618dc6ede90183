import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FAULTY_RANGES, HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { drawReading } from "../../simulation/draw.js";
import { FEATURES } from "../../lib/domain/features.js";
import { readMetadata } from "../../lib/inference/artifact.js";
import { allocateExplanations, coalitionRows, explainOutputs, READINGS_PER_CALL } from "../../lib/inference/explain.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { seededRandom } from "../../simulation/rng.js";
import { healthyReference } from "../../model/train.js";
import { MODEL_DIR } from "../support/paths.js";

const REFERENCE = [600, 40, 150, 48.5];

/** The contributions of reading r, in FEATURES order. */
function contributionsOf(e: { contributions: Float64Array }, r: number): number[] {
  return Array.from(e.contributions.subarray(r * 4, r * 4 + 4));
}

describe("Shapley values from coalition outputs", () => {
  /** Outputs of a value function v(mask) laid out as coalitionInputs lays out its rows. */
  function outputs(count: number, v: (reading: number, mask: number) => number): Float32Array {
    const out = new Float32Array(coalitionRows(count));
    out[0] = v(0, 0);
    for (let r = 0; r < count; r++) for (let m = 1; m < 16; m++) out[1 + r * 15 + m - 1] = v(r, m);
    return out;
  }
  const has = (mask: number, sensor: number) => ((mask >> sensor) & 1) === 1;

  it("gives a linear model's terms exactly: each sensor its own weight × its change", () => {
    const weights = [0.5, -2, 0.25, 3];
    const changes = [
      [1, 2, 3, 4],
      [-1, 0, 0.5, 2],
    ];
    const e = allocateExplanations(2);
    explainOutputs(
      outputs(2, (r, m) => FEATURES.reduce((sum, _, c) => sum + (has(m, c) ? weights[c]! * changes[r]![c]! : 0), 0)),
      false,
      e,
      0,
    );
    for (const r of [0, 1])
      contributionsOf(e, r).forEach((c, s) =>
        assert.ok(Math.abs(c - weights[s]! * changes[r]![s]!) < 1e-6, `reading ${r}, sensor ${s}: ${c}`),
      );
  });

  it("shares an interaction evenly and gives nothing to a sensor that changes nothing", () => {
    // The output moves only when rotation and sound both come from the reading.
    const e = allocateExplanations(1);
    explainOutputs(
      outputs(1, (_, m) => (has(m, 0) && has(m, 3) ? 1 : 0)),
      false,
      e,
      0,
    );
    assert.deepEqual(contributionsOf(e, 0), [0.5, 0, 0, 0.5]);
  });
});

describe("explanations from the committed model", () => {
  let model: ScoringModel;
  before(async () => {
    model = await ScoringModel.load(MODEL_DIR);
  });
  after(() => model.dispose());

  it("keeps its healthy reference reading in metadata.json: the centre of the healthy ranges", async () => {
    const metadata = await readMetadata(MODEL_DIR);
    assert.deepEqual(metadata.reference, { rotation: 600, temperature: 40, vibration: 150, sound: 48.5 });
    assert.deepEqual(metadata.reference, healthyReference());
    for (const f of FEATURES) assert.equal(metadata.reference[f], (HEALTHY_RANGES[f].min + HEALTHY_RANGES[f].max) / 2);
  });

  it("adds up: every reading's contributions sum to its probability less the reference's", () => {
    const random = seededRandom(41);
    const rows = [HEALTHY_RANGES, FAULTY_RANGES].flatMap((ranges) =>
      Array.from({ length: 2_500 }, () => FEATURES.map((f) => drawReading(ranges[f], random))),
    );
    const e = model.explain(rows);
    const plain = model.probabilities(rows);
    const reference = model.probabilities([REFERENCE])[0]!;
    let faulty = 0;
    for (let r = 0; r < rows.length; r++) {
      const sum = contributionsOf(e, r).reduce((a, b) => a + b, 0);
      assert.ok(
        Math.abs(sum - (e.probabilities[r]! - e.references[r]!)) < 1e-12,
        `reading ${rows[r]!.join(",")}: ${sum} vs ${e.probabilities[r]! - e.references[r]!}`,
      );
      // The explanation's probabilities are the model's (sigmoid taken in float64 rather than float32).
      assert.ok(Math.abs(e.probabilities[r]! - plain[r]!) < 1e-6);
      assert.ok(Math.abs(e.references[r]! - reference) < 1e-6);
      if (e.probabilities[r]! >= 0.5) faulty++;
    }
    assert.ok(faulty > 2_000, `${faulty} of 5,000 readings faulty: both kinds were explained`);
  });

  for (const [sensor, index] of FEATURES.map((f, i) => [f, i] as const)) {
    it(`puts all of a change in ${sensor} alone on ${sensor}`, () => {
      const far = [420, 53, 240, 58][index]!;
      const near = REFERENCE[index]! + (FAULTY_RANGES[sensor].max - HEALTHY_RANGES[sensor].max) / 4;
      const rows = [far, near].map((value) => REFERENCE.map((v, c) => (c === index ? value : v)));
      const e = model.explain(rows);
      rows.forEach((_, r) => {
        const contributions = contributionsOf(e, r);
        const change = e.probabilities[r]! - e.references[r]!;
        assert.ok(Math.abs(change) > 1e-4, `the reading must move the model: ${change}`);
        contributions.forEach((c, s) =>
          assert.ok(
            s === index ? Math.abs(c - change) < 1e-12 : Math.abs(c) < 1e-12,
            `${FEATURES[s]}: ${c} of ${change}`,
          ),
        );
      });
      assert.equal(FEATURES[e.causes[0]!], sensor);
      assert.ok(e.probabilities[0]! > 0.5, `${sensor} far out alone is a fault`);
    });

    it(`puts nearly all on ${sensor} when the other sensors are near the reference`, () => {
      const random = seededRandom(7 + index);
      const far = [420, 53, 240, 58][index]!;
      const rows = Array.from({ length: 50 }, () =>
        REFERENCE.map((v, c) => (c === index ? far : v + (random() - 0.5) * 0.2)),
      );
      const e = model.explain(rows);
      rows.forEach((_, r) => {
        const contributions = contributionsOf(e, r);
        const total = contributions.reduce((a, b) => a + Math.abs(b), 0);
        assert.ok(
          contributions[index]! / total > 0.95,
          `${sensor} carries ${contributions[index]! / total} of ${contributions.join(", ")}`,
        );
        assert.equal(FEATURES[e.causes[r]!], sensor);
      });
    });
  }

  it("names as cause, among tied sensors, the one pushed furthest out", () => {
    // Each sensor alone already saturates the model here, so Shapley shares the change evenly;
    // the cause goes to the sensor that moves the log-odds most.
    const base = [420, 53, 240, 58];
    const furthest = [100, 80, 1000, 90];
    const rows = FEATURES.map((_, i) => base.map((v, c) => (c === i ? furthest[i]! : v)));
    const e = model.explain(rows);
    rows.forEach((_, r) => {
      const contributions = contributionsOf(e, r);
      for (const c of contributions)
        assert.ok(Math.abs(c - contributions[0]!) < 1e-6, `tied: ${contributions.join(", ")}`);
      assert.ok(contributions[0]! > 0.2);
      assert.equal(FEATURES[e.causes[r]!], FEATURES[r]);
    });
  });

  it("gives the same explanations for a batch larger than one tensor call as reading by reading", () => {
    const random = seededRandom(3);
    const rows = Array.from({ length: READINGS_PER_CALL + 10 }, () =>
      FEATURES.map((f) => drawReading(FAULTY_RANGES[f], random)),
    );
    const all = model.explain(rows);
    for (const r of [0, READINGS_PER_CALL - 1, READINGS_PER_CALL, rows.length - 1]) {
      const one = model.explain([rows[r]!]);
      contributionsOf(all, r).forEach((c, s) =>
        assert.ok(Math.abs(c - one.contributions[s]!) < 1e-6, `reading ${r}: ${c} vs ${one.contributions[s]}`),
      );
      assert.equal(all.causes[r], one.causes[0]);
    }
  });

  it("rounds explained predictions to six decimals, additive to rounding", () => {
    const [p] = model.predictExplained([[600, 40, 240, 48.5]]);
    assert.ok(p !== undefined);
    assert.equal(p.fault, 1);
    assert.equal(p.cause, "vibration");
    assert.equal(p.referenceProbability, Math.round(model.referenceProbability * 1e6) / 1e6);
    const sum = FEATURES.reduce((s, f) => s + p.contributions[f], 0);
    assert.ok(
      Math.abs(sum - (p.probability - p.referenceProbability)) <= 3e-6,
      `${sum} vs ${p.probability - p.referenceProbability}`,
    );
  });
});
