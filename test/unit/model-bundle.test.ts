import assert from "node:assert/strict";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { FAULTY_RANGES, HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { FEATURES } from "../../lib/domain/features.js";
import { ModelRefusedError } from "../../lib/errors.js";
import { loadArtifacts, saveModel } from "../../lib/inference/artifact.js";
import { readMetadata } from "../../lib/inference/artifact.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import {
  bundleFromDirectory,
  bundleId,
  decodeBundle,
  encodeBundle,
  GOLDEN_FILE,
  loadBundleModel,
  MODEL_ID,
  writeBundleDirectory,
} from "../../lib/models/bundle.js";
import { checkGoldenSet, goldenReadings } from "../../lib/models/golden.js";
import type { ModelBundle } from "../../lib/models/schemas.js";
import { MODEL_DIR } from "../support/paths.js";

/** The bundle with its weights' bytes changed by `change` (same length). */
function withWeights(bundle: ModelBundle, change: (weights: Float32Array) => void): ModelBundle {
  const bytes = Buffer.from(bundle.weights, "base64");
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  change(floats);
  return { ...bundle, weights: Buffer.from(floats.buffer).toString("base64") };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ModelRefusedError, String(error));
  assert.equal(error.code, "FANWATCH_MODEL_REFUSED");
  return error.message;
}

