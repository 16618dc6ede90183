import { z } from "zod";
import { ConfigError } from "../../lib/errors.js";
import { durationSchema, formatDuration } from "../../lib/infra/duration.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { HEALTHY_RANGES, type Range } from "../../lib/domain/fan-ranges.js";
import type { FeatureName } from "../../lib/domain/features.js";
import type { SensorPolicy } from "./sensors.js";
import type { EtaPolicy } from "./eta.js";

/**
 * Every parameter of the health rules, in one place. docs/health.md explains the rules;
 * `npm run bench:health` measures them (docs/benchmarks.md, "Health quality").
 */
export interface HealthPolicy extends SensorPolicy, EtaPolicy {
  /** Raise an alarm when `alarmCount` of the last `alarmWindow` predictions say fault. HEALTH_ALARM_WINDOW */
  alarmWindow: number;
  /** HEALTH_ALARM_COUNT */
  alarmCount: number;
  /** Clear only after this many healthy predictions in a row… HEALTH_CLEAR_COUNT */
  clearCount: number;
  /** …and this long (reading time) since the last faulty one. HEALTH_QUIET_MS */
  quietMs: number;
  /** A cleared fan shows `cleared` this long (reading time) before it is `ok` again. HEALTH_CLEARED_HOLD_MS */
  clearedHoldMs: number;
  /** A fan that has not reported for this long (arrival time) is `silent`. HEALTH_SILENT_AFTER_MS */
  silentAfterMs: number;
  /** Warn when one sensor leaves its healthy range on the same side `warnCount` times within the last `warnWindow` readings. HEALTH_WARN_WINDOW */
  warnWindow: number;
  /** HEALTH_WARN_COUNT */
  warnCount: number;
  /** Weight of the newest prediction in the smoothed probability and in the averaged contributions. HEALTH_SMOOTHING */
  smoothing: number;
  /**
   * A reading time further ahead of the health process's clock than this counts as that far ahead:
   * one reading stamped by a fan with a wrong clock would otherwise make every later one look
   * like a replay. HEALTH_MAX_AHEAD_MS
   */
  maxAheadMs: number;
  /**
   * A warning whose eta comes this close to its reading time (eta − at ≤ this) is escalated: its
   * severity rises from minor to major, once per episode, with an `escalated` transition, so that
   * routing can page someone before the alarm. HEALTH_ESCALATION_HORIZON
   */
  escalationHorizonMs: number;
  /** Each sensor's healthy range (the limits a healthy fan stays within): lib/domain/fan-ranges.ts. */
  healthyRanges: Readonly<Record<FeatureName, Range>>;
}

/**
 * The defaults, chosen from `npm run bench:health` (docs/health.md has the numbers):
 * - 4 of the last 5 predictions: the model flags ~0.1% of healthy readings, so four in five by
 *   chance is ~5e-12 per reading (~2e-7 per fan-day), while a faulty fan (91% of its readings
 *   flagged) has four in a row 69% of the time: median 4 readings to the alarm. Three of five
 *   would be one reading faster but ~0.4 false alarms per 1,000 fan-days.
 * - clear after 10 healthy in a row and 10 minutes without a fault or a sensor beyond its range: a
 *   faulty fan shows 10 healthy readings in a row with probability 0.09^10 ≈ 3e-11; with a 60 s
 *   quiet period a bearing fan early in its wear (vibration beyond its range on ~8% of readings)
 *   cleared and raised its alarm again in the bench; 300 readings without one at 8% is ~1e-11.
 *   A repaired fan clears ten minutes after its last bad reading.
 * - warn on 4 exceedances of one sensor's healthy range on one side within 60 readings (2 min): a
 *   healthy fan never leaves its ranges; a noisy one's isolated spikes (one in 500 readings, on a
 *   random sensor) made 4 false warnings in 1,000 fan-days with 3 of 30, and 4 of 60 is ~0.1 by
 *   the same arithmetic; with 6-hour wear 4 of 60 also warned earlier in the run-up to the alarm
 *   (median 74% of it, min 39%, against 73% and 33%) and its etas were closer (median 0.77 of
 *   the actual time to the alarm against 0.59). With 10-minute wear 95% of wearing fans were
 *   warned before their alarm (96% with 3 of 30).
 * - silent after 30 s: 15 missed readings at the default 2 s interval, far beyond jitter.
 * - escalate a warning once its eta is 30 minutes away: about what an on-call engineer needs to
 *   reach a fan. Warnings lead their alarms by a median 44 minutes in the bench (6-hour wear) and
 *   their etas err early (median 0.8 of the real time), so the page comes some 30 to 40 minutes
 *   before the alarm, while the warning alone (minor) leaves the rest of the lead for planning.
 *   An hour would escalate most warnings the moment they are raised (their median eta is ~35
 *   minutes away): every warning would page.
 * - sensor issues (docs/health.md, "Sensor issues"): 3 implausible readings of one sensor within
 *   10 minutes, a sensor giving the same value 30 readings in a row (a minute at 2 s), cleared by
 *   300 plausible readings in a row with no sensor stuck (10 minutes at 2 s, as HEALTH_QUIET_MS).
 *   The simulator's healthy sensors repeat their value by chance on at most 1.4% of readings
 *   (sound), and in 10 million readings (231 fan-days) the longest run of one value was 5.
 */
