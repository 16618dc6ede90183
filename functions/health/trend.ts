import { FEATURES } from "../../lib/domain/features.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import type { HealthPolicy } from "./policy.js";
import { alarmHazard } from "./eta.js";
import { RUN_EXCEEDANCES, type Run, type Tracker } from "./tracker.js";

/**
 * The early warning. A healthy fan's readings stay within each sensor's healthy range; a wearing
 * sensor crosses its limit now and then, and more and more often as it wears (the simulator's
 * wear moves each range linearly, so the share of readings beyond the limit grows linearly with
 * time). The warning counts each sensor's exceedances per side; the eta extrapolates that share.
 */

/** A run of exceedances ends after this many warning windows without one (the eta restarts). */
const RUN_GAP_WINDOWS = 10;

/**
 * Records the reading's exceedances (reading index `idx`, time `at`). Returns how many there were.
 * The runs it changes are replaced, not changed: the caller's tracker may be shared.
 */
export function recordExceedances(
  t: Tracker,
  reading: PerSensor,
  idx: number,
  at: number,
  policy: HealthPolicy,
): number {
  let count = 0;
  for (let i = 0; i < FEATURES.length; i++) {
    const f = FEATURES[i] as (typeof FEATURES)[number];
    const value = reading[f];
    const range = policy.healthyRanges[f];
    const side = value < range.min ? 2 * i : value > range.max ? 2 * i + 1 : -1;
    if (side < 0) continue;
    if (count++ === 0) t.runs = t.runs.slice();
    const rel = at - t.base;
    let k = 0;
    while (k < t.runs.length && (t.runs[k] as Run)[0] < side) k++;
    const old = t.runs[k];
    if (old === undefined || old[0] !== side) {
      t.runs.splice(k, 0, [side, rel, 1, 0, idx]);
      continue;
    }
    const restart = idx - lastExceedance(old) > RUN_GAP_WINDOWS * policy.warnWindow;
    const first = restart ? rel : old[1];
    const kept = Math.max(RUN_EXCEEDANCES, old.length - policy.warnCount + 1);
    const run: Run = [side, first, restart ? 1 : old[2] + 1, (restart ? 0 : old[3]) + (rel - first)];
    for (let j = kept; j < old.length; j++) run.push(old[j] as number);
    run.push(idx);
    t.runs[k] = run;
  }
  if (count > 0) t.lastExceedAt = at - t.base;
  return count;
}

/** The reading index of the run's newest exceedance. */
function lastExceedance(run: Run): number {
  return run[run.length - 1] as number;
}

/** The side whose exceedances call for a warning at reading `idx`, or -1. The one with the longest run wins (the lower side on a tie). */
export function warningSide(t: Tracker, idx: number, policy: HealthPolicy): number {
  let best: Run | undefined;
  for (const run of t.runs) {
    const exceedances = run.length - RUN_EXCEEDANCES;
    if (exceedances < policy.warnCount) continue;
    if (idx - (run[run.length - policy.warnCount] as number) >= policy.warnWindow) continue;
    if (best === undefined || run[2] > best[2]) best = run;
  }
  return best === undefined ? -1 : best[0];
}

/** Sensors with an exceedance within the last `within` readings (up to reading `idx`). */
export function sensorsOutOfRange(t: Tracker, idx: number, within: number): number {
  let sensors = 0;
  for (const run of t.runs) if (idx - lastExceedance(run) < within) sensors |= 1 << (run[0] >> 1);
  let n = 0;
  for (; sensors !== 0; sensors &= sensors - 1) n++;
  return n;
}

/** The side with the longest run (the lower side on a tie), or -1 when no side has been beyond its range. */
export function longestRunSide(t: Tracker): number {
  let best: Run | undefined;
  for (const run of t.runs) if (best === undefined || run[2] > best[2]) best = run;
  return best === undefined ? -1 : best[0];
}

const YEAR_MS = 365 * 86_400_000;
/** Steps of the integration from now to the moment the trend says every reading is flagged. */
const ETA_STEPS = 400;

/**
 * When the alarm rule is expected to fire (the median time: even odds before or after), if each
 * side's share of readings beyond its limit keeps growing linearly from the start of the wear.
 *
 * The trend: with a share growing linearly from t0, exceedances come at a density growing like
 * (t − t0), whose mean lies two thirds of the way from t0 to now; so the run's mean exceedance time
 * m places the start at t0 = now − 3·(now − m), and c exceedances since then, one reading every dt,
 * give a share growing at a = 2·c·dt / (now − t0)² per ms. (The first exceedance comes well after
 * the wear began: taking it as the start made etas 2.5 times too early in the bench.)
 *
 * The alarm: with a share p of readings flagged, a reading raises it when it is flagged and
 * alarmCount − 1 of the alarmWindow − 1 before it were: a hazard h(p) per reading. The alarm comes
 * long before p reaches alarmCount/alarmWindow, by chance, on one of the many readings at a lower
 * p (aiming at p = 0.5 made bearing fans' etas up to 5 times too late). The eta is where the
 * cumulative hazard reaches ln 2. Null when no run has grown yet, or beyond a year.
 */
export function estimateEta(t: Tracker, at: number, policy: HealthPolicy): number | null {
  const slopes: number[] = [];
  const starts: number[] = [];
  let full = Infinity;
  for (const run of t.runs) {
    const first = t.base + run[1];
    const count = run[2];
    if (count < 2 || at <= first || t.dt <= 0) continue;
    if (lastExceedance(run) < t.n - 1 - RUN_GAP_WINDOWS * policy.warnWindow) continue;
    const mean = first + run[3] / count;
    const span = Math.max(3 * (at - mean), at - first);
    // The warning fires on a cluster of warnCount exceedances: all but one of them are there because
    // the warning looked for them, so they do not count for the slope (with them etas came at 0.36
    // of the actual time to the alarm in the bench, without them at 0.59).
    const slope = (2 * Math.max(1, count - (policy.warnCount - 1)) * t.dt) / (span * span);
    slopes.push(slope);
    starts.push(at - span);
    full = Math.min(full, at - span + 1 / slope);
  }
  if (slopes.length === 0 || full - at > YEAR_MS) return null;
  const share = (time: number) => {
    let healthy = 1;
    for (let i = 0; i < slopes.length; i++)
      healthy *= 1 - Math.min(1, (slopes[i] as number) * (time - (starts[i] as number)));
    return 1 - healthy;
  };
  const target = Math.LN2;
  const step = Math.max(1, (full - at) / ETA_STEPS);
  let hazard = 0;
  for (let time = at; time < full; time += step) {
    const add = alarmHazard(share(time + step / 2), policy) * (step / t.dt);
    if (hazard + add >= target) return Math.round(time + (step * (target - hazard)) / add);
    hazard += add;
  }
  return Math.round(full);
}
