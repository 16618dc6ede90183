import { Point } from "@influxdata/influxdb-client";
import { z } from "zod";
import { deadLetter } from "../../lib/dead-letter.js";
import { FEATURES } from "../../lib/features.js";
import { parseUntrustedJson } from "../../lib/json.js";
import { PredictionSchema } from "../../lib/prediction.js";
import { parseTelemetry, parseTimestamp } from "../../lib/telemetry.js";

/**
 * The storage schema (docs/persistence.md), the same from Telegraf and from this writer. Tags are
 * strings; readings and predictions have numeric fields (floats, and `fault` an integer 0/1);
 * a dead letter keeps its reason and the rejected payload as strings, tagged with the topic the
 * rejected message came from.
 */
export const SCHEMA = {
  telemetry: { tags: ["deviceID"], fields: { rotation: "float", temperature: "float", vibration: "float", sound: "float" } },
  prediction: { tags: ["deviceID", "model"], fields: { fault: "integer", probability: "float" } },
  deadletter: { tags: ["topic"], fields: { error: "string", payload: "string" } },
} as const;

export type Kind = keyof typeof SCHEMA;

export type PointResult = { ok: true; line: string } | { ok: false; error: string };

/**
 * One MQTT message as one line of InfluxDB line protocol, timestamps in nanoseconds (influx-client
 * writes with precision=ns): a reading from the telemetry topic or a prediction from the anomaly
 * topic, at the reading's own time when it has one; a dead letter at its arrival.
 */
export function toLine(kind: Kind, payload: Buffer, arrivedAt: number): PointResult {
  if (kind === "deadletter") return deadLetterLine(payload, arrivedAt);
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
  const time = nanoseconds(t.timeStamp === undefined ? arrivedAt : (parseTimestamp(t.timeStamp) as number));
  if (time === undefined) return { ok: false, error: outOfRange(t.timeStamp) };
  point.timestamp(time);
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
  const time = nanoseconds(at);
  if (time === undefined) return { ok: false, error: `prediction ${outOfRange(p.timeStamp)}` };
  point.timestamp(time);
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
    letter = parsed.success ? parsed.data : deadLetter(`not a dead letter: ${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message ?? "invalid"}`, "", payload);
  } catch (error) {
    letter = deadLetter(`not a dead letter: not JSON: ${(error as Error).message}`, "", payload);
  }
  const point = new Point("deadletter").stringField("error", letter.error).stringField("payload", letter.payload);
  if (letter.topic !== "") point.tag("topic", letter.topic);
  const time = nanoseconds(arrivedAt, sequence);
  if (time !== undefined) point.timestamp(time); // an arrival time always is in range
  return { ok: true, line: point.toLineProtocol() as string };
}

/**
 * The range of times InfluxDB stores: int64 nanoseconds, the two lowest values reserved
 * (1677-09-21T00:12:43.145224194Z to 2262-04-11T23:47:16.854775806Z). A point outside is refused
 * with 400 and would hold its whole batch back.
 */
const MIN_NS = -(2n ** 63n) + 2n;
const MAX_NS = 2n ** 63n - 2n;

/** Milliseconds (and extra nanoseconds) as a nanosecond timestamp, or undefined outside InfluxDB's range. */
function nanoseconds(ms: number, extraNs = 0): string | undefined {
  if (!Number.isFinite(ms)) return undefined;
  const ns = BigInt(Math.floor(ms)) * 1_000_000n + BigInt(extraNs);
  return ns < MIN_NS || ns > MAX_NS ? undefined : ns.toString();
}

function outOfRange(timeStamp: string | number | undefined): string {
  return `timeStamp: ${JSON.stringify(timeStamp)} is outside the times InfluxDB can store (1677-09-21 to 2262-04-11)`;
}
