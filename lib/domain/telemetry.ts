import { z } from "zod";
import { FEATURES, type FeatureName } from "./features.js";

/**
 * A fan's reading as the reference fans publish it:
 * `{"deviceID":"1","timeStamp":"2020-10-02 10:00:00","rotation":612.3,"temperature":40.1,"vibration":151.7,"sound":48.9}`.
 * deviceID may be a number (stored as a string); timeStamp is optional and may be
 * `YYYY-MM-DD HH:MM:SS`, ISO 8601 or epoch milliseconds, from 1970-01-01 to 2262-04-11 00:00:00 UTC.
 */
// Types and finiteness only: whether a value is physically possible is asked after the schema
// (findImplausible, lib/domain/plausibility.ts), so that an implausible reading is told apart as a
// sensor fault (FANWATCH_READING_IMPLAUSIBLE) from a malformed one, and a fan's own limits can apply.
const reading = () =>
  z.number({
    error: (issue) => (issue.input === undefined ? "missing" : `must be a finite number, not ${describe(issue.input)}`),
  });

const REFERENCE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})T/;
/** ISO 8601 with no Z or offset after the time. */
const NO_OFFSET = /T[^Z+-]*$/;

/**
 * The times a reading may carry. InfluxDB stores int64 nanoseconds since 1970, which ends at
 * 2262-04-11T23:47:16Z; 1970 is where epoch milliseconds start (and no fan predates it). A time
 * outside this range would make its whole batch fail at the store (a 400 for every point).
 */
export const TIMESTAMP_MIN_MS = 0;
export const TIMESTAMP_MAX_MS = Date.UTC(2262, 3, 11);
const TIMESTAMP_FORMS = "must be YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds";
const TIMESTAMP_RANGE = "must be between 1970-01-01 and 2262-04-11 00:00:00 (UTC), the times InfluxDB can store";

export const TelemetrySchema = z.object({
  deviceID: z.union(
    [
      z.string().trim().min(1, { error: "must not be empty" }).max(128, { error: "must be at most 128 characters" }),
      z.number().finite().transform(String),
    ],
    {
      error: (issue) => (issue.input === undefined ? "missing" : "must be a non-empty string or a number"),
    },
  ),
  timeStamp: z
    .union([z.string(), z.number()], { error: TIMESTAMP_FORMS })
    .optional()
    .superRefine((t, ctx) => {
      const time = t === undefined ? undefined : readTimestamp(t);
      if (typeof time === "string") ctx.addIssue({ code: "custom", message: time });
    }),
  // One per sensor, in FEATURES order: the order a reading's errors are reported in.
  ...(Object.fromEntries(FEATURES.map((f) => [f, reading()])) as Record<FeatureName, ReturnType<typeof reading>>),
});
export type Telemetry = z.infer<typeof TelemetrySchema>;

export function features(t: Telemetry): [number, number, number, number] {
  return FEATURES.map((name) => t[name]) as [number, number, number, number];
}

/** Epoch milliseconds of a timeStamp, or undefined when it is not an accepted form or in range. */
export function parseTimestamp(value: string | number): number | undefined {
  const time = readTimestamp(value);
  return typeof time === "number" ? time : undefined;
}

/**
 * Epoch milliseconds of a timeStamp, or why it is refused. A time without an offset is UTC, as
 * the reference format is (Date.parse would read ISO 8601 without one as the host's local time).
 * Impossible dates such as 2020-02-31 are refused: Date.parse would roll them over to March.
 */
export function readTimestamp(value: string | number): number | string {
  if (typeof value === "number") return Number.isFinite(value) ? inRange(value) : TIMESTAMP_FORMS;
  const text = REFERENCE_TIME.test(value) ? `${value.replace(" ", "T")}Z` : NO_OFFSET.test(value) ? `${value}Z` : value;
  const date = ISO_DATE.exec(text);
  const ms = date === null ? Number.NaN : Date.parse(text);
  if (date === null || Number.isNaN(ms)) return TIMESTAMP_FORMS;
  const [year, month, day] = date.slice(1).map(Number) as [number, number, number];
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return `${date[1]}-${date[2]} has no day ${day}`;
  return inRange(ms);
}

function inRange(ms: number): number | string {
  return ms >= TIMESTAMP_MIN_MS && ms <= TIMESTAMP_MAX_MS ? ms : TIMESTAMP_RANGE;
}

export type ReadingResult = { ok: true; telemetry: Telemetry } | { ok: false; error: string; field: string };

/** Validates one reading; the error names the field, e.g. `temperature: must be a finite number, not "hot"`. */
export function parseTelemetry(value: unknown): ReadingResult {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, error: `a reading must be a JSON object, not ${describe(value)}`, field: "reading" };
  }
  const parsed = TelemetrySchema.safeParse(value);
  if (parsed.success) return { ok: true, telemetry: parsed.data };
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join(".") || "reading";
  return { ok: false, error: `${field}: ${issue?.message ?? "invalid"}`, field };
}

function describe(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case "object":
      return value === null ? "null" : Array.isArray(value) ? "an array" : "an object";
    default:
      // A number, a boolean, undefined (or what JSON cannot hold: a bigint, a symbol, a function) as String() writes it.
      return String(value);
  }
}
