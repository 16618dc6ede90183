import { z } from "zod";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import { spreadOf, type BaselinePolicy, type BaselineTrack } from "./baseline.js";

/**
 * Drift against the fan's own baseline (docs/health.md, "Drift"): a two-sided CUSUM per sensor on
 * the reading standardised by the baseline, z = (x − level) / spread, as statistical process
 * control runs it: S = max(0, S + z − k) upwards, and the same on −z downwards. A drift of more
 * than k spreads makes S grow; it warns at h. k and h were chosen on the health benchmark
 * (policy.ts has the numbers). Side 2i is sensor i drifting down, 2i + 1 up, as the fleet-range runs.
 *
 * While a side's S is above 0 the detector also keeps the sums of a straight line fitted to the
 * side's values since S last left 0 (its change point): the level and the rate the eta
 * extrapolates, with the rate's standard error for the interval.
 */
/** Sides of the sensors: side 2i is FEATURES[i] going down (below its range), 2i + 1 going up. */
export const SIDES = FEATURES.length * 2;

export interface DriftPolicy extends BaselinePolicy {
  /** Reference value k, in spreads. HEALTH_DRIFT_K */
  driftK: number;
  /** Decision interval h, in spreads. HEALTH_DRIFT_H */
  driftH: number;
  /**
   * A drift warns once its rate is known this well (standard error / rate): at the moment S
   * reaches h the level is known but the rate hardly (its error was 70–100% on the benchmark),
   * and an eta from it was off by a factor of 2 to 8. HEALTH_DRIFT_RATE_ERROR
   */
  driftRateError: number;
}

/**
 * Four numbers per side, in one array (one copy per reading rather than four: the detector runs
 * on every reading of every fan): S; the reading index of the change point (−1 while S is 0); and
 * the fit's sums since it, Σy and Σj·y (j counts readings from the change point), y being the
 * side's standardised value.
 */
export const DriftTrackSchema = z.array(z.number()).length(SIDES * 4);
export type DriftTrack = number[];
const S = 0;
const CP = 1;
const SY = 2;
const SJY = 3;

export function newDrift(): DriftTrack {
  const d: number[] = [];
  for (let side = 0; side < SIDES; side++) d.push(0, -1, 0, 0);
  return d;
}

/** Side `side`'s S. */
export function statistic(d: DriftTrack, side: number): number {
  return d[side * 4 + S] as number;
}

/**
 * A standardised value further than this from zero counts as this far in S: a noisy fan's single
 * spike (up to 26 spreads for a fan with a narrow spread) adds at most CLIP − k.
 */
const CLIP = 4;
/** And a value further than this from the fitted line counts as this far in the fit. */
const FIT_CLIP = 4;
/** Readings since the change point before the fitted line is trusted to clip values. */
const FIT_MIN = 10;

/** A fitted straight line: level now and rate per reading (in spreads), the rate's standard error, over n readings. */
export interface Fit {
  level: number;
  rate: number;
  rateError: number;
  n: number;
}

/** The straight line through a side's values since its change point, or undefined with fewer than 3. */
export function fitOf(d: DriftTrack, side: number, idx: number): Fit | undefined {
  const o = side * 4;
  const cp = d[o + CP] as number;
  if (cp < 0) return undefined;
  const n = idx - cp + 1;
  if (n < 3) return undefined;
  const sj = (n * (n - 1)) / 2;
  const sjj = ((n - 1) * n * (2 * n - 1)) / 6;
  const den = n * sjj - sj * sj;
  const sy = d[o + SY] as number;
  const rate = (n * (d[o + SJY] as number) - sj * sy) / den;
  const intercept = (sy - rate * sj) / n;
  return { level: intercept + rate * (n - 1), rate, rateError: Math.sqrt(n / den), n };
}

/**
 * Moves the detector on by reading `idx`. `skip` is a sensor not to be believed (an open sensor
 * issue), whose sides stay as they were. Returns a new track.
 */
