import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import * as tf from "@tensorflow/tfjs-core";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { ModelHolder } from "./model-holder.js";
import { scoreBatch } from "./scoring.js";

// Runs in the repository (npm test): the shipped model, and a second one made from it whose
// threshold is far lower (0.05), so that it calls the healthy readings here (about 0.11) faults.
const SHIPPED = "model/artifact";
const READINGS = [
  [620, 40, 150, 48],
  [420, 53, 240, 58],
  [560, 45, 180, 51],
];
const silent = pino({ level: "silent" });

describe("score's model holder", () => {
  let dir: string;
  let otherDir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-holder-"));
    otherDir = join(dir, "eager");
    await cp(SHIPPED, otherDir, { recursive: true });
    const metadata = JSON.parse(await readFile(join(otherDir, "metadata.json"), "utf8")) as Record<string, unknown>;
    await writeFile(join(otherDir, "metadata.json"), JSON.stringify({ ...metadata, id: "fan-eager", threshold: 0.05 }));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("lets a call in flight finish on the model it took, and disposes that model when the call ends", async () => {
    const first = await ScoringModel.load(SHIPPED);
    const second = await ScoringModel.load(otherDir);
    const holder = new ModelHolder(first);
    const inFlight = holder.acquire();
    holder.serve(second, undefined, undefined);
    assert.equal(holder.acquire().active.metadata.id, "fan-eager", "a call after the swap takes the new model");
    assert.equal(inFlight.active, first);
    assert.equal(inFlight.active.predict(READINGS).length, 3, "the old model still answers its call in flight");
    const tensors = tf.memory().numTensors;
    inFlight.release();
    assert.ok(tf.memory().numTensors < tensors, "the old model's weights are let go once its last call ended");
    assert.equal(second.predict(READINGS).length, 3);
    holder.close();
  });

  it("disposes a model no call holds at the swap itself, and everything at close", async () => {
    const first = await ScoringModel.load(SHIPPED);
    const second = await ScoringModel.load(otherDir);
    const holder = new ModelHolder(first);
    holder.serve(second, first, undefined);
    assert.equal(first.predict(READINGS).length, 3, "still served, as the shadow");
    const tensors = tf.memory().numTensors;
    holder.serve(second, undefined, undefined);
    const afterSwap = tf.memory().numTensors;
    assert.ok(afterSwap < tensors, "the model no longer served is let go at once");
    holder.close();
    assert.ok(tf.memory().numTensors < afterSwap, "and the rest at close");
  });

  it("keeps a standby model loaded after it leaves service, and lets it go when another is kept", async () => {
    const first = await ScoringModel.load(SHIPPED);
    const second = await ScoringModel.load(otherDir);
    const holder = new ModelHolder(first);
    holder.serve(second, undefined, first);
    assert.equal(first.predict(READINGS).length, 3, "kept for a rollback");
    assert.equal(holder.find(first.metadata.id), first);
    const tensors = tf.memory().numTensors;
    holder.keep(undefined);
    assert.ok(tf.memory().numTensors < tensors, "let go once no longer kept");
    holder.close();
  });

  it("answers a batch with the shadow's predictions and each model's compute time when a shadow is served", async () => {
    const holder = new ModelHolder(await ScoringModel.load(SHIPPED));
    const alone = holder.use((lease) => scoreBatch(lease, READINGS, silent));
    assert.deepEqual(Object.keys(alone), ["model", "predictions"]);
    holder.serve(holder.active, await ScoringModel.load(otherDir), undefined);
    const both = holder.use((lease) => scoreBatch(lease, READINGS, silent));
    assert.equal(both.model, alone.model);
    assert.deepEqual(both.predictions, alone.predictions);
    assert.equal(both.shadow?.model, "fan-eager");
    assert.deepEqual(
      both.shadow?.predictions.map((p) => p.probability),
      alone.predictions.map((p) => p.probability),
      "the same weights give the same probabilities",
    );
    assert.ok(
      both.shadow?.predictions.some((p, i) => p.fault !== alone.predictions[i]?.fault),
      "the lower threshold answers differently",
    );
    assert.ok(both.timing !== undefined && both.timing.activeMs >= 0 && both.timing.shadowMs >= 0);
    holder.close();
  });
});
