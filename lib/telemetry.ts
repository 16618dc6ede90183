import { z } from "zod";
import { FEATURE_BOUNDS, FEATURES, type FeatureName } from "./features.js";

/**
 * A fan's reading as the reference fans publish it:
 * `{"deviceID":"1","timeStamp":"2020-10-02 10:00:00","rotation":612.3,"temperature":40.1,"vibration":151.7,"sound":48.9}`.
 * deviceID may be a number (stored as a string); timeStamp is optional and may be
 * `YYYY-MM-DD HH:MM:SS`, ISO 8601 or epoch milliseconds.
 */
const unit = (name: FeatureName) => (FEATURE_BOUNDS[name].unit === "" ? "" : ` ${FEATURE_BOUNDS[name].unit}`);
const reading = (name: FeatureName) =>
  z
    .number({ error: (issue) => (issue.input === undefined ? "missing" : `must be a finite number, not ${describe(issue.input)}`) })
    .min(FEATURE_BOUNDS[name].min, { error: `below ${FEATURE_BOUNDS[name].min}${unit(name)}, outside sane physical bounds` })
    .max(FEATURE_BOUNDS[name].max, { error: `above ${FEATURE_BOUNDS[name].max}${unit(name)}, outside sane physical bounds` });

const REFERENCE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

export const TelemetrySchema = z.object({
  deviceID: z
    .union([z.string().trim().min(1, { error: "must not be empty" }).max(128, { error: "must be at most 128 characters" }), z.number().finite().transform(String)], {
      error: (issue) => (issue.input === undefined ? "missing" : "must be a non-empty string or a number"),
    }),
  timeStamp: z
    .union([z.string(), z.number()])
    .optional()
    .refine((t) => t === undefined || parseTimestamp(t) !== undefined, { error: "must be YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds" }),
  rotation: reading("rotation"),
  temperature: reading("temperature"),
  vibration: reading("vibration"),
  sound: reading("sound"),
});
export type Telemetry = z.infer<typeof TelemetrySchema>;

export function features(t: Telemetry): [number, number, number, number] {
  return FEATURES.map((name) => t[name]) as [number, number, number, number];
}

/** Epoch milliseconds of a timeStamp, or undefined when it is not one of the accepted forms. */
export function parseTimestamp(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  const text = REFERENCE_TIME.test(value) ? `${value.replace(" ", "T")}Z` : value;
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
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
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeof value === "object" ? "an object" : String(value);
}
