import { Counter, Histogram, Registry } from "prom-client";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readScoreConfig, type ScoreConfig } from "../../lib/config.js";
import { createLogger } from "../../lib/log.js";
import { DynamicBatcher } from "../../lib/model/batcher.js";
import { ScoringModel, type Prediction } from "../../lib/model/runtime.js";
import { parseScoreRequest } from "../../lib/score-request.js";

/**
 * score: fault probability for fan readings. `{"params": [...]}` scores one reading (concurrent ones
 * are batched into one tensor call), `{"instances": [[...], ...]}` a batch in one call, and GET
 * describes the model.
 */
interface Scorer {
  config: ScoreConfig;
  model: ScoringModel;
  batcher: DynamicBatcher<number[], Prediction>;
}

const registry = new Registry();
const readingsScored = new Counter({ name: "score_readings_total", help: "Readings scored", registers: [registry] });
const tensorBatch = new Histogram({
  name: "score_tensor_batch_size",
  help: "Readings per tensor call",
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096],
  registers: [registry],
});

let scorer: Scorer | undefined;

export async function init(): Promise<void> {
  const config = readScoreConfig();
  const model = await ScoringModel.load(config.modelDir, config.backend === undefined ? {} : { backend: config.backend });
  const batcher = new DynamicBatcher((rows: number[][]) => score(model, rows), { maxBatchSize: config.maxBatchSize, maxWaitMs: config.maxWaitMs });
  scorer = { config, model, batcher };
  createLogger("score").info(
    { event: "model_loaded", model: model.metadata.id, backend: model.backend, modelDir: config.modelDir, maxBatchSize: config.maxBatchSize, maxWaitMs: config.maxWaitMs },
    `model ${model.metadata.id} loaded on the ${model.backend} backend`,
  );
}

export async function handler(event: FunctionEvent, context: FunctionContext): Promise<unknown> {
  const { config, model, batcher } = ready();
  if (event.method === "GET") {
    return { ...model.metadata, backend: model.backend, batching: { maxBatchSize: config.maxBatchSize, maxWaitMs: config.maxWaitMs } };
  }
  if (event.method !== "POST") {
    context.status(405).headers({ allow: "GET, POST" });
    return { error: `method ${event.method} is not allowed; POST readings or GET the model description`, field: "method" };
  }
  const request = parseScoreRequest(event.body);
  if (request.kind === "single") return batcher.submit(request.features);
  return { model: model.metadata.id, predictions: score(model, request.instances) };
}

export function close(): void {
  scorer?.batcher.flush();
  scorer?.model.dispose();
  scorer = undefined;
}

export function metrics(): Promise<string> {
  return registry.metrics();
}

function score(model: ScoringModel, rows: number[][]): Prediction[] {
  readingsScored.inc(rows.length);
  tensorBatch.observe(rows.length);
  return model.predict(rows);
}

function ready(): Scorer {
  if (scorer === undefined) throw new Error("the score function was not initialised: init() must run before handler()");
  return scorer;
}
