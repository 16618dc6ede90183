import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import { isBandNoise, spreadOf, type BaselineTrack } from "./baseline.js";
import { fitOf, type DriftPolicy, type DriftTrack } from "./drift.js";

/**
 * When a drifting fan is expected to raise its alarm, and an interval around it (docs/health.md,
 * "Eta and its interval"). The alarm rule fires on alarmCount faulty predictions of the last alarmWindow; the model
 * flags a reading once a sensor is beyond its healthy range. Each drifting side's fitted line
 * (drift.ts) extrapolates the sensor's level; with the fan's own noise around it (a band or a
 * bell, baseline.ts), that gives the share p of readings beyond the limit at each later reading,
 * and alarmHazard(p) the chance that the reading raises the alarm. The alarm time's distribution
 * follows from the cumulative hazard H: the chance it has come by t is 1 − e^(−H(t)). The eta is
 * its median; the interval adds the uncertainty of the fitted rate to the hazard's own (on the
 * benchmark's calibration seeds that covered 82% for a stated 80%: docs/benchmarks.md).
 */
export interface EtaPolicy extends DriftPolicy {
  alarmWindow: number;
  alarmCount: number;
  /** The interval's stated coverage. HEALTH_ETA_COVERAGE */
  etaCoverage: number;
}

export interface Eta {
  /** Epoch ms. */
  at: number;
  from: number;
  to: number;
  /** The chance that the alarm comes between `from` and `to`. */
  coverage: number;
}

const YEAR_MS = 365 * 86_400_000;
/** Readings looked ahead at most, in steps of a growing size. */
const MAX_STEPS = 600;

/** The eta and its interval from the drifting sides (`sides`), at reading `idx` (time `at`), one reading every `dt` ms. */
export function driftEta(
  b: BaselineTrack,
  d: DriftTrack,
  sides: readonly number[],
  idx: number,
  at: number,
  dt: number,
  policy: EtaPolicy,
): Eta | null {
  if (dt <= 0) return null;
  const paths: Path[] = [];
  // The rate that matters is that of the side first to reach its limit: its alarm comes first.
  let relativeError = 0;
  let soonest = Infinity;
  for (const side of sides) {
    const fit = fitOf(d, side, idx);
    if (fit === undefined || fit.rate <= 0) continue;
    const i = side >> 1;
    const f = FEATURES[i] as FeatureName;
    const range = policy.healthyRanges[f];
    const spread = spreadOf(b, i, policy);
    const mean = b.mean[i] as number;
    // The limit in the side's own terms: spreads from the baseline level, in the drift's direction.
    const limit = side % 2 === 1 ? (range.max - mean) / spread : (mean - range.min) / spread;
    paths.push({ level: fit.level, rate: fit.rate, limit, band: isBandNoise(b, i) });
    const reaches = (limit - fit.level) / fit.rate;
    if (reaches < soonest) {
      soonest = reaches;
      relativeError = fit.rateError / fit.rate;
    }
  }
  if (paths.length === 0) return null;
  const median = readingsUntil(paths, Math.LN2, policy);
  if (median === null || median * dt > YEAR_MS) return null;
  const tail = (1 - policy.etaCoverage) / 2;
  const early = readingsUntil(paths, -Math.log(1 - tail), policy) ?? median;
  const late = readingsUntil(paths, -Math.log(tail), policy) ?? median * 4;
  // Normal quantile of the interval's upper end: 1.28 for 80%.
  const zq = normalQuantile(1 - tail);
  const hazardSpread = Math.log(Math.max(1, late) / Math.max(1, early)) / (2 * zq);
  const spread = Math.sqrt(hazardSpread ** 2 + relativeError ** 2);
  const m = Math.max(1, median);
  // A rate barely known makes the interval's end years away: it ends a year ahead then.
  const ahead = (factor: number) => Math.round(at + Math.min(YEAR_MS, m * factor * dt));
  return {
    at: ahead(1),
    from: ahead(Math.exp(-zq * spread)),
    to: ahead(Math.exp(zq * spread)),
    coverage: policy.etaCoverage,
  };
}

/**
 * The interval around an eta from the fleet's ranges (trend.ts: a fan without a baseline): the
 * spread of actual / eta measured on the benchmark's calibration seeds, its 10th and 90th
 * percentiles (docs/benchmarks.md).
 */
const FLEET_ETA_FACTORS = [0.56, 2.44] as const;
/** Their coverage: from the 10th to the 90th percentile, whatever HEALTH_ETA_COVERAGE says. */
const FLEET_ETA_COVERAGE = 0.8;

export function fleetEtaInterval(at: number, eta: number): Eta {
  const ahead = Math.max(0, eta - at);
  return {
    at: eta,
    from: Math.round(at + ahead * FLEET_ETA_FACTORS[0]),
    to: Math.round(at + ahead * FLEET_ETA_FACTORS[1]),
    coverage: FLEET_ETA_COVERAGE,
  };
}

/** A sensor's expected path in its own spreads: where it is, how fast it moves, where its limit is, and its noise's shape. */
interface Path {
  level: number;
  rate: number;
  limit: number;
  band: boolean;
}

/** Readings ahead until the cumulative hazard reaches `target`, or null when it does not within MAX_STEPS steps reaching a year's worth. */
function readingsUntil(paths: readonly Path[], target: number, policy: EtaPolicy): number | null {
  // Far enough that every path is well beyond its limit (3 spreads), in MAX_STEPS steps.
  let horizon = 1;
  for (const p of paths) horizon = Math.max(horizon, (p.limit + 3 - p.level) / p.rate);
  const step = Math.max(1, horizon / MAX_STEPS);
  let hazard = 0;
  for (let ahead = 0; ahead < horizon + step; ahead += step) {
    const add = alarmHazard(beyondShare(paths, ahead + step / 2), policy) * step;
    if (hazard + add >= target) return ahead + (step * (target - hazard)) / add;
    hazard += add;
  }
  return null;
}

/** The share of readings `ahead` readings from now with at least one drifting sensor beyond its limit. */
function beyondShare(paths: readonly Path[], ahead: number): number {
  let within = 1;
  for (const p of paths) within *= 1 - beyond(p.level + p.rate * ahead - p.limit, p.band);
  return 1 - within;
}

/** The chance that a reading whose level is `gap` spreads from its limit lies beyond it. */
function beyond(gap: number, band: boolean): number {
  if (band) {
    // Spread evenly over ±√3 spreads.
    const half = Math.sqrt(3);
    return Math.min(1, Math.max(0, (gap + half) / (2 * half)));
  }
  return normalCdf(gap);
}

/** The chance that one reading raises the alarm when a share p of readings is flagged. */
export function alarmHazard(p: number, policy: { alarmWindow: number; alarmCount: number }): number {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  const n = policy.alarmWindow - 1;
  let tail = 0;
  let choose = 1; // C(n, i)
  for (let i = 0; i <= n; i++) {
    if (i >= policy.alarmCount - 1) tail += choose * p ** i * (1 - p) ** (n - i);
    choose = (choose * (n - i)) / (i + 1);
  }
  return p * tail;
}

/** Φ(x), by Abramowitz and Stegun 7.1.26 (error below 1.5e-7). */
export function normalCdf(x: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(x) / Math.SQRT2));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-(x * x) / 2);
  return x >= 0 ? 0.5 + y / 2 : 0.5 - y / 2;
}

/** The normal quantile for p in (0.5, 1), by bisection on normalCdf (rarely called: once per eta). */
function normalQuantile(p: number): number {
  let lo = 0;
  let hi = 8;
  for (let k = 0; k < 40; k++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
