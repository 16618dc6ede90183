import { z } from "zod";
import { FEATURES, type FeatureName } from "./features.js";

const perSensor = z.object(
  Object.fromEntries(FEATURES.map((f) => [f, z.number().finite()])) as Record<FeatureName, z.ZodNumber>,
);

/** One number per sensor, in FEATURES order of keys: a reading, or what each sensor contributed. */
export const PerSensorSchema = perSensor;
export type PerSensor = z.infer<typeof perSensor>;

/**
 * A prediction as predict publishes it on the anomaly topic (docs/architecture.md, "Contracts"), and as its readers
 * (the health function, the InfluxDB writer, the fleet view) check it. A superset of the reference
 * design's `{deviceID, fault}`:
 * - `reading`: the four values that were scored, so that the health function can follow each
 *   sensor's trend without subscribing to the telemetry as well;
 * - `cause` and `contributions`: only on faulty predictions, from score's explanation (the sensor
 *   with the largest contribution, and each sensor's exact Shapley value against the healthy
 *   reference reading).
 */
export const PredictionSchema = z.object({
  deviceID: z.string().min(1).max(128),
  fault: z.union([z.literal(0), z.literal(1)]),
  probability: z.number().min(0).max(1),
  timeStamp: z.union([z.string(), z.number()]).optional(),
  model: z.string().max(128).optional(),
  reading: perSensor.optional(),
  cause: z.enum(FEATURES).optional(),
  contributions: perSensor.optional(),
});

export type Prediction = z.infer<typeof PredictionSchema>;

/**
 * The model's verdict on one reading, before it is about a fan: a Prediction's `fault` and
 * `probability`, as score answers for each reading (docs/score.md).
 */
export const VerdictSchema = PredictionSchema.pick({ fault: true, probability: true });
export type Verdict = z.infer<typeof VerdictSchema>;

/**
 * A verdict with why (score's `"explain": true`): a Prediction's `cause` and `contributions`, and
 * the probability of the healthy reference reading they start from: `probability −
 * referenceProbability` equals the sum of `contributions` (to rounding).
 */
export const ExplainedVerdictSchema = PredictionSchema.pick({
  fault: true,
  probability: true,
  cause: true,
  contributions: true,
})
  .required({ cause: true, contributions: true })
  .extend({ referenceProbability: z.number() });
export type ExplainedVerdict = z.infer<typeof ExplainedVerdictSchema>;
