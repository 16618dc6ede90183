import { Point } from "@influxdata/influxdb-client";
import { z } from "zod";
import { deadLetter } from "../../lib/domain/dead-letter.js";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { PredictionSchema } from "../../lib/domain/prediction.js";
import { parseTelemetry, parseTimestamp, readTimestamp } from "../../lib/domain/telemetry.js";
import { HEALTH_SCHEMA, healthLine } from "./health-points.js";

/**
 * The storage schema (docs/persistence.md), the same from Telegraf and from this writer. Tags are
 * strings; readings and predictions have numeric fields (floats, and `fault` an integer 0/1);
 * a dead letter keeps its reason and the rejected payload as strings, tagged with the topic the
 * rejected message came from; a health transition is described in health-points.ts.
 */
export const SCHEMA = {
  telemetry: {
    tags: ["deviceID"],
    // One float per sensor, in FEATURES order: the order toLine writes them in.
    fields: Object.fromEntries(FEATURES.map((f) => [f, "float"])) as Record<FeatureName, "float">,
  },
  prediction: { tags: ["deviceID", "model"], fields: { fault: "integer", probability: "float" } },
  deadletter: { tags: ["topic"], fields: { error: "string", payload: "string" } },
  health: HEALTH_SCHEMA,
} as const;

export type Kind = keyof typeof SCHEMA;

export type PointResult = { ok: true; line: string } | { ok: false; error: string };

/**
 * One MQTT message as one line of InfluxDB line protocol, timestamps in nanoseconds (influx-client
 * writes with precision=ns): a reading from the telemetry topic or a prediction from the anomaly
 * topic, at the reading's own time when it has one; a dead letter at its arrival; a health
 * transition from the alarm topic at its own time `at`.
 */
export function toLine(kind: Kind, payload: Buffer, arrivedAt: number): PointResult {
  if (kind === "deadletter") return deadLetterLine(payload, arrivedAt);
  let value: unknown;
  try {
    value = parseUntrustedJson(payload);
  } catch (error) {
    return { ok: false, error: `payload is not JSON: ${(error as Error).message}` };
  }
  if (kind === "health") return healthLine(value);
  return kind === "telemetry" ? telemetryLine(value, arrivedAt) : predictionLine(value, arrivedAt);
}

function telemetryLine(value: unknown, arrivedAt: number): PointResult {
  const parsed = parseTelemetry(value);
  if (!parsed.ok) return { ok: false, error: parsed.error };
  const t = parsed.telemetry;
  const point = new Point("telemetry").tag("deviceID", t.deviceID);
  for (const f of FEATURES) point.floatField(f, t[f]);
  // The schema accepted the timeStamp, so it parses, within the range InfluxDB stores.
  point.timestamp(nanoseconds(t.timeStamp === undefined ? arrivedAt : (parseTimestamp(t.timeStamp) as number)));
  return { ok: true, line: point.toLineProtocol() as string };
}

function predictionLine(value: unknown, arrivedAt: number): PointResult {
  const parsed = PredictionSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `prediction ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}` };
  }
  const p = parsed.data;
  const point = new Point("prediction")
    .tag("deviceID", p.deviceID)
    .intField("fault", p.fault)
    .floatField("probability", p.probability);
  if (p.model !== undefined) point.tag("model", p.model);
  const at = p.timeStamp === undefined ? arrivedAt : readTimestamp(p.timeStamp);
  if (typeof at === "string") return { ok: false, error: `prediction timeStamp: ${at}` };
  point.timestamp(nanoseconds(at));
  return { ok: true, line: point.toLineProtocol() as string };
}

/** InfluxDB 1.x caps string fields at 64 KiB; a dead letter's are 1 KiB of payload and a reason. */
const FIELD_LIMIT = 16_384;
const DeadLetterSchema = z.object({
  error: z.string().max(FIELD_LIMIT),
  topic: z.string().min(1).max(1024),
  payload: z.string().max(FIELD_LIMIT),
  at: z.string(),
});

/**
 * Dead-letter times: arrival milliseconds plus a sequence in the nanoseconds below, so that two
 * dead letters of the same millisecond are two points (same series, same time would be one).
 * Distinct for up to a million dead letters per millisecond.
 */
let sequence = 0;

/**
 * Everything on the dead-letter topic is stored, never refused: refusing would publish a dead
 * letter about a dead letter on the same topic, forever. A message that is not a dead letter is
 * stored as one about itself, without a topic tag (so it is never replayed), its text truncated.
 */
function deadLetterLine(payload: Buffer, arrivedAt: number): PointResult {
  sequence = (sequence + 1) % 1_000_000;
  let letter: { error: string; topic: string; payload: string };
  try {
    const parsed = DeadLetterSchema.safeParse(parseUntrustedJson(payload));
    letter = parsed.success
      ? parsed.data
      : deadLetter(
          `not a dead letter: ${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message ?? "invalid"}`,
          "",
          payload,
        );
  } catch (error) {
    letter = deadLetter(`not a dead letter: not JSON: ${(error as Error).message}`, "", payload);
  }
  const point = new Point("deadletter").stringField("error", letter.error).stringField("payload", letter.payload);
  if (letter.topic !== "") point.tag("topic", letter.topic);
  point.timestamp(nanoseconds(arrivedAt, sequence));
  return { ok: true, line: point.toLineProtocol() as string };
}

/**
 * Milliseconds (and extra nanoseconds below them) as a nanosecond timestamp. Every time passed
 * here is within the range InfluxDB stores (int64 nanoseconds, 1677-09-21 to 2262-04-11): readings'
 * and predictions' timeStamps are refused outside 1970-01-01 to 2262-04-11 (lib/domain/telemetry.ts), and
 * arrival times are now.
 */
function nanoseconds(ms: number, extraNs = 0): string {
  return (BigInt(Math.floor(ms)) * 1_000_000n + BigInt(extraNs)).toString();
}
