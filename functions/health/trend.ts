import { FEATURES } from "../../lib/features.js";
import type { PerSensor } from "../../lib/prediction.js";
import type { HealthPolicy } from "./policy.js";
import { SIDES, type Tracker } from "./tracker.js";

/**
 * The early warning. A healthy fan's readings stay within each sensor's healthy range; a wearing
 * sensor crosses its limit now and then, and more and more often as it wears (the simulator's
 * wear moves each range linearly, so the share of readings beyond the limit grows linearly with
 * time). The warning counts each sensor's exceedances per side; the eta extrapolates that share.
 */

/** A run of exceedances ends after this many warning windows without one (the eta restarts). */
const RUN_GAP_WINDOWS = 10;

/** Records the reading's exceedances (reading index `idx`, time `at`). Returns how many there were. */
export function recordExceedances(t: Tracker, reading: PerSensor, idx: number, at: number, policy: HealthPolicy): number {
  let count = 0;
  for (let i = 0; i < FEATURES.length; i++) {
    const f = FEATURES[i] as (typeof FEATURES)[number];
    const value = reading[f];
    const range = policy.healthyRanges[f];
    const side = value < range.min ? 2 * i : value > range.max ? 2 * i + 1 : -1;
    if (side < 0) continue;
    count++;
    const list = t.exceed[side] as number[];
    list.push(idx);
    while (list.length > policy.warnCount) list.shift();
    if (t.runFirstAt[side] === null || idx - (t.runLastN[side] as number) > RUN_GAP_WINDOWS * policy.warnWindow) {
      t.runFirstAt[side] = at;
      t.runCount[side] = 0;
      t.runSumAt[side] = 0;
    }
    t.runCount[side] = (t.runCount[side] as number) + 1;
    t.runSumAt[side] = (t.runSumAt[side] as number) + (at - (t.runFirstAt[side] as number));
    t.runLastN[side] = idx;
  }
  if (count > 0) t.lastExceedAt = at;
  return count;
}

/** The side whose exceedances call for a warning at reading `idx`, or -1. The one with the longest run wins. */
export function warningSide(t: Tracker, idx: number, policy: HealthPolicy): number {
  let best = -1;
  for (let side = 0; side < SIDES; side++) {
    const list = t.exceed[side] as number[];
    if (list.length < policy.warnCount) continue;
    if (idx - (list[list.length - policy.warnCount] as number) >= policy.warnWindow) continue;
    if (best < 0 || (t.runCount[side] as number) > (t.runCount[best] as number)) best = side;
  }
  return best;
}

/** Sensors with an exceedance within the last `within` readings (up to reading `idx`). */
export function sensorsOutOfRange(t: Tracker, idx: number, within: number): number {
  let sensors = 0;
  for (let i = 0; i < FEATURES.length; i++) {
    const low = t.exceed[2 * i] as number[];
    const high = t.exceed[2 * i + 1] as number[];
    const newest = Math.max(low.at(-1) ?? -Infinity, high.at(-1) ?? -Infinity);
    if (idx - newest < within) sensors++;
  }
  return sensors;
}

const YEAR_MS = 365 * 86_400_000;

/**
 * When the fan is expected to be flagged on `policy.etaFaultRate` of its readings, if each side's
 * share of readings beyond its limit keeps growing linearly from the start of the wear. With a
 * share growing linearly from t0, exceedances come at a density growing like (t − t0), whose mean
 * lies two thirds of the way from t0 to now: so the run's mean exceedance time m places the start
 * at t0 = now − 3·(now − m), and c exceedances since then, one reading every dt, give a share
 * growing at a = 2·c·dt / (now − t0)² per ms. (The first exceedance comes well after the wear
 * began: taking it as the start made etas 2.5 times too early in the bench.) Null when no run has
 * grown yet.
 */
export function estimateEta(t: Tracker, at: number, policy: HealthPolicy): number | null {
  const slopes: number[] = [];
  const starts: number[] = [];
  for (let side = 0; side < SIDES; side++) {
    const first = t.runFirstAt[side];
    const count = t.runCount[side] as number;
    if (first === null || first === undefined || count < 2 || at <= first || t.dt <= 0) continue;
    if ((t.runLastN[side] as number) < t.n - 1 - RUN_GAP_WINDOWS * policy.warnWindow) continue;
    const mean = first + (t.runSumAt[side] as number) / count;
    const span = Math.max(3 * (at - mean), at - first);
    slopes.push((2 * count * t.dt) / (span * span));
    starts.push(at - span);
  }
  if (slopes.length === 0) return null;
  const rate = (time: number) => {
    let healthy = 1;
    for (let i = 0; i < slopes.length; i++) healthy *= 1 - Math.min(1, (slopes[i] as number) * (time - (starts[i] as number)));
    return 1 - healthy;
  };
  const target = policy.etaFaultRate;
  if (rate(at) >= target) return at;
  let low = at;
  let high = at + Math.max(t.dt, 1);
  while (rate(high) < target) {
    low = high;
    high = at + (high - at) * 2;
    if (high - at > YEAR_MS) return null;
  }
  for (let i = 0; i < 40 && high - low > 1000; i++) {
    const mid = (low + high) / 2;
    if (rate(mid) >= target) high = mid;
    else low = mid;
  }
  return Math.round(high);
}