export function detect(
  d: DriftTrack,
  b: BaselineTrack,
  reading: PerSensor,
  idx: number,
  policy: DriftPolicy,
  skip: FeatureName | undefined,
): DriftTrack {
  const next = d.slice();
  for (let i = 0; i < FEATURES.length; i++) {
    const f = FEATURES[i] as FeatureName;
    if (f === skip) {
      // A sensor not believed is evidence of nothing: its drift starts again once it is.
      reset(next, 2 * i);
      reset(next, 2 * i + 1);
      continue;
    }
    const z = (reading[f] - (b.mean[i] as number)) / spreadOf(b, i, policy);
    step(next, 2 * i, -z, idx, policy);
    step(next, 2 * i + 1, z, idx, policy);
  }
  return next;
}

function step(d: DriftTrack, side: number, y: number, idx: number, policy: DriftPolicy): void {
  const o = side * 4;
  const s = (d[o + S] as number) + Math.min(CLIP, Math.max(-CLIP, y)) - policy.driftK;
  if (s <= 0) {
    reset(d, side);
    return;
  }
  // At most 2h: a day of drift would otherwise leave S so high that a repaired fan (without a
  // finding) took days of readings to bring it back below h/2 and end its episode.
  d[o + S] = thousandths(Math.min(s, 2 * policy.driftH));
  if ((d[o + CP] as number) < 0) d[o + CP] = idx;
  const j = idx - (d[o + CP] as number);
  const fit = j >= FIT_MIN ? fitOf(d, side, idx - 1) : undefined;
  // Beyond the line, a spike counts as FIT_CLIP: the line follows the drift, not the spikes.
  const value =
    fit === undefined
      ? Math.min(CLIP, Math.max(-CLIP, y))
      : Math.min(fit.level + fit.rate + FIT_CLIP, Math.max(fit.level + fit.rate - FIT_CLIP, y));
  d[o + SY] = thousandths((d[o + SY] as number) + value);
  d[o + SJY] = thousandths((d[o + SJY] as number) + j * value);
}

function reset(d: DriftTrack, side: number): void {
  const o = side * 4;
  d[o + S] = 0;
  d[o + CP] = -1;
  d[o + SY] = 0;
  d[o + SJY] = 0;
}

/**
 * Thousandths of a spread are far below anything the detector or the fit can tell apart, and
 * the track is written with the fan on every prediction: 32 numbers of 17 digits each were 0.6 KB
 * of JSON per write, rounded they are a third of that.
 */
function thousandths(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Sides whose S has reached `threshold`, the largest first. */
export function driftingSides(d: DriftTrack, threshold: number): readonly number[] {
  let sides: number[] | undefined;
  for (let side = 0; side < SIDES; side++) if (statistic(d, side) >= threshold) (sides ??= []).push(side);
  // Asked on every reading of every fan, and almost always none: no array is made for that.
  return sides === undefined ? NO_SIDES : sides.sort((a, b) => statistic(d, b) - statistic(d, a));
}

/** No side: shared, since most readings of most fans have none. */
export const NO_SIDES: readonly number[] = Object.freeze([]);

/**
 * The sides a warning names, when one of them drifts with a rate known well enough to give an eta
 * (driftRateError); none otherwise.
 */
export function warningSides(d: DriftTrack, idx: number, policy: DriftPolicy): readonly number[] {
  const sides = driftingSides(d, policy.driftH);
  for (const side of sides) {
    const fit = fitOf(d, side, idx);
    if (fit !== undefined && fit.rate > 0 && fit.rateError <= policy.driftRateError * fit.rate) return sides;
  }
  return NO_SIDES;
}

/** Whether every S is below half of h: the fan is in control, and its readings may move the baseline. */
export function inControl(d: DriftTrack, policy: DriftPolicy): boolean {
  for (let side = 0; side < SIDES; side++) if (statistic(d, side) >= policy.driftH / 2) return false;
  return true;
}
