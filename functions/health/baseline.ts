import { z } from "zod";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import { BASELINE_REASONS, type BaselineReason, type PublishedBaseline } from "../../lib/domain/baseline.js";
import type { PerSensor } from "../../lib/domain/prediction.js";
import { isoTime as iso } from "./iso-time.js";
import type { Range } from "../../lib/domain/fan-ranges.js";

/**
 * A fan's own baseline (docs/health.md, "Baselines"): each sensor's level and spread while the fan
 * is healthy, learnt from its first `readings` readings, then moved slowly (an exponential average
 * with a memory of `memory` readings) while the fan is in control, frozen while an episode is open.
 * A finding or the end of a maintenance window starts the learning again: a fan back from
 * maintenance is a new fan.
 */
export interface BaselinePolicy {
  /** Readings learnt before the baseline is used. HEALTH_BASELINE_READINGS (0: no baselines). */
  baselineReadings: number;
  /** Once ready, a reading in control moves the baseline by 1/memory. HEALTH_BASELINE_MEMORY */
  baselineMemory: number;
  healthyRanges: Readonly<Record<FeatureName, Range>>;
}

/**
 * What the evaluator keeps of the baseline, with the fan's tracker (so that it moves under the
 * same compare-and-set as the fan's state): per sensor, FEATURES order, the mean and the variance
 * (population) of the readings learnt.
 */
export const BaselineTrackSchema = z.object({
  /** Readings learnt (counts up to baselineReadings, then stays). */
  n: z.number().int().min(0),
  reason: z.enum(BASELINE_REASONS),
  /** Reading time (epoch ms) learning began, and the time it became ready (null while learning). */
  since: z.number(),
  readyAt: z.number().nullable(),
  /** Reading time of the newest reading learnt. */
  updatedAt: z.number(),
  mean: z.array(z.number()).length(FEATURES.length),
  variance: z.array(z.number().min(0)).length(FEATURES.length),
  /**
   * The mean fourth power of the deviations, for the shape of the noise (kurtosis): a sensor whose
   * readings spread evenly over a band (kurtosis 1.8) reaches beyond its limit later than one
   * with a bell-shaped spread (3), and the eta says when the readings go beyond it.
   */
  fourth: z.array(z.number().min(0)).length(FEATURES.length),
});
export type BaselineTrack = z.infer<typeof BaselineTrackSchema>;

/** During learning, a value further than this many spreads from the mean so far counts as that far: one spike must not widen a baseline. */
const LEARN_CLIP = 5;
/** Values learnt before the clip applies: the spread needs a few readings to mean anything. */
const LEARN_UNCLIPPED = 30;
/**
 * A spread is at least this share of the fleet range's width, and 0.05 (half a sensor's 0.1 step):
 * a sensor that barely moves would otherwise make every tenth of a degree a drift (a stuck sensor
 * is a sensor issue, not a drift).
 */
const MIN_SPREAD_SHARE = 0.01;

export function newBaseline(at: number, reason: BaselineReason): BaselineTrack {
  return {
    n: 0,
    reason,
    since: at,
    readyAt: null,
    updatedAt: at,
    mean: FEATURES.map(() => 0),
    variance: FEATURES.map(() => 0),
    fourth: FEATURES.map(() => 0),
  };
}

export function isReady(b: BaselineTrack | undefined): b is BaselineTrack {
  return b !== undefined && b.readyAt !== null;
}

/**
 * Once ready, the baseline learns one in-control reading in this many, weighted this many times
 * 1/memory: the same slow average at a fraction of the cost (learning every reading was a third
 * of evaluate()'s time).
 */
export const READY_LEARN_EVERY = 64;

/**
 * Learns a reading: while learning, every reading (Welford's running mean and variance); once
 * ready, readings the caller judged in control, one in READY_LEARN_EVERY (the caller picks which),
 * weighted READY_LEARN_EVERY/memory. Returns a new track.
 */
export function learn(b: BaselineTrack, reading: PerSensor, at: number, policy: BaselinePolicy): BaselineTrack {
  const ready = b.readyAt !== null;
  const n = ready ? b.n : b.n + 1;
  const weight = ready ? Math.min(1, READY_LEARN_EVERY / policy.baselineMemory) : 1 / n;
  const mean = b.mean.slice();
  const variance = b.variance.slice();
  const fourth = b.fourth.slice();
  for (let i = 0; i < FEATURES.length; i++) {
    const m = mean[i] as number;
    const v = variance[i] as number;
    let x = reading[FEATURES[i] as FeatureName];
    if (ready || n > LEARN_UNCLIPPED) {
      const limit = LEARN_CLIP * spreadOf(b, i, policy);
      x = Math.min(m + limit, Math.max(m - limit, x));
    }
    const next = m + weight * (x - m);
    mean[i] = next;
    variance[i] = Math.max(0, v + weight * ((x - m) * (x - next) - v));
    const d = x - next;
    fourth[i] = Math.max(0, (fourth[i] as number) + weight * (d * d * d * d - (fourth[i] as number)));
  }
  const readyAt = ready ? b.readyAt : n >= policy.baselineReadings ? at : null;
  if (readyAt !== null) for (const values of [mean, variance, fourth]) roundAll(values);
  // Learning begins with the first reading learnt (a relearn starts by the clock, before it).
  const since = b.n === 0 ? at : b.since;
  return { ...b, n, since, mean, variance, fourth, readyAt, updatedAt: at };
}

/** Eight significant digits once ready (written with the fan on every prediction; learning keeps full precision for Welford's sums). */
function roundAll(values: number[]): void {
  for (let i = 0; i < values.length; i++) values[i] = Number((values[i] as number).toPrecision(8));
}

/** Sensor i's spread (standard deviation), at least its floor. */
export function spreadOf(b: BaselineTrack, i: number, policy: BaselinePolicy): number {
  const range = policy.healthyRanges[FEATURES[i] as FeatureName];
  return Math.max(Math.sqrt(b.variance[i] as number), MIN_SPREAD_SHARE * (range.max - range.min), 0.05);
}

/** Sensor i's noise spreads evenly over a band rather than in a bell: kurtosis well below a normal's 3 (a uniform's is 1.8). */
export function isBandNoise(b: BaselineTrack, i: number): boolean {
  const v = b.variance[i] as number;
  return v > 0 && (b.fourth[i] as number) / (v * v) < 2.4;
}

/** The baseline as `fan_baselines` publishes it (times as ISO, spreads with their floor). */
export function publishedBaseline(
  deviceID: string,
  b: BaselineTrack,
  frozen: boolean,
  policy: BaselinePolicy,
): PublishedBaseline {
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  return {
    deviceID,
    state: b.readyAt === null ? "learning" : "ready",
    readings: b.n,
    needs: policy.baselineReadings,
    reason: b.reason,
    since: iso(b.since),
    readyAt: b.readyAt === null ? null : iso(b.readyAt),
    updatedAt: iso(b.updatedAt),
    frozen,
    sensors: Object.fromEntries(
      FEATURES.map((f, i) => [f, { level: round(b.mean[i] as number), spread: round(spreadOf(b, i, policy)) }]),
    ) as PublishedBaseline["sensors"],
  };
}
