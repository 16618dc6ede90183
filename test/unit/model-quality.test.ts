import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { readMetadata } from "../../lib/inference/artifact.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { generateReadings, toCsv } from "../../model/dataset.js";
import { evaluatePredictions } from "../../model/metrics.js";
import { MODEL_DIR, REPO_ROOT } from "../support/paths.js";

// The committed model against fresh held-out data from the reference distributions, balanced
// classes, seeds never used for training. The classes overlap, so about 0.953 is the best any
// per-reading classifier can reach; the reference design reported 0.920.
describe("the committed model", () => {
  it("reaches accuracy >= 0.945 with fault precision and recall >= 0.90 on held-out data", async () => {
    const model = await ScoringModel.load(MODEL_DIR);
    for (const seed of [1001, 1002]) {
      const rows = generateReadings({ fans: 200, rows: 40_000, seed });
      const metrics = evaluatePredictions(
        rows.map((r) => r.faulty),
        model.probabilities(rows.map((r) => r.features)),
        model.threshold,
      );
      assert.ok(metrics.accuracy >= 0.945, `seed ${seed}: accuracy ${metrics.accuracy}`);
      assert.ok(metrics.precision >= 0.9, `seed ${seed}: precision ${metrics.precision}`);
      assert.ok(metrics.recall >= 0.9, `seed ${seed}: recall ${metrics.recall}`);
      assert.ok(metrics.rocAuc !== null && metrics.rocAuc > 0.95, `seed ${seed}: roc-auc ${metrics.rocAuc}`);
    }
    model.dispose();
  });

  it("was trained on data that the recorded command regenerates byte for byte", async () => {
    const metadata = await readMetadata(MODEL_DIR);
    const docs = await readFile(new URL("docs/model.md", `file://${REPO_ROOT}`), "utf8");
    const generate = /fanwatch generate-data --out (\S+) --fans (\d+) --rows (\d+) --seed (\d+)/.exec(docs);
    assert.ok(generate !== null, "docs/model.md gives the generate-data command");
    assert.equal(generate[1], metadata.training.data.file);
    const csv = toCsv(
      generateReadings({ fans: Number(generate[2]), rows: Number(generate[3]), seed: Number(generate[4]) }),
    );
    assert.equal(createHash("sha256").update(csv).digest("hex"), metadata.training.data.sha256);
    assert.ok(
      docs.includes(metadata.training.command),
      "docs/model.md gives the exact train command recorded in metadata.json",
    );
  });
});
