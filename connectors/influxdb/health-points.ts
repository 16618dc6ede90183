import { Point } from "@influxdata/influxdb-client";
import { z } from "zod";
import { FEATURES } from "../../lib/domain/features.js";
import { AlarmTransitionSchema, NOTE_EVENTS } from "../../lib/domain/health.js";
import { TIMESTAMP_MAX_MS, TIMESTAMP_MIN_MS } from "../../lib/domain/telemetry.js";
// A type only: points.ts imports the schema from here, and types leave no import behind at run time.
import type { PointResult } from "./points.js";

/**
 * The `health` measurement: one point per transition on the alarm topic (fan/alarm), at the
 * transition's time `at`. Tags are the fan and two small enumerations (the events of HEALTH_EVENTS
 * × 5 states; a state event is the state it enters, an action or a note keeps the fan's), so the
 * series are a dozen or so per fan; the alarm id, different for every episode, and the free text
 * (who acted, notes, assignee, finding) are fields, and so is the model behind the transition
 * (`model`: a tag would split each of those series at every promotion). A transition delivered
 * twice (QoS 1) is the same series at the same time: InfluxDB keeps it once. Telegraf writes the
 * same points (its json_v2 parser leaves out JSON nulls, as this does).
 */
export const HEALTH_SCHEMA = {
  tags: ["deviceID", "event", "state"],
  fields: {
    alarmId: "string",
    severity: "string",
    cause: "string",
    probability: "float",
    eta: "string",
    eta_from: "string",
    eta_to: "string",
    eta_coverage: "float",
    basis: "string",
    sensors: "string",
    acknowledged: "boolean",
    ...(Object.fromEntries(FEATURES.map((f) => [`contribution_${f}`, "float"])) as Record<
      `contribution_${(typeof FEATURES)[number]}`,
      "float"
    >),
    acknowledgedBy: "string",
    author: "string",
    note: "string",
    assignedTo: "string",
    result: "string",
    part: "string",
    sensor: "string",
    model: "string",
  },
} as const;

/**
 * RFC 3339, as Telegraf's layout `2006-01-02T15:04:05Z07:00` reads it (fractions of a second
 * allowed, to the nanosecond): `2026-11-27T10:00:00.123Z`, `…+01:00`.
 */
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time as nanoseconds since the epoch, or why it cannot be stored. */
export function rfc3339Nanoseconds(text: string): bigint | string {
  const match = RFC3339.exec(text);
  if (match === null)
    return `${JSON.stringify(text.slice(0, 40))} is not an RFC 3339 time (e.g. 2026-11-27T10:00:00.000Z)`;
  const [, seconds, fraction = "", zone] = match;
  const ms = Date.parse(`${seconds}${zone}`);
  if (Number.isNaN(ms)) return `${JSON.stringify(text)} is not a valid time`;
  if (ms < TIMESTAMP_MIN_MS || ms > TIMESTAMP_MAX_MS)
    return `${text} is outside 1970-01-01 to 2262-04-11, the times InfluxDB can store`;
  return BigInt(ms) * 1_000_000n + BigInt(fraction.padEnd(9, "0"));
}

/**
 * A transition as stored: the health function's schema, except that the event is any short
 * lower-case name rather than one of HEALTH_EVENTS. Health gains events (a sensor issue opened or
 * cleared, say) before every writer is upgraded: an event the writer does not know yet is stored
 * like the others, not refused. Still bounded, as a tag must be: at most 32 characters of a-z, 0-9
 * and `-`. Fields the writer does not know (a new record field) are left out of the point.
 */
const StoredTransitionSchema = AlarmTransitionSchema.extend({
  event: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "must be an event name (a-z, 0-9, -; at most 32 characters)"),
});

/** Who a transition's `by` is: a note's author, or who acted (the other events). */
const NOTES: ReadonlySet<string> = NOTE_EVENTS;

/** One transition as one line of line protocol (nanoseconds), or why it is not one. */
export function healthLine(value: unknown): PointResult {
  const parsed = StoredTransitionSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `health transition ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}` };
  }
  const t = parsed.data;
  const time = rfc3339Nanoseconds(t.at);
  if (typeof time === "string") return { ok: false, error: `health transition at: ${time}` };
  const point = new Point("health").tag("deviceID", t.deviceID).tag("event", t.event).tag("state", t.state);
  point
    .stringField("severity", t.severity)
    .floatField("probability", t.probability)
    .booleanField("acknowledged", t.acknowledged);
  if (t.alarmId !== null) point.stringField("alarmId", t.alarmId);
  if (t.cause !== null) point.stringField("cause", t.cause);
  if (t.eta !== null) point.stringField("eta", t.eta);
  // A warning's interval (as its eta: RFC 3339 text), what it was judged against and every drifting
  // sensor, comma-joined (`vibration,temperature`: the cause first), as Telegraf stores them.
  if (t.etaInterval != null)
    point
      .stringField("eta_from", t.etaInterval.from)
      .stringField("eta_to", t.etaInterval.to)
      .floatField("eta_coverage", t.etaInterval.coverage);
  if (t.basis != null) point.stringField("basis", t.basis);
  if (t.sensors != null) point.stringField("sensors", t.sensors.join(","));
  if (t.contributions !== null) for (const f of FEATURES) point.floatField(`contribution_${f}`, t.contributions[f]);
  // Who acted (acknowledge, shelve, maintenance) or who wrote a note: apart, so that Grafana's
  // acknowledgedBy names no commenter; `author`, since `by` is an InfluxQL keyword.
  if (t.by !== undefined) point.stringField(NOTES.has(t.event) ? "author" : "acknowledgedBy", t.by);
  if (t.note !== undefined) point.stringField("note", t.note);
  // Named as the record's field: `to` is an InfluxQL keyword, which every query would have to quote.
  if (t.to !== undefined) point.stringField("assignedTo", t.to);
  if (t.result !== undefined) point.stringField("result", t.result);
  if (t.part !== undefined) point.stringField("part", t.part);
  // A finding's sensor, or on `sensor`/`sensor-cleared` the sensor of the fan's sensor issue (its
  // cause and value are not stored yet: HEALTH_SCHEMA and Telegraf would both need the fields).
  const sensor = t.sensor ?? t.sensorIssue?.sensor;
  if (sensor !== undefined) point.stringField("sensor", sensor);
  if (t.model !== undefined) point.stringField("model", t.model);
  point.timestamp(time.toString());
  return { ok: true, line: point.toLineProtocol() as string };
}
