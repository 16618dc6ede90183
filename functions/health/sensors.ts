import { z } from "zod";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import type { SensorCause } from "../../lib/domain/health.js";
import type { PerSensor } from "../../lib/domain/prediction.js";

/**
 * The sensor rules (docs/health.md, "Sensor issues"): pure functions of what a fan's sensors said
 * lately. A sensor issue opens when one sensor reads outside its physical limits `implausibleCount`
 * times within `implausibleWindowMs` (reading time; predict told health with a SensorNotice), or
 * when it reports the very same value `stuckReadings` readings in a row; it clears after
 * `clearReadings` plausible readings in a row in which no sensor is stuck.
 */
export interface SensorPolicy {
  /** HEALTH_SENSOR_IMPLAUSIBLE_COUNT */
  implausibleCount: number;
  /** HEALTH_SENSOR_WINDOW */
  implausibleWindowMs: number;
  /** HEALTH_STUCK_READINGS */
  stuckReadings: number;
  /** HEALTH_SENSOR_CLEAR_READINGS */
  clearReadings: number;
}

/**
 * What the sensor rules remember of a fan, with its tracker: small, and absent until the fan's
 * first reading with values (so entries written before it existed stay valid).
 * - `last`: each sensor's latest value, FEATURES order (null before the first reading);
 * - `same`: how many readings in a row each sensor has given that value;
 * - `implausible`: [sensor index, reading time in epoch ms] of the latest implausible readings
 *   within the window (at most implausibleCount per sensor are needed);
 * - `okRun`: plausible readings in a row with no sensor stuck, for the clearing.
 */
export const SensorTrackSchema = z.object({
  last: z.array(z.number()).length(FEATURES.length).nullable(),
  same: z.array(z.number().int().min(0)).length(FEATURES.length),
  implausible: z
    .array(
      z.tuple([
        z
          .number()
          .int()
          .min(0)
          .max(FEATURES.length - 1),
        z.number(),
      ]),
    )
    .max(64),
  okRun: z.number().int().min(0),
});
export type SensorTrack = z.infer<typeof SensorTrackSchema>;

export function newSensorTrack(): SensorTrack {
  return { last: null, same: FEATURES.map(() => 0), implausible: [], okRun: 0 };
}

/** What a sensor rule found: the sensor, why, and the value it gave. */
export interface SensorFinding {
  sensor: FeatureName;
  cause: SensorCause;
  value: number;
}

/**
 * A reading a sensor cannot physically give (reading time `at`, epoch ms): resets the clearing and,
 * on the implausibleCount-th of one sensor within the window, finds an `implausible` issue.
 * Returns the new track (the given one is left as it was).
 */
export function noteImplausible(
  track: SensorTrack,
  sensor: FeatureName,
  value: number,
  at: number,
  policy: SensorPolicy,
): { track: SensorTrack; finding: SensorFinding | undefined } {
  const index = FEATURES.indexOf(sensor);
  const recent = [...track.implausible.filter(([, t]) => t > at - policy.implausibleWindowMs), [index, at] as const];
  const kept = recent.slice(-Math.min(64, policy.implausibleCount * FEATURES.length)) as Array<[number, number]>;
  const count = kept.filter(([i]) => i === index).length;
  return {
    track: { ...track, implausible: kept, okRun: 0 },
    finding: count >= policy.implausibleCount ? { sensor, cause: "implausible", value } : undefined,
  };
}

/**
 * A plausible reading (one predict scored): counts each sensor's run of identical values, and
 * finds the first sensor (FEATURES order) whose run reached stuckReadings. A value of exactly 0
 * never counts as stuck: a stopped fan reads 0 rpm and no vibration for as long as it stands,
 * which is the fan's state, not its sensors' (a broken loop reads below its range: implausible).
 */
export function noteReading(
  track: SensorTrack,
  reading: PerSensor,
  policy: SensorPolicy,
): { track: SensorTrack; finding: SensorFinding | undefined } {
  const values = FEATURES.map((f) => reading[f]);
  const same = values.map((v, i) =>
    track.last !== null && track.last[i] === v && v !== 0 ? (track.same[i] ?? 0) + 1 : 1,
  );
  const stuck = same.findIndex((n) => n >= policy.stuckReadings);
  const next: SensorTrack = { ...track, last: values, same, okRun: stuck < 0 ? track.okRun + 1 : 0 };
  if (stuck < 0) return { track: next, finding: undefined };
  const sensor = FEATURES[stuck] as FeatureName;
  return { track: next, finding: { sensor, cause: "stuck", value: reading[sensor] } };
}

/** Whether an open issue has seen enough plausible, moving readings in a row to clear. */
export function sensorsBelievable(track: SensorTrack, policy: SensorPolicy): boolean {
  return track.okRun >= policy.clearReadings;
}
