import { z } from "zod";
import { FEATURES } from "../../lib/features.js";
import { HEALTH_STATES } from "../../lib/health.js";
import { PerSensorSchema, type PerSensor } from "../../lib/prediction.js";

/** Sides of the sensors' healthy ranges: side 2i is below FEATURES[i]'s range, 2i+1 above it. */
export const SIDES = FEATURES.length * 2;

/**
 * What the evaluator remembers of a fan between readings, stored with its record (JSON). Counts
 * and reading indexes rather than the readings themselves, so that an entry stays small whatever
 * the windows are.
 */
export const TrackerSchema = z.object({
  v: z.literal(1),
  /** Fresh predictions evaluated: the index of the next one. */
  n: z.number().int().min(0),
  /** Reading time (ms) of the newest prediction evaluated; older ones are replays and skipped. */
  lastAt: z.number().nullable(),
  /** Fingerprints of the predictions evaluated at `lastAt`: a replay at that very time is skipped too. */
  lastKeys: z.array(z.string()).max(64),
  /** Health process clock (ms) when the newest fresh prediction arrived: silence is judged on it. */
  arrivedAt: z.number(),
  /** Smoothed time between two readings (ms), for the eta. */
  dt: z.number().min(0),
  /** The last alarmWindow fault flags, newest in bit 0. */
  flags: z.number().int().min(0),
  /** Healthy predictions in a row. */
  healthyRun: z.number().int().min(0),
  lastFaultAt: z.number().nullable(),
  lastExceedAt: z.number().nullable(),
  /** Contributions averaged over the faulty predictions of the episode (null when none carried any). */
  contributions: PerSensorSchema.nullable(),
  /** The sensor score named on the newest faulty prediction. */
  lastCause: z.enum(FEATURES).nullable(),
  /** Per side: reading indexes of its newest exceedances (at most warnCount). */
  exceed: z.array(z.array(z.number().int())).length(SIDES),
  /** Per side, the current run of exceedances (for the eta): when it began, how many, the last index. */
  runFirstAt: z.array(z.number().nullable()).length(SIDES),
  runCount: z.array(z.number().int().min(0)).length(SIDES),
  /** Per side, the sum of the run's exceedance times less its start (ms): their mean places the start of the wear. */
  runSumAt: z.array(z.number()).length(SIDES),
  runLastN: z.array(z.number().int()).length(SIDES),
  /** The state underneath `silent`: what the fan is in when it reports again. */
  state: z.enum(HEALTH_STATES).exclude(["silent"]),
  /** Reading time (ms) the underlying state was entered. */
  stateSince: z.number(),
  /** Transitions emitted so far: part of every transition id. */
  seq: z.number().int().min(0),
});
export type Tracker = z.infer<typeof TrackerSchema>;

export function newTracker(arrivedAt: number): Tracker {
  return {
    v: 1,
    n: 0,
    lastAt: null,
    lastKeys: [],
    arrivedAt,
    dt: 0,
    flags: 0,
    healthyRun: 0,
    lastFaultAt: null,
    lastExceedAt: null,
    contributions: null,
    lastCause: null,
    exceed: Array.from({ length: SIDES }, () => []),
    runFirstAt: Array.from({ length: SIDES }, () => null),
    runCount: Array.from({ length: SIDES }, () => 0),
    runSumAt: Array.from({ length: SIDES }, () => 0),
    runLastN: Array.from({ length: SIDES }, () => -1),
    state: "ok",
    stateSince: arrivedAt,
    seq: 0,
  };
}

/** A copy the evaluator may change: the caller's state stays as it was. */
export function copyTracker(t: Tracker): Tracker {
  return {
    ...t,
    lastKeys: t.lastKeys.slice(),
    contributions: t.contributions === null ? null : { ...t.contributions },
    exceed: t.exceed.map((e) => e.slice()),
    runFirstAt: t.runFirstAt.slice(),
    runCount: t.runCount.slice(),
    runSumAt: t.runSumAt.slice(),
    runLastN: t.runLastN.slice(),
  };
}

export function sensorOfSide(side: number): (typeof FEATURES)[number] {
  return FEATURES[side >> 1] as (typeof FEATURES)[number];
}

export type { PerSensor };
