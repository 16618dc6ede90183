import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ModelFollower } from "../../functions/score/model-follower.js";
import { ModelHolder } from "../../functions/score/model-holder.js";
import { readScoreConfig } from "../../functions/score/config.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { createLogger } from "../../lib/infra/log.js";
import { bundleFromDirectory } from "../../lib/models/bundle.js";
import { eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { MODEL_DIR } from "../support/paths.js";

describe("score makes the model registry's buckets with NATS_KV_REPLICAS copies (real nats-server)", () => {
  let nats: TestNats;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await nats.stop();
  });

  it("reads NATS_KV_REPLICAS, 1 unless set", () => {
    assert.equal(readScoreConfig({}).kvReplicas, 1);
    assert.equal(readScoreConfig({ NATS_KV_REPLICAS: "3" }).kvReplicas, 3);
    assert.throws(() => readScoreConfig({ NATS_KV_REPLICAS: "9" }), /NATS_KV_REPLICAS/);
  });

  it("asks NATS for the copies it is given: one server cannot hold 3, so the replica says why and serves its own model", async () => {
    const lines: string[] = [];
    const model = await ScoringModel.load(MODEL_DIR);
    const holder = new ModelHolder(model);
    const follower = new ModelFollower({
      url: nats.url,
      site: "plant-r3",
      replica: "score-1",
      shipped: await bundleFromDirectory(MODEL_DIR, { parent: null }),
      holder,
      replicas: 3,
      log: createLogger("score", "info", (line) => void lines.push(line)),
    });
    await follower.start();
    try {
      const said = await eventuallyValue(
        "the replica saying the registry cannot be followed",
        () => lines.find((l) => l.includes('"registry_unavailable"')),
        (line) => line !== undefined,
      );
      assert.match(said ?? "", /cannot open the model registry/);
      assert.match(said ?? "", /replicas > 1 not supported in non-clustered mode/);
      assert.equal(holder.active, model, "the model it started with still serves");
    } finally {
      await follower.close();
      holder.close();
    }
  });
});