describe("model bundles and golden sets", () => {
  let dir: string;
  let shipped: ModelBundle;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-bundle-"));
    shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("the golden readings are fixed, labelled, half healthy and half faulty, inside their ranges", () => {
    const readings = goldenReadings();
    assert.deepEqual(readings, goldenReadings());
    assert.equal(readings.length, 200);
    for (const [label, ranges] of [
      [0, HEALTHY_RANGES],
      [1, FAULTY_RANGES],
    ] as const) {
      const mine = readings.filter((r) => r.label === label);
      assert.equal(mine.length, 100);
      for (const r of mine)
        FEATURES.forEach((name, f) => {
          const value = r.input[f] as number;
          assert.ok(value >= ranges[name].min && value <= ranges[name].max, `${name} ${value}`);
        });
    }
  });

  it("bundles a model directory without golden.json with a golden set of the model's own answers", async () => {
    const bare = join(dir, "bare");
    await cp(MODEL_DIR, bare, { recursive: true });
    await rm(join(bare, GOLDEN_FILE));
    const bundle = await bundleFromDirectory(bare, { parent: null });
    assert.equal(bundle.format, "fanwatch-model/1");
    assert.equal(bundle.parent, null);
    assert.deepEqual(bundle.metadata, await readMetadata(MODEL_DIR));
    assert.equal(bundle.golden.readings.length, 200);
    const model = await ScoringModel.load(bare);
    const answers = model.predict(goldenReadings().map((r) => r.input));
    assert.deepEqual(
      bundle.golden.readings.map((r) => ({ fault: r.fault, probability: r.probability })),
      answers,
    );
    model.dispose();
  });

  it("bundles the shipped directory to one id on every backend: its golden.json holds the answers", async () => {
    const ids = await Promise.all(
      ["cpu", "wasm"].map(async (backend) =>
        bundleId(encodeBundle(await bundleFromDirectory(MODEL_DIR, { parent: null, backend }))),
      ),
    );
    assert.equal(ids[0], ids[1]);
    for (const backend of ["cpu", "wasm"]) {
      const { model, golden } = await loadBundleModel(shipped, ids[0] as string, { backend });
      assert.equal(golden.mismatches, 0, backend);
      model.dispose();
    }
    assert.deepEqual(
      shipped.golden.readings.map((r) => ({ input: r.input, label: r.label })),
      goldenReadings(),
    );
  });

  it("encodes a bundle to the same bytes every time, and its id is the digest of those bytes", async () => {
    const bytes = encodeBundle(shipped);
    const again = await bundleFromDirectory(MODEL_DIR, { parent: null });
    assert.deepEqual(encodeBundle(again), bytes);
    const id = bundleId(bytes);
    assert.match(id, MODEL_ID);
    assert.deepEqual(decodeBundle(bytes, id), shipped);
    assert.deepEqual(encodeBundle(decodeBundle(bytes, id)), bytes);
    // Another parent is another version.
    assert.notEqual(bundleId(encodeBundle({ ...shipped, parent: id })), id);
  });

  it("refuses bytes that do not match their id, are not JSON, or are not a bundle, naming the problem", async () => {
    const bytes = Buffer.from(encodeBundle(shipped));
    const id = bundleId(bytes);
    const tampered = Buffer.from(bytes);
    tampered[100] = (tampered[100] as number) ^ 1;
    assert.throws(
      () => decodeBundle(tampered, id),
      (e: unknown) => {
        assert.ok(e instanceof ModelRefusedError);
        assert.match(
          e.message,
          new RegExp(`model ${id} refused: its stored bytes have the digest fan-[0-9a-f]{16}, not its id`),
        );
        return true;
      },
    );
    const notJson = Buffer.from("{ not json");
    assert.throws(() => decodeBundle(notJson, bundleId(notJson)), /refused: not a bundle \(not JSON/);
    const partial = Buffer.from(JSON.stringify({ ...shipped, golden: undefined, format: "other/2" }));
    assert.throws(
      () => decodeBundle(partial, bundleId(partial)),
      (e: unknown) => {
        assert.ok(e instanceof ModelRefusedError);
        assert.match(e.message, /not a valid bundle: .*format: .*golden: /);
        return true;
      },
    );
  });

  it("serves a bundle under its registry id, answering as the directory's model does", async () => {
    const id = bundleId(encodeBundle(shipped));
    const { model, golden } = await loadBundleModel(shipped, id);
    const fromDir = await ScoringModel.load(MODEL_DIR);
    assert.equal(model.metadata.id, id);
    const rows = goldenReadings().map((r) => r.input);
    assert.deepEqual(model.predict(rows), fromDir.predict(rows));
    assert.deepEqual(
      { passed: golden.passed, mismatches: golden.mismatches, maxDelta: golden.maxDelta },
      {
        passed: true,
        mismatches: 0,
        maxDelta: 0,
      },
    );
    // The shipped model's accuracy on the labelled golden readings (the classes overlap: below 1).
    assert.ok(golden.accuracy !== null && golden.accuracy > 0.6 && golden.accuracy < 1, String(golden.accuracy));
    model.dispose();
    fromDir.dispose();
  });

  it("refuses corrupt weights: changed values fail the golden set, a wrong length does not load", async () => {
    const changed = withWeights(shipped, (w) => {
      for (let i = 0; i < w.length; i += 7) w[i] = (w[i] as number) * 1.5;
    });
    assert.match(
      await refusal(loadBundleModel(changed, "fan-0000000000000001")),
      /fails its golden set: 200 readings, [1-9]\d* mismatches/,
    );
    const nan = withWeights(shipped, (w) => w.fill(Number.NaN, 0, 10));
    assert.match(await refusal(loadBundleModel(nan, "fan-0000000000000002")), /fails its golden set/);
    const short = { ...shipped, weights: Buffer.from(shipped.weights, "base64").subarray(0, 100).toString("base64") };
    assert.match(await refusal(loadBundleModel(short, "fan-0000000000000003")), /cannot be loaded/);
  });

  it("refuses a model for another input shape", async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [5], units: 4, activation: "relu" }),
        tfl.layers.dense({ units: 1, activation: "sigmoid" }),
      ],
    });
    const wide = join(dir, "wide");
    await saveModel(model, shipped.metadata, wide);
    model.dispose();
    const artifacts = await loadArtifacts(wide);
    const bundle: ModelBundle = {
      ...shipped,
      modelJson: artifacts.modelJson,
      weights: Buffer.from(artifacts.weights).toString("base64"),
    };
    assert.match(await refusal(loadBundleModel(bundle, "fan-0000000000000004")), /takes 5 inputs .* needs 4 inputs/);
  });

  it("refuses a model with an unsupported layer after a supported one, and keeps none of its tensors", async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [FEATURES.length], units: 4, activation: "relu" }),
        tfl.layers.dense({ units: 1, activation: "tanh" }),
      ],
    });
    const tanh = join(dir, "tanh");
    await saveModel(model, shipped.metadata, tanh);
    model.dispose();
    const artifacts = await loadArtifacts(tanh);
    const bundle: ModelBundle = {
      ...shipped,
      modelJson: artifacts.modelJson,
      weights: Buffer.from(artifacts.weights).toString("base64"),
    };
    const tensors = tf.memory().numTensors;
    assert.match(await refusal(loadBundleModel(bundle, "fan-0000000000000005")), /unsupported layer Dense \(tanh\)/);
    assert.equal(tf.memory().numTensors, tensors);
  });

  it("finds a golden answer that moved beyond the tolerance", async () => {
    const model = await ScoringModel.load(MODEL_DIR);
    const golden = structuredClone(shipped.golden);
    const first = golden.readings[0];
    assert.ok(first !== undefined);
    first.probability = Math.min(1, first.probability + 0.01);
    const check = checkGoldenSet(model, golden);
    assert.equal(check.passed, false);
    assert.equal(check.mismatches, 1);
    assert.ok(Math.abs(check.maxDelta - 0.01) < 1e-6, String(check.maxDelta));
    model.dispose();
  });

  it("writes a bundle as a model directory that bundles again to the same id", async () => {
    const out = join(dir, "copy");
    const child = { ...shipped, parent: bundleId(encodeBundle(shipped)) };
    await writeBundleDirectory(child, out);
    const again = await bundleFromDirectory(out, { parent: child.parent });
    assert.deepEqual(encodeBundle(again), encodeBundle(child));
    const served = await ScoringModel.load(out);
    assert.equal(served.metadata.id, shipped.metadata.id);
    served.dispose();
  });
});
