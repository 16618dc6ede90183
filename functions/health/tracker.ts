import { z } from "zod";
import { FEATURES } from "../../lib/domain/features.js";
import { HEALTH_STATES } from "../../lib/domain/health.js";
import { PerSensorSchema, type PerSensor, type Prediction } from "../../lib/domain/prediction.js";
import type { SensorNotice } from "../../lib/domain/sensor-notice.js";
import { SensorTrackSchema } from "./sensors.js";
import { BaselineTrackSchema } from "./baseline.js";
import { DriftTrackSchema, SIDES } from "./drift.js";

export { SIDES };

/**
 * One side's run of exceedances (for the warning and the eta), as a tuple to keep the entry small:
 * [side, when the run began, how many in it, the sum of their times less its start (ms), then the
 * reading indexes of the side's newest exceedances (at most warnCount, oldest first)]. The run's
 * mean exceedance time places the start of the wear; the indexes say whether they come close
 * enough together to warn. The newest index is where the run got to.
 */
export type Run = [side: number, firstAt: number, count: number, sumAt: number, ...exceedances: number[]];
export const RUN_EXCEEDANCES = 4;

/** Episode ids a fan remembers (tracker.episodes): enough for the findings of a busy month, bounded in every write. */
export const RECENT_EPISODES = 20;

const RunSchema = z
  .tuple([
    z
      .number()
      .int()
      .min(0)
      .max(SIDES - 1),
    z.number(),
    z.number().int().min(1),
    z.number(),
  ])
  .rest(z.number().int().min(0))
  .refine((run) => run.length > RUN_EXCEEDANCES, "a run has at least one exceedance");

/**
 * What the evaluator remembers of a fan between readings, stored with its record (JSON) and
 * serialised on every write of the fan: counts and reading indexes rather than the readings, only
 * the sides that have been beyond their range, and times as milliseconds after `base` (small
 * integers, which JSON.stringify writes about ten times faster than 13-digit epoch times: each
 * such number cost ~0.12 µs per write). Its arrays and objects are never changed once made: the
 * evaluator replaces what it changes, so a copy is one object spread (copying the arrays on every
 * evaluation was 3% of health's CPU).
 */
export const TrackerSchema = z.object({
  v: z.literal(2),
  /** Epoch ms that the tracker's other times count from (moved forward as they grow: rebase()). */
  base: z.number().int(),
  /** Fresh predictions evaluated: the index of the next one. */
  n: z.number().int().min(0),
  /** Reading time of the newest prediction evaluated; older ones are replays and skipped. */
  lastAt: z.number().nullable(),
  /** Keys (two numbers each: predictionKey()) of the predictions evaluated at `lastAt`: a replay at that very time is skipped too. */
  lastKeys: z.array(z.number().int()).max(128),
  /** Health process clock when the newest fresh prediction arrived: silence is judged on it. */
  arrivedAt: z.number(),
  /** Smoothed time between two readings (whole ms), for the eta. */
  dt: z.number().min(0),
  /** The last alarmWindow fault flags, newest in bit 0. */
  flags: z.number().int().min(0),
  /** Healthy predictions in a row. */
  healthyRun: z.number().int().min(0),
  lastFaultAt: z.number().nullable(),
  lastExceedAt: z.number().nullable(),
  /** Contributions averaged over the faulty predictions of the episode, to six decimals as score gives them (null when none carried any). */
  contributions: PerSensorSchema.nullable(),
  /** The sensor score named on the newest faulty prediction. */
  lastCause: z.enum(FEATURES).nullable(),
  /** The runs of the sides that have been beyond their range, by side. */
  runs: z.array(RunSchema).max(SIDES),
  /** The state underneath `silent`: what the fan is in when it reports again. */
  state: z.enum(HEALTH_STATES).exclude(["silent"]),
  /** Reading time the underlying state was entered. */
  stateSince: z.number(),
  /** Transitions emitted so far: part of every transition id. */
  seq: z.number().int().min(0),
  /**
   * The ids of the fan's last RECENT_EPISODES episodes, oldest first, the open one last: what a
   * comment, an assignment or a finding may name (a finding usually comes after the clear).
   * Entries written before it existed have none.
   */
  episodes: z.array(z.string()).max(RECENT_EPISODES).default([]),
  /** What the sensor rules remember (sensors.ts); absent until the first reading, and in entries written before it existed. */
  sensors: SensorTrackSchema.optional(),
  /** The fan's own baseline (baseline.ts); absent in entries written before it existed (learning starts then). */
  baseline: BaselineTrackSchema.optional(),
  /** The drift detector (drift.ts), present once the baseline is ready. */
  drift: DriftTrackSchema.optional(),
});
export type Tracker = z.infer<typeof TrackerSchema>;

