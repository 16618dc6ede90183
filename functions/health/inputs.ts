import { createHash } from "node:crypto";
import { z } from "zod";
import { PredictionSchema, type Prediction } from "../../lib/domain/prediction.js";
import { parseTimestamp } from "../../lib/domain/telemetry.js";
import { fieldPath } from "../../lib/infra/validation.js";
import type { HealthInput } from "./evaluator.js";

/** `{"deviceID":"3","action":"acknowledge","by":"name","note":"…"}`: someone has seen the alarm. */
export const AcknowledgeSchema = z.object({
  deviceID: z.union([z.string(), z.number().transform(String)]).pipe(z.string().min(1).max(128)),
  action: z.literal("acknowledge"),
  by: z.string().trim().min(1).max(128),
  note: z.string().max(1024).optional(),
});
export type Acknowledge = z.infer<typeof AcknowledgeSchema>;

/**
 * A body is a command when it is one object with an `action`; otherwise it is one prediction or
 * an array of them (what our connector sends from the anomaly topic).
 */
export function isCommand(body: unknown): boolean {
  return body !== null && typeof body === "object" && !Array.isArray(body) && "action" in body;
}

/** One fan's predictions of an invocation, in arrival order, with a digest that names the batch when it needs one. */
export interface FanBatch {
  deviceID: string;
  inputs: HealthInput[];
  digest: string | undefined;
}

export interface Rejection {
  index: number;
  item: unknown;
  error: string;
  field: string;
}

/** Valid predictions grouped by fan, and the rejected ones, each named by its index and field. */
export function groupByFan(
  items: readonly unknown[],
  arrival: number,
): { fans: FanBatch[]; rejections: Rejection[]; valid: number } {
  const groups = new Map<string, { predictions: Prediction[]; inputs: HealthInput[]; untimed: boolean }>();
  const rejections: Rejection[] = [];
  let valid = 0;
  for (const [index, item] of items.entries()) {
    const parsed = PredictionSchema.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = fieldPath("", issue?.path ?? []) || "prediction";
      rejections.push({ index, item, error: `${field}: ${issue?.message ?? "invalid"}`, field });
      continue;
    }
    const prediction = parsed.data;
    let group = groups.get(prediction.deviceID);
    if (group === undefined) groups.set(prediction.deviceID, (group = { predictions: [], inputs: [], untimed: false }));
    group.predictions.push(prediction);
    // Trends are judged on reading time; a prediction without a usable one counts at arrival.
    const at = prediction.timeStamp === undefined ? undefined : parseTimestamp(prediction.timeStamp);
    if (at === undefined) group.untimed = true;
    group.inputs.push({ prediction, at: at ?? arrival });
    valid++;
  }
  const fans = [...groups].map(([deviceID, g]) => ({
    deviceID,
    inputs: g.inputs,
    digest: g.untimed ? digest(g.predictions) : undefined,
  }));
  return { fans, rejections, valid };
}

/**
 * Names a fan's share of a batch: the connector sends the same batch again after a 503 or a
 * timeout, and its predictions must not be counted twice. With reading times the evaluator
 * recognises them itself (it moves forwards in reading time only); a prediction without one is
 * placed at its arrival, which differs on the second delivery, so such a share is named by its
 * content: 96 bits of SHA-256 over the predictions as validated (a collision between two batches
 * of one fan is not a practical concern). Only then: hashing every fan's share cost 2-3% of
 * health's CPU.
 */
function digest(predictions: Prediction[]): string {
  return createHash("sha256").update(JSON.stringify(predictions)).digest("base64url").slice(0, 16);
}
