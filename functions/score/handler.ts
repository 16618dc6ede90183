import { Counter, Histogram, Registry } from "prom-client";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readScoreConfig, type ScoreConfig } from "./config.js";
import { createLogger } from "../../lib/infra/log.js";
import { DynamicBatcher } from "./batcher.js";
import { coalitionRows, READINGS_PER_CALL } from "../../lib/inference/explain.js";
import type { ExplainedVerdict, Verdict } from "../../lib/domain/prediction.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { parseScoreRequest } from "./score-request.js";
import { InputError } from "../../lib/errors.js";

/**
 * score: fault probability for fan readings. `{"params": [...]}` scores one reading (concurrent ones
 * are batched into one tensor call), `{"instances": [[...], ...]}` a batch in one call, and GET
 * describes the model. With `"explain": true` each prediction also says why: every sensor's
 * contribution against the model's healthy reference reading (docs/score.md).
 */
interface Scorer {
  config: ScoreConfig;
  model: ScoringModel;
  batcher: DynamicBatcher<number[], Verdict>;
}

const registry = new Registry();
const readingsScored = new Counter({ name: "score_readings_total", help: "Readings scored", registers: [registry] });
const readingsExplained = new Counter({
  name: "score_readings_explained_total",
  help: "Readings explained (16 model rows each)",
  registers: [registry],
});
const tensorBatch = new Histogram({
  name: "score_tensor_batch_size",
  help: "Model rows per tensor call (16 per explained reading)",
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096],
  registers: [registry],
});

let scorer: Scorer | undefined;

/** Errors of the shared error contract answered as {"error","code","field"} with their status (docs/errors.md). */
export { errorAnswer } from "../../lib/errors.js";

export async function init(): Promise<void> {
  const config = readScoreConfig();
  const model = await ScoringModel.load(
    config.modelDir,
    config.backend === undefined ? {} : { backend: config.backend },
  );
  const batcher = new DynamicBatcher((rows: number[][]) => score(model, rows), {
    maxBatchSize: config.maxBatchSize,
    maxWaitMs: config.maxWaitMs,
  });
  scorer = { config, model, batcher };
  createLogger("score").info(
    {
      event: "model_loaded",
      model: model.metadata.id,
      backend: model.backend,
      modelDir: config.modelDir,
      maxBatchSize: config.maxBatchSize,
      maxWaitMs: config.maxWaitMs,
    },
    `model ${model.metadata.id} loaded on the ${model.backend} backend`,
  );
}

export async function handler(event: FunctionEvent, context: FunctionContext): Promise<unknown> {
  const { config, model, batcher } = ready();
  if (event.method === "GET") {
    return {
      ...model.metadata,
      referenceProbability: model.referenceProbability,
      backend: model.backend,
      batching: { maxBatchSize: config.maxBatchSize, maxWaitMs: config.maxWaitMs },
    };
  }
  if (event.method !== "POST") {
    context.headers({ allow: "GET, POST" });
    throw new InputError(
      `method ${event.method} is not allowed; POST readings or GET the model description`,
      "method",
      { status: 405, code: "FANWATCH_METHOD_NOT_ALLOWED" },
    );
  }
  const request = parseScoreRequest(event.body);
  // An explained reading is 16 model rows already, so a single one skips the batcher: waiting
  // for company would add latency to a call that is a batch by itself.
  if (request.kind === "single")
    return request.explain ? explain(model, [request.features])[0] : batcher.submit(request.features);
  const predictions = request.explain ? explain(model, request.instances) : score(model, request.instances);
  return { model: model.metadata.id, predictions };
}

export function close(): void {
  scorer?.batcher.flush();
  scorer?.model.dispose();
  scorer = undefined;
}

export function metrics(): Promise<string> {
  return registry.metrics();
}

function score(model: ScoringModel, rows: number[][]): Verdict[] {
  readingsScored.inc(rows.length);
  tensorBatch.observe(rows.length);
  return model.predict(rows);
}

function explain(model: ScoringModel, rows: number[][]): ExplainedVerdict[] {
  readingsScored.inc(rows.length);
  readingsExplained.inc(rows.length);
  for (let from = 0; from < rows.length; from += READINGS_PER_CALL)
    tensorBatch.observe(coalitionRows(Math.min(READINGS_PER_CALL, rows.length - from)));
  return model.predictExplained(rows);
}

function ready(): Scorer {
  if (scorer === undefined) throw new Error("the score function was not initialised: init() must run before handler()");
  return scorer;
}
