import type { EvaluationMetrics } from "../lib/inference/metadata.js";
import { ScoringModel } from "../lib/inference/runtime.js";
import type { Dataset } from "./dataset.js";
import { evaluatePredictions } from "./metrics.js";

/** Scores a labelled data set with the serving runtime itself, so the numbers are what users get. */
export async function evaluateModel(
  modelDir: string,
  dataset: Dataset,
  options: { backend?: string } = {},
): Promise<{ model: ScoringModel; metrics: EvaluationMetrics }> {
  const model = await ScoringModel.load(modelDir, options);
  const probabilities = model.probabilities(dataset.rows.map((r) => r.features));
  const metrics = evaluatePredictions(
    dataset.rows.map((r) => r.faulty),
    probabilities,
    model.threshold,
  );
  return { model, metrics };
}
