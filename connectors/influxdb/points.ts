import { Point } from "@influxdata/influxdb-client";
import { FEATURES } from "../../lib/features.js";
import { parseUntrustedJson } from "../../lib/json.js";
import { PredictionSchema } from "../../lib/prediction.js";
import { parseTelemetry, parseTimestamp } from "../../lib/telemetry.js";

/**
 * The storage schema (docs/persistence.md), the same from Telegraf and from this writer. Tags are
 * strings; every field is numeric: floats, and `fault` an integer 0/1.
 */
export const SCHEMA = {
  telemetry: { tags: ["deviceID"], fields: { rotation: "float", temperature: "float", vibration: "float", sound: "float" } },
  prediction: { tags: ["deviceID", "model"], fields: { fault: "integer", probability: "float" } },
} as const;

export type PointResult = { ok: true; line: string } | { ok: false; error: string };

/**
 * One MQTT message as one line of InfluxDB line protocol, in milliseconds: a reading from the
 * telemetry topic or a prediction from the anomaly topic, at the reading's own time when it has one.
 */
export function toLine(kind: "telemetry" | "prediction", payload: Buffer, arrivedAt: number): PointResult {
  let value: unknown;
  try {
    value = parseUntrustedJson(payload);
  } catch (error) {
    return { ok: false, error: `payload is not JSON: ${(error as Error).message}` };
  }
  return kind === "telemetry" ? telemetryLine(value, arrivedAt) : predictionLine(value, arrivedAt);
}

function telemetryLine(value: unknown, arrivedAt: number): PointResult {
  const parsed = parseTelemetry(value);
  if (!parsed.ok) return { ok: false, error: parsed.error };
  const t = parsed.telemetry;
  const point = new Point("telemetry").tag("deviceID", t.deviceID);
  for (const f of FEATURES) point.floatField(f, t[f]);
  // The schema accepted the timeStamp, so it parses.
  point.timestamp(timeOf(t.timeStamp === undefined ? arrivedAt : (parseTimestamp(t.timeStamp) as number)));
  return { ok: true, line: point.toLineProtocol() as string };
}

function predictionLine(value: unknown, arrivedAt: number): PointResult {
  const parsed = PredictionSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `prediction ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}` };
  }
  const p = parsed.data;
  const point = new Point("prediction").tag("deviceID", p.deviceID).intField("fault", p.fault).floatField("probability", p.probability);
  if (p.model !== undefined) point.tag("model", p.model);
  const at = p.timeStamp === undefined ? arrivedAt : parseTimestamp(p.timeStamp);
  if (at === undefined) return { ok: false, error: "prediction timeStamp: must be YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds" };
  point.timestamp(timeOf(at));
  return { ok: true, line: point.toLineProtocol() as string };
}

/** The line's timestamp: milliseconds since the epoch, as text (lines are written with precision=ms). */
function timeOf(ms: number): string {
  return String(Math.floor(ms));
}
