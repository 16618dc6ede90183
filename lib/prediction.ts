import { z } from "zod";

/**
 * A prediction as predict publishes it on the anomaly topic (architecture.md), and as its readers
 * (the InfluxDB writer, the fleet view) check it.
 */
export const PredictionSchema = z.object({
  deviceID: z.string().min(1).max(128),
  fault: z.union([z.literal(0), z.literal(1)]),
  probability: z.number().min(0).max(1),
  timeStamp: z.union([z.string(), z.number()]).optional(),
  model: z.string().max(128).optional(),
});

export type Prediction = z.infer<typeof PredictionSchema>;
