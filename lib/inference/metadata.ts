import { z } from "zod";
import { FEATURES } from "../domain/features.js";
import { PerSensorSchema } from "../domain/prediction.js";

const finite = z.number().finite();
const perFeature = z.array(finite).length(FEATURES.length);

/** Quality of a model on a labelled data set; the fault class is the positive class. */
export const EvaluationMetricsSchema = z.object({
  rows: z.number().int().nonnegative(),
  accuracy: finite,
  precision: finite,
  recall: finite,
  f1: finite,
  /** null when the data holds one class only. */
  rocAuc: finite.nullable(),
  confusion: z.object({
    truePositive: z.number().int(),
    falsePositive: z.number().int(),
    trueNegative: z.number().int(),
    falseNegative: z.number().int(),
  }),
});
export type EvaluationMetrics = z.infer<typeof EvaluationMetricsSchema>;

/** metadata.json, written next to model.json by `fanwatch train` and served by `GET /function/score`. */
export const ModelMetadataSchema = z.object({
  id: z.string().min(1),
  createdAt: z.string(),
  features: z.array(z.string()).length(FEATURES.length),
  scaler: z.object({ mean: perFeature, std: perFeature.refine((s) => s.every((v) => v > 0), "std must be > 0") }),
  threshold: z.number().gt(0).lt(1),
  /**
   * The healthy reading explanations are measured against (docs/model.md): each sensor's
   * contribution says how far the reading's fault probability moved from this one's.
   */
  reference: PerSensorSchema,
  architecture: z.string(),
  training: z.object({
    data: z.object({ file: z.string(), sha256: z.string(), rows: z.number().int() }),
    trainRows: z.number().int(),
    testRows: z.number().int(),
    epochs: z.number().int(),
    batchSize: z.number().int(),
    seed: z.number().int(),
    testSplit: z.number(),
    backend: z.string(),
    tfjsVersion: z.string(),
    seconds: z.number(),
    command: z.string(),
  }),
  metrics: EvaluationMetricsSchema,
});
export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;