export function newTracker(base: number, arrivedAt: number, stateSince: number): Tracker {
  const b = Math.floor(base);
  return {
    v: 2,
    base: b,
    n: 0,
    lastAt: null,
    lastKeys: [],
    arrivedAt: arrivedAt - b,
    dt: 0,
    flags: 0,
    healthyRun: 0,
    lastFaultAt: null,
    lastExceedAt: null,
    contributions: null,
    lastCause: null,
    runs: [],
    state: "ok",
    stateSince: stateSince - b,
    seq: 0,
    episodes: [],
  };
}

/** A copy the evaluator may change: its arrays and objects are replaced, never changed, so the caller's state stays as it was. */
export function copyTracker(t: Tracker): Tracker {
  return { ...t };
}

/** Times more than this after `base` move it forward: they stay small integers (V8 keeps integers below 2^30 unboxed) for 6 days after it. */
const REBASE_AFTER_MS = 2 ** 29;

/** Moves `base` up to `at` once the times outgrow it: the same times, counted from later. */
export function rebase(t: Tracker, at: number): void {
  if (at - t.base < REBASE_AFTER_MS) return;
  const shift = Math.floor(at) - t.base;
  const back = (time: number | null) => (time === null ? null : time - shift);
  t.base += shift;
  t.lastAt = back(t.lastAt);
  t.arrivedAt -= shift;
  t.lastFaultAt = back(t.lastFaultAt);
  t.lastExceedAt = back(t.lastExceedAt);
  t.stateSince -= shift;
  t.runs = t.runs.map((run) => {
    const moved = run.slice() as Run;
    moved[1] -= shift;
    return moved;
  });
}

export function sensorOfSide(side: number): (typeof FEATURES)[number] {
  return FEATURES[side >> 1] as (typeof FEATURES)[number];
}

const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
let ha = 0;
let hb = 0;

/** Mixes a number's 64 bits into both halves of the key. */
function add(x: number): void {
  bits[0] = x;
  const lo = words[0] as number;
  const hi = words[1] as number;
  ha = Math.imul(ha ^ lo, 0x9e3779b1);
  ha = Math.imul(ha ^ (ha >>> 15) ^ hi, 0x9e3779b1);
  ha ^= ha >>> 15;
  hb = Math.imul(hb ^ lo, 0x85ebca77);
  hb = Math.imul(hb ^ (hb >>> 13) ^ hi, 0x85ebca77);
  hb ^= hb >>> 13;
}

/**
 * What tells two predictions of a fan at the same reading time apart: 60 bits of a hash of the
 * fault, the probability and the reading (without a reading, the timeStamp), as two integers
 * below 2^30. A key string of the six numbers cost 2-3% of health's CPU to build and made the
 * entry's longest numbers; a collision (two different predictions of one fan at one time, 2^-60)
 * would skip one prediction.
 */
export function predictionKey(p: Prediction): [number, number] {
  ha = 0x2545f491;
  hb = 0x6c8e9cf5;
  const r = p.reading;
  add(p.fault + (r === undefined ? 0 : 2));
  add(p.probability);
  if (r !== undefined) {
    for (const f of FEATURES) add(r[f]);
  } else if (typeof p.timeStamp === "number") add(p.timeStamp);
  else if (p.timeStamp !== undefined) {
    add(-1); // a string: its characters
    for (let i = 0; i < p.timeStamp.length; i++) add(p.timeStamp.charCodeAt(i));
  }
  const a = Math.imul(ha ^ (ha >>> 16), 0x85ebca6b);
  const b = Math.imul(hb ^ (hb >>> 16), 0xc2b2ae35);
  return [(a ^ (a >>> 13)) >>> 2, (b ^ (b >>> 16)) >>> 2];
}

/**
 * The key of a sensor notice at a reading time (as predictionKey's for a prediction): the same
 * notice delivered again is skipped. A code no prediction's key starts with (4 + the sensor's index).
 */
export function noticeKey(n: SensorNotice): [number, number] {
  ha = 0x2545f491;
  hb = 0x6c8e9cf5;
  add(4 + FEATURES.indexOf(n.implausible.sensor));
  add(n.implausible.value);
  const a = Math.imul(ha ^ (ha >>> 16), 0x85ebca6b);
  const b = Math.imul(hb ^ (hb >>> 16), 0xc2b2ae35);
  return [(a ^ (a >>> 13)) >>> 2, (b ^ (b >>> 16)) >>> 2];
}

export type { PerSensor };
