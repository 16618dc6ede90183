import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { ModelError } from "../../lib/errors.js";
import { loadModel } from "../../lib/inference/artifact.js";
import { ModelMetadataSchema } from "../../lib/inference/metadata.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { generateReadings, toCsv, readCsv } from "../../model/dataset.js";
import { trainModel } from "../../model/train.js";

describe("training and the scoring runtime", () => {
  let dir: string;
  let dataFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-model-"));
    dataFile = join(dir, "train.csv");
    await writeFile(dataFile, toCsv(generateReadings({ fans: 10, rows: 1500, seed: 5 })));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function train(out: string, epochs = 3) {
    return trainModel({ dataset: await readCsv(dataFile), dataFile, outDir: join(dir, out), epochs, seed: 9 });
  }

  it("writes a TF.js layers model with metadata describing how it was made", async () => {
    const metadata = await train("a");
    const modelJson = JSON.parse(await readFile(join(dir, "a", "model.json"), "utf8")) as {
      format: string;
      weightsManifest: Array<{ paths: string[] }>;
    };
    assert.equal(modelJson.format, "layers-model");
    assert.deepEqual(modelJson.weightsManifest[0]?.paths, ["weights.bin"]);
    const saved = ModelMetadataSchema.parse(JSON.parse(await readFile(join(dir, "a", "metadata.json"), "utf8")));
    assert.deepEqual(saved, metadata);
    assert.deepEqual(saved.features, ["rotation", "temperature", "vibration", "sound"]);
    assert.deepEqual(
      saved.reference,
      { rotation: 600, temperature: 40, vibration: 150, sound: 48.5 },
      "the healthy centre, which explanations start from",
    );
    assert.equal(saved.training.trainRows + saved.training.testRows, 1500);
    assert.equal(saved.training.testRows, Math.round(1500 * 0.33));
    assert.equal(saved.metrics.rows, saved.training.testRows);
    assert.ok(saved.metrics.accuracy > 0.6, `accuracy ${saved.metrics.accuracy} after 3 epochs`);
  });

  it("is reproducible: same data and seed give the same weights and id", async () => {
    const [a, b] = [await train("r1", 2), await train("r2", 2)];
    assert.equal(a.id, b.id);
    assert.deepEqual(await readFile(join(dir, "r1", "weights.bin")), await readFile(join(dir, "r2", "weights.bin")));
  });

  it("scores exactly what LayersModel.predict computes, through its fused kernels", async () => {
    await train("f", 2);
    const scoring = await ScoringModel.load(join(dir, "f"));
    const { model, metadata } = await loadModel(join(dir, "f"));
    const rows = generateReadings({ fans: 4, rows: 64, seed: 11 }).map((r) => r.features);
    const scaled = rows.map((row) => row.map((v, c) => (v - metadata.scaler.mean[c]!) / metadata.scaler.std[c]!));
    const expected = (model.predict(tf.tensor2d(scaled)) as tf.Tensor).dataSync();
    const actual = scoring.probabilities(rows);
    assert.equal(actual.length, 64);
    actual.forEach((p, i) => assert.ok(Math.abs(p - expected[i]!) < 1e-5, `row ${i}: ${p} vs ${expected[i]}`));
    const predictions = scoring.predict(rows);
    predictions.forEach((p, i) => assert.equal(p.fault, actual[i]! >= metadata.threshold ? 1 : 0));
    scoring.dispose();
  });

  it("names the problem when a model directory is missing or broken", async () => {
    await assert.rejects(
      ScoringModel.load(join(dir, "nope")),
      (e: unknown) => e instanceof ModelError && /metadata\.json.*MODEL_DIR/.test(e.message),
    );
    await train("broken", 1);
    await writeFile(join(dir, "broken", "metadata.json"), JSON.stringify({ id: "x" }));
    await assert.rejects(
      ScoringModel.load(join(dir, "broken")),
      (e: unknown) => e instanceof ModelError && /not valid model metadata: createdAt/.test(e.message),
    );
  });

  it("refuses a test split that leaves nothing to train on", async () => {
    await assert.rejects(
      trainModel({ dataset: await readCsv(dataFile), dataFile, outDir: join(dir, "x"), testSplit: 1 }),
      /--test-split/,
    );
  });
});