export const DEFAULT_POLICY: HealthPolicy = Object.freeze({
  alarmWindow: 5,
  alarmCount: 4,
  clearCount: 10,
  quietMs: 600_000,
  clearedHoldMs: 300_000,
  silentAfterMs: 30_000,
  warnWindow: 60,
  warnCount: 4,
  smoothing: 0.2,
  maxAheadMs: 300_000,
  escalationHorizonMs: 30 * 60_000,
  healthyRanges: HEALTHY_RANGES,
  implausibleCount: 3,
  implausibleWindowMs: 10 * 60_000,
  stuckReadings: 30,
  clearReadings: 300,
  baselineReadings: 1_800,
  baselineMemory: 302_400,
  driftK: 0.5,
  driftH: 25,
  driftRateError: 0.15,
  etaCoverage: 0.8,
});

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const p = DEFAULT_POLICY;

/** HEALTH_*: overrides of DEFAULT_POLICY (docs/health.md has the table, generated from these). */
export const HEALTH_POLICY_SETTINGS = defineSettings({
  HEALTH_ALARM_WINDOW: {
    env: ["HEALTH_ALARM_WINDOW"],
    help: "predictions looked at for an alarm (≤ 30)",
    default: p.alarmWindow,
    schema: int(1, 30).default(p.alarmWindow),
  },
  HEALTH_ALARM_COUNT: {
    env: ["HEALTH_ALARM_COUNT"],
    help: "of which faulty to raise it (≤ HEALTH_ALARM_WINDOW)",
    default: p.alarmCount,
    schema: int(1, 30).default(p.alarmCount),
  },
  HEALTH_CLEAR_COUNT: {
    env: ["HEALTH_CLEAR_COUNT"],
    help: "healthy predictions in a row to clear",
    default: p.clearCount,
    schema: int(1, 100_000).default(p.clearCount),
  },
  HEALTH_QUIET_MS: {
    env: ["HEALTH_QUIET_MS"],
    help: "and this long (reading time) without a fault or an exceedance",
    default: p.quietMs,
    schema: int(0, 86_400_000).default(p.quietMs),
  },
  HEALTH_CLEARED_HOLD_MS: {
    env: ["HEALTH_CLEARED_HOLD_MS"],
    help: "cleared shown this long (reading time) before ok",
    default: p.clearedHoldMs,
    schema: int(0, 86_400_000).default(p.clearedHoldMs),
  },
  HEALTH_SILENT_AFTER_MS: {
    env: ["HEALTH_SILENT_AFTER_MS"],
    help: "silent after this long without a reading (15 readings at 2 s)",
    default: p.silentAfterMs,
    schema: int(1, 86_400_000).default(p.silentAfterMs),
  },
  HEALTH_WARN_WINDOW: {
    env: ["HEALTH_WARN_WINDOW"],
    help: "readings looked at for a warning",
    default: p.warnWindow,
    schema: int(1, 100_000).default(p.warnWindow),
  },
  HEALTH_WARN_COUNT: {
    env: ["HEALTH_WARN_COUNT"],
    help: "exceedances of one sensor on one side within them to warn (≤ HEALTH_WARN_WINDOW)",
    default: p.warnCount,
    schema: int(1, 16).default(p.warnCount),
  },
  HEALTH_SMOOTHING: {
    env: ["HEALTH_SMOOTHING"],
    help: "weight of the newest probability (above 0, at most 1)",
    default: p.smoothing,
    schema: z.coerce.number().gt(0).max(1).default(p.smoothing),
  },
  HEALTH_MAX_AHEAD_MS: {
    env: ["HEALTH_MAX_AHEAD_MS"],
    help: "a reading time further ahead of the clock counts as this far ahead",
    default: p.maxAheadMs,
    schema: int(0, 86_400_000).default(p.maxAheadMs),
  },
  HEALTH_ESCALATION_HORIZON: {
    env: ["HEALTH_ESCALATION_HORIZON"],
    help: "a warning whose eta is this close is escalated (minor → major)",
    doc: "a warning whose eta comes this close (a duration: `30m`, `1h`; `0s` once the eta has passed) is escalated: severity minor → major, an `escalated` transition",
    default: formatDuration(p.escalationHorizonMs),
    schema: durationSchema(formatDuration(p.escalationHorizonMs), 0),
  },
  HEALTH_SENSOR_IMPLAUSIBLE_COUNT: {
    env: ["HEALTH_SENSOR_IMPLAUSIBLE_COUNT"],
    help: "implausible readings of one sensor within HEALTH_SENSOR_WINDOW that open a sensor issue",
    default: p.implausibleCount,
    schema: int(1, 16).default(p.implausibleCount),
  },
  HEALTH_SENSOR_WINDOW: {
    env: ["HEALTH_SENSOR_WINDOW"],
    help: "the window (reading time) they are counted in",
    doc: "the window (reading time, a duration: `10m`) implausible readings are counted in",
    default: formatDuration(p.implausibleWindowMs),
    schema: durationSchema(formatDuration(p.implausibleWindowMs), 1_000),
  },
  HEALTH_STUCK_READINGS: {
    env: ["HEALTH_STUCK_READINGS"],
    help: "readings in a row of one identical value (other than 0) that make a sensor stuck",
    default: p.stuckReadings,
    schema: int(2, 100_000).default(p.stuckReadings),
  },
  HEALTH_SENSOR_CLEAR_READINGS: {
    env: ["HEALTH_SENSOR_CLEAR_READINGS"],
    help: "plausible readings in a row, none stuck, that clear a sensor issue",
    default: p.clearReadings,
    schema: int(1, 1_000_000).default(p.clearReadings),
  },
  HEALTH_BASELINE_READINGS: {
    env: ["HEALTH_BASELINE_READINGS"],
    help: "readings a fan's own baseline is learnt from before it is used (0: no baselines)",
    default: p.baselineReadings,
    schema: int(0, 10_000_000).default(p.baselineReadings),
  },
  HEALTH_BASELINE_MEMORY: {
    env: ["HEALTH_BASELINE_MEMORY"],
    help: "once learnt, a reading in control moves the baseline by 1/this",
    default: p.baselineMemory,
    schema: int(1, 100_000_000).default(p.baselineMemory),
  },
  HEALTH_DRIFT_K: {
    env: ["HEALTH_DRIFT_K"],
    help: "the drift detector's reference value k, in spreads of the fan's baseline",
    default: p.driftK,
    schema: z.coerce.number().min(0).max(10).default(p.driftK),
  },
  HEALTH_DRIFT_H: {
    env: ["HEALTH_DRIFT_H"],
    help: "its decision interval h, in spreads: a warning when a sensor's CUSUM reaches it",
    default: p.driftH,
    schema: z.coerce.number().gt(0).max(1_000).default(p.driftH),
  },
  HEALTH_DRIFT_RATE_ERROR: {
    env: ["HEALTH_DRIFT_RATE_ERROR"],
    help: "a drift warns once its rate's standard error is at most this share of the rate",
    default: p.driftRateError,
    schema: z.coerce.number().gt(0).max(10).default(p.driftRateError),
  },
  HEALTH_ETA_COVERAGE: {
    env: ["HEALTH_ETA_COVERAGE"],
    help: "the chance the alarm comes within a warning's eta interval",
    default: p.etaCoverage,
    schema: z.coerce.number().min(0.5).max(0.99).default(p.etaCoverage),
  },
});

