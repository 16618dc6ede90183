import { Point } from "@influxdata/influxdb-client";
import { z } from "zod";
import { deadLetter } from "../../lib/domain/dead-letter.js";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { PredictionSchema } from "../../lib/domain/prediction.js";
import { isSensorNotice } from "../../lib/domain/sensor-notice.js";
import { readTimestamp } from "../../lib/domain/telemetry.js";
import { HEALTH_SCHEMA, healthLine } from "./health-points.js";

/**
 * The storage schema (docs/persistence.md), the same from Telegraf and from this writer. Tags are
 * strings; readings and predictions have numeric fields (floats, and `fault` an integer 0/1);
 * a dead letter keeps its reason, the rejected payload and the topic it came from (`sourceTopic`) as
 * strings, tagged with that topic normalised (topicTag) and its error code; a health transition is described in health-points.ts.
 * Readings (`telemetry`) come from the predictions' `reading`, not from the telemetry topic: a
 * prediction exists only for a reading the connector let through (an active registered fan), so
 * a quarantined or forged reading never reaches InfluxDB.
 */
export const SCHEMA = {
  telemetry: {
    tags: ["deviceID"],
    // One float per sensor, in FEATURES order: the order toLines writes them in.
    fields: Object.fromEntries(FEATURES.map((f) => [f, "float"])) as Record<FeatureName, "float">,
  },
  prediction: { tags: ["deviceID", "model"], fields: { fault: "integer", probability: "float" } },
  deadletter: { tags: ["topic", "code"], fields: { error: "string", payload: "string", sourceTopic: "string" } },
  health: HEALTH_SCHEMA,
} as const;

export type Measurement = keyof typeof SCHEMA;

/** The topic a message came from: the anomaly topic (predictions), the dead-letter topic, the alarm topic. */
export type Source = "prediction" | "deadletter" | "health";

export type PointResult = { ok: true; line: string } | { ok: false; error: string };

/**
 * A message's points, or why it cannot be stored. No lines (and `skipped` saying why) for what is
 * expected on its topic but not stored: a sensor notice on the anomaly topic.
 */
export type PointsResult = { ok: true; lines: string[]; skipped?: string } | { ok: false; error: string };

/**
 * One MQTT message as lines of InfluxDB line protocol, timestamps in nanoseconds (influx-client
 * writes with precision=ns): a prediction from the anomaly topic, and the reading it scored, both
 * at the reading's own time when it has one; a dead letter at its arrival; a health transition
 * from the alarm topic at its own time `at`. `telemetryTopic` (TELEMETRY_TOPIC) is for dead letters'
 * topic tags (topicTag).
 */
export function toLines(source: Source, payload: Buffer, arrivedAt: number, telemetryTopic: string): PointsResult {
  if (source === "deadletter") return one(deadLetterLine(payload, arrivedAt, telemetryTopic));
  let value: unknown;
  try {
    value = parseUntrustedJson(payload);
  } catch (error) {
    return { ok: false, error: `payload is not JSON: ${(error as Error).message}` };
  }
  if (source === "health") return one(healthLine(value));
  // Expected on the anomaly topic (health reads it), never a point: its reading was dead-lettered.
  if (isSensorNotice(value)) return { ok: true, lines: [], skipped: "sensor notice" };
  return predictionLines(value, arrivedAt);
}

function one(result: PointResult): PointsResult {
  return result.ok ? { ok: true, lines: [result.line] } : result;
}

/** The prediction point, and the reading's point when the prediction carries the reading it scored. */
function predictionLines(value: unknown, arrivedAt: number): PointsResult {
  const parsed = PredictionSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `prediction ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}` };
  }
  const p = parsed.data;
  const at = p.timeStamp === undefined ? arrivedAt : readTimestamp(p.timeStamp);
  if (typeof at === "string") return { ok: false, error: `prediction timeStamp: ${at}` };
  const time = nanoseconds(at);
  const prediction = new Point("prediction")
    .tag("deviceID", p.deviceID)
    .intField("fault", p.fault)
    .floatField("probability", p.probability);
  if (p.model !== undefined) prediction.tag("model", p.model);
  const lines = [prediction.timestamp(time).toLineProtocol() as string];
  if (p.reading !== undefined) {
    const reading = new Point("telemetry").tag("deviceID", p.deviceID);
    for (const f of FEATURES) reading.floatField(f, p.reading[f]);
    lines.push(reading.timestamp(time).toLineProtocol() as string);
  }
  return { ok: true, lines };
}

/** InfluxDB 1.x caps string fields at 64 KiB; a dead letter's are 1 KiB of payload and a reason. */
const FIELD_LIMIT = 16_384;
const DeadLetterSchema = z.object({
  error: z.string().max(FIELD_LIMIT),
  topic: z.string().min(1).max(1024),
  payload: z.string().max(FIELD_LIMIT),
  at: z.string(),
  /**
   * The FANWATCH_* error code of the refusal (docs/errors.md), when the refuser gave one: a tag, a
   * few dozen values at most. Anything else there is left out rather than stored as a tag (a tag
   * of free text would add a series per value); the dead letter itself is still stored.
   */
  code: z
    .string()
    .regex(/^FANWATCH_[A-Z0-9_]{1,64}$/)
    .optional()
    .catch(undefined),
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
function deadLetterLine(payload: Buffer, arrivedAt: number, telemetryTopic: string): PointResult {
  sequence = (sequence + 1) % 1_000_000;
  let letter: { error: string; topic: string; payload: string; code?: string | undefined };
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
  if (letter.topic !== "")
    point.tag("topic", topicTag(letter.topic, telemetryTopic)).stringField("sourceTopic", letter.topic);
  if (letter.code !== undefined) point.tag("code", letter.code);
  point.timestamp(nanoseconds(arrivedAt, sequence));
  return { ok: true, line: point.toLineProtocol() as string };
}

/**
 * A dead letter's topic as a tag: a per-fan topic `<telemetry>/<id>` (or anything else under the
 * telemetry topic) becomes `<telemetry>/+`, since every value of a tag is a series and anyone may
 * publish under the telemetry topic with made-up ids (InfluxDB refuses writes past
 * max-values-per-tag). The other topics are the services' own, a handful. Telegraf's
 * processors.regex on dead letters does the same (deploy/telegraf/telegraf.conf).
 */
export function topicTag(topic: string, telemetryTopic: string): string {
  return topic.startsWith(`${telemetryTopic}/`) ? `${telemetryTopic}/+` : topic;
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