/** HEALTH_* overrides of DEFAULT_POLICY, from the environment unless `env` is given; a bad or impossible value throws a ConfigError naming it. */
export function readHealthPolicy(env?: NodeJS.ProcessEnv): HealthPolicy {
  const e = readSettings(HEALTH_POLICY_SETTINGS, env);
  if (e.HEALTH_ALARM_COUNT > e.HEALTH_ALARM_WINDOW)
    throw new ConfigError(
      `invalid configuration: HEALTH_ALARM_COUNT (${e.HEALTH_ALARM_COUNT}) is more than HEALTH_ALARM_WINDOW (${e.HEALTH_ALARM_WINDOW})`,
    );
  if (e.HEALTH_WARN_COUNT > e.HEALTH_WARN_WINDOW)
    throw new ConfigError(
      `invalid configuration: HEALTH_WARN_COUNT (${e.HEALTH_WARN_COUNT}) is more than HEALTH_WARN_WINDOW (${e.HEALTH_WARN_WINDOW})`,
    );
  return Object.freeze({
    alarmWindow: e.HEALTH_ALARM_WINDOW,
    alarmCount: e.HEALTH_ALARM_COUNT,
    clearCount: e.HEALTH_CLEAR_COUNT,
    quietMs: e.HEALTH_QUIET_MS,
    clearedHoldMs: e.HEALTH_CLEARED_HOLD_MS,
    silentAfterMs: e.HEALTH_SILENT_AFTER_MS,
    warnWindow: e.HEALTH_WARN_WINDOW,
    warnCount: e.HEALTH_WARN_COUNT,
    smoothing: e.HEALTH_SMOOTHING,
    maxAheadMs: e.HEALTH_MAX_AHEAD_MS,
    escalationHorizonMs: e.HEALTH_ESCALATION_HORIZON,
    healthyRanges: DEFAULT_POLICY.healthyRanges,
    implausibleCount: e.HEALTH_SENSOR_IMPLAUSIBLE_COUNT,
    implausibleWindowMs: e.HEALTH_SENSOR_WINDOW,
    stuckReadings: e.HEALTH_STUCK_READINGS,
    clearReadings: e.HEALTH_SENSOR_CLEAR_READINGS,
    baselineReadings: e.HEALTH_BASELINE_READINGS,
    baselineMemory: e.HEALTH_BASELINE_MEMORY,
    driftK: e.HEALTH_DRIFT_K,
    driftH: e.HEALTH_DRIFT_H,
    driftRateError: e.HEALTH_DRIFT_RATE_ERROR,
    etaCoverage: e.HEALTH_ETA_COVERAGE,
  });
}
