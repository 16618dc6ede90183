import type { FeatureName } from "../../lib/domain/features.js";
import type { AlarmTransition, WarningBasis } from "../../lib/domain/health.js";
import { WEARING } from "../../simulation/fan-profiles.js";
import type { FanTruth } from "../../simulation/fleet-model.js";

/** Readings of one fan in a day at the default 2 s. */
export const READINGS_PER_DAY = 43_200;

/** A transition and the index of the reading that caused it. */
export interface Seen {
  idx: number;
  transition: AlarmTransition;
}

/** What the health rules did with one fan, against its ground truth. */
export interface FanOutcome {
  deviceID: string;
  shape: FanTruth["shape"];
  readings: number;
  /** Readings while the fan was healthy (before a sudden fault or the start of wear; all of a healthy fan's). */
  healthyReadings: number;
  /** The highest drift statistic (CUSUM S, in spreads) any side reached while the fan was healthy; 0 without a baseline. */
  healthyDriftPeak: number;
  /** Alarms and warnings raised while the fan was healthy. */
  falseAlarms: number;
  falseWarnings: number;
  /** From its failure to the first alarm, in readings (negative: before a wearing fan's failure); null when never alarmed. */
  readingsToAlarm: number | null;
  /** Wearing fans: the first warning after the wear began and before the alarm, as a reading index. */
  warnedAt: number | null;
  alarmedAt: number | null;
  /** Wearing fans: (failure − first warning) / wear-out period. */
  leadShare: number | null;
  /** Wearing fans: readings from the first warning to the alarm. */
  warnToAlarm: number | null;
  /** Wearing fans: (alarm − first warning) / (alarm − start of the wear): how much of the run-up to the alarm the warning covers. */
  warnShareOfRunUp: number | null;
  /** Wearing fans: how far into the wear-out period the alarm came (0: at the start of the wear, 1: at the failure). */
  alarmShareOfWear: number | null;
  /** Wearing fans: when the first warning expected the alarm, as a share of the time it really took (1: exact). */
  etaRatio: number | null;
  /** Alarms raised beyond the first in the fault episode. */
  flaps: number;
  warningCause: string | null;
  alarmCause: string | null;
  /** Wearing fans: the wear-out period in hours (a drift's speed). */
  periodHours: number | null;
  /** The sensors that really wear (FanTruth.drifting). */
  drifting: FeatureName[];
  /**
   * Wearing fans that were alarmed: (first warning − start of the wear) / (alarm − start of the
   * wear), 0 at the start of the wear, 1 at the alarm; 1 when not warned before the alarm.
   */
  warningPosition: number | null;
  /** The first warning's basis (absent on warnings of rules that do not say). */
  warningBasis: WarningBasis | null;
  /** The first warning named every drifting sensor (its `sensors`, or its cause alone) and blamed one of them. */
  warningNamedDrifting: boolean | null;
  /** The alarm came within the first warning's etaInterval; null when not warned, not alarmed, or no interval. */
  alarmWithinInterval: boolean | null;
  /** The first warning's stated coverage of its interval. */
  intervalCoverage: number | null;
}

export function outcome(
  truth: FanTruth,
  readings: number,
  seen: readonly Seen[],
  intervalMs: number,
  healthyDriftPeak = 0,
): FanOutcome {
  const onset = truth.wearStartsAtReading ?? truth.failsAtReading;
  const healthyReadings = onset === null ? readings : Math.min(readings, onset);
  const raised = (event: "alarm" | "warning") => {
    const ids = new Set<string>();
    return seen.filter(
      (s) =>
        s.transition.event === event && !ids.has(String(s.transition.alarmId)) && ids.add(String(s.transition.alarmId)),
    );
  };
  const alarms = raised("alarm");
  const warnings = raised("warning");
  const before = (list: Seen[]) => list.filter((s) => s.idx < healthyReadings).length;
  const fromOnset = (list: Seen[]) => list.filter((s) => onset !== null && s.idx >= onset);
  const alarm = fromOnset(alarms)[0];
  const episodeAlarms = new Set(fromOnset(alarms).map((s) => s.transition.alarmId)).size;
  const wearing = truth.wearStartsAtReading !== null;
  const warning = wearing ? fromOnset(warnings).find((s) => alarm === undefined || s.idx < alarm.idx) : undefined;
  const period = wearing ? (truth.failsAtReading as number) - (truth.wearStartsAtReading as number) : 0;
  const eta = warning?.transition.eta;
  const interval = warning?.transition.etaInterval ?? null;
  const start = truth.wearStartsAtReading as number;
  return {
    deviceID: truth.deviceID,
    shape: truth.shape,
    readings,
    healthyReadings,
    healthyDriftPeak,
    falseAlarms: before(alarms),
    falseWarnings: before(warnings),
    readingsToAlarm: alarm === undefined || onset === null ? null : alarm.idx - (truth.failsAtReading ?? onset) + 1,
    warnedAt: warning?.idx ?? null,
    alarmedAt: alarm?.idx ?? null,
    leadShare: warning === undefined ? null : ((truth.failsAtReading as number) - warning.idx) / period,
    warnToAlarm: warning === undefined || alarm === undefined ? null : alarm.idx - warning.idx,
    alarmShareOfWear:
      alarm === undefined || !wearing ? null : (alarm.idx - (truth.wearStartsAtReading as number)) / period,
    warnShareOfRunUp:
      warning === undefined || alarm === undefined
        ? null
        : (alarm.idx - warning.idx) / Math.max(1, alarm.idx - (truth.wearStartsAtReading as number)),
    etaRatio:
      warning === undefined || alarm === undefined || eta === null || eta === undefined || alarm.idx === warning.idx
        ? null
        : (Date.parse(eta) - Date.parse(warning.transition.at)) / ((alarm.idx - warning.idx) * intervalMs),
    flaps: Math.max(0, episodeAlarms - 1),
    warningCause: warning?.transition.cause ?? null,
    alarmCause: alarm?.transition.cause ?? null,
    periodHours: wearing ? (period * intervalMs) / 3_600_000 : null,
    drifting: truth.drifting,
    warningPosition:
      alarm === undefined || !wearing
        ? null
        : warning === undefined
          ? 1
          : (warning.idx - start) / Math.max(1, alarm.idx - start),
    warningBasis: warning?.transition.basis ?? null,
    warningNamedDrifting: warning === undefined ? null : namesDrifting(warning.transition, truth.drifting),
    alarmWithinInterval:
      interval === null || alarm === undefined
        ? null
        : Date.parse(interval.from) <= Date.parse(alarm.transition.at) &&
          Date.parse(alarm.transition.at) <= Date.parse(interval.to),
    intervalCoverage: interval?.coverage ?? null,
  };
}

/** Whether a warning names every drifting sensor (its `sensors`, or its cause when it gives none) and blames one of them. */
export function namesDrifting(warning: AlarmTransition, drifting: readonly FeatureName[]): boolean {
  const named = warning.sensors ?? (warning.cause === null ? [] : [warning.cause]);
  return warning.cause !== null && drifting.includes(warning.cause) && drifting.every((f) => named.includes(f));
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** The numbers the issue asks for, over any set of fan outcomes. */
export function summarise(outcomes: readonly FanOutcome[]) {
  const failing = outcomes.filter((o) => o.shape === "faulty" || o.shape === "sudden");
  const healthy = outcomes.filter((o) => o.shape === "healthy" || o.shape === "noisy");
  const wearing = outcomes.filter((o) => WEARING.has(o.shape));
  const faultFans = outcomes.filter((o) => o.shape !== "healthy" && o.shape !== "noisy");
  const healthyDays = healthy.reduce((n, o) => n + o.healthyReadings, 0) / READINGS_PER_DAY;
  const preFaultDays = faultFans.reduce((n, o) => n + o.healthyReadings, 0) / READINGS_PER_DAY;
  const toAlarm = failing.map((o) => o.readingsToAlarm).filter((n): n is number => n !== null);
  const perKiloDay = (n: number, days: number) => (days === 0 ? null : (n * 1000) / days);
  const leads = wearing.map((o) => o.leadShare).filter((n): n is number => n !== null);
  const warnToAlarm = wearing.map((o) => o.warnToAlarm).filter((n): n is number => n !== null);
  const runUp = wearing.map((o) => o.warnShareOfRunUp).filter((n): n is number => n !== null);
  const alarmShare = wearing.map((o) => o.alarmShareOfWear).filter((n): n is number => n !== null);
  const etas = wearing.map((o) => o.etaRatio).filter((n): n is number => n !== null);
  const bearings = wearing.filter((o) => o.shape === "bearing");
  return {
    faulty: {
      fans: failing.length,
      alarmed: toAlarm.length / Math.max(1, failing.length),
      readingsToAlarmMedian: median(toAlarm),
      readingsToAlarmP95: quantile(toAlarm, 0.95),
      readingsToAlarmMax: toAlarm.length === 0 ? null : Math.max(...toAlarm),
    },
    healthy: {
      fans: healthy.length,
      fanDays: healthyDays,
      falseAlarms: healthy.reduce((n, o) => n + o.falseAlarms, 0),
      falseWarnings: healthy.reduce((n, o) => n + o.falseWarnings, 0),
      falseAlarmsPer1000FanDays: perKiloDay(
        healthy.reduce((n, o) => n + o.falseAlarms, 0),
        healthyDays,
      ),
      falseWarningsPer1000FanDays: perKiloDay(
        healthy.reduce((n, o) => n + o.falseWarnings, 0),
        healthyDays,
      ),
      /** The margin of the drift detector: its highest statistic on any healthy reading (warns at HEALTH_DRIFT_H). */
      driftPeak: outcomes.reduce((peak, o) => Math.max(peak, o.healthyDriftPeak), 0),
      beforeFaultFanDays: preFaultDays,
      beforeFaultFalseAlarms: faultFans.reduce((n, o) => n + o.falseAlarms, 0),
      beforeFaultFalseWarnings: faultFans.reduce((n, o) => n + o.falseWarnings, 0),
      beforeFaultFalseAlarmsPer1000FanDays: perKiloDay(
        faultFans.reduce((n, o) => n + o.falseAlarms, 0),
        preFaultDays,
      ),
      beforeFaultFalseWarningsPer1000FanDays: perKiloDay(
        faultFans.reduce((n, o) => n + o.falseWarnings, 0),
        preFaultDays,
      ),
    },
    wearing: {
      fans: wearing.length,
      warnedBeforeAlarm: leads.length / Math.max(1, wearing.length),
      alarmed: wearing.filter((o) => o.alarmedAt !== null).length / Math.max(1, wearing.length),
      leadShareMedian: median(leads),
      leadShareMin: leads.length === 0 ? null : Math.min(...leads),
      warnToAlarmReadingsMedian: median(warnToAlarm),
      warnShareOfRunUpMedian: median(runUp),
      warnShareOfRunUpMin: runUp.length === 0 ? null : Math.min(...runUp),
      alarmShareOfWearMedian: median(alarmShare),
      etaRatioMedian: median(etas),
      etaRatioP10: quantile(etas, 0.1),
      etaRatioP90: quantile(etas, 0.9),
      bearingCauseVibration:
        bearings.length === 0 ? null : bearings.filter((o) => o.warningCause === "vibration").length / bearings.length,
      bearingAlarmCauseVibration:
        bearings.length === 0 ? null : bearings.filter((o) => o.alarmCause === "vibration").length / bearings.length,
    },
    flapping: { episodes: faultFans.length, extraAlarms: faultFans.reduce((n, o) => n + o.flaps, 0) },
    /** Every wearing fan, as the shapes below: when warned, sensors named, basis, interval. */
    allWearing: shapeSummary(wearing),
    shapes: Object.fromEntries(
      [...new Set(wearing.map((o) => o.shape))].map((shape) => {
        const fans = wearing.filter((o) => o.shape === shape);
        return [shape, { ...shapeSummary(fans), speeds: speedSummaries(fans) }];
      }),
    ),
  };
}
export type Summary = ReturnType<typeof summarise>;

/** Per wear-out period, for shapes whose fans wear at several speeds: keys "30min", "2h", "24h". */
function speedSummaries(fans: readonly FanOutcome[]): Record<string, ShapeSummary> | null {
  const periods = [...new Set(fans.map((o) => o.periodHours as number))].sort((a, b) => a - b);
  if (periods.length < 2) return null;
  return Object.fromEntries(periods.map((h) => [speedLabel(h), shapeSummary(fans.filter((o) => o.periodHours === h))]));
}

export function speedLabel(hours: number): string {
  return hours < 1 ? `${Math.round(hours * 60)}min` : `${Math.round(hours * 10) / 10}h`;
}

/**
 * When the first warning comes in the run-up from the start of the wear to the alarm, whether it
 * named the drifting sensors, on what basis it was given, and how its eta and interval held, over
 * wearing fans of one shape (and speed).
 */
export function shapeSummary(fans: readonly FanOutcome[]) {
  const positions = fans.map((o) => o.warningPosition).filter((n): n is number => n !== null);
  const warned = fans.filter((o) => o.warnedAt !== null);
  const etas = fans.map((o) => o.etaRatio).filter((n): n is number => n !== null);
  return {
    fans: fans.length,
    warned: warned.length,
    notAlarmed: fans.filter((o) => o.alarmedAt === null).length,
    warningPositionEarliest: positions.length === 0 ? null : Math.min(...positions),
    warningPositionMedian: median(positions),
    warningPositionLatest: positions.length === 0 ? null : Math.max(...positions),
    namedDrifting: fans.filter((o) => o.warningNamedDrifting === true).length,
    namedDriftingShare:
      fans.length === 0 ? null : fans.filter((o) => o.warningNamedDrifting === true).length / fans.length,
    basisBaseline: warned.filter((o) => o.warningBasis === "baseline").length,
    basisFleetRange: warned.filter((o) => o.warningBasis === "fleet-range").length,
    basisNone: warned.filter((o) => o.warningBasis === null).length,
    etaRatioP10: quantile(etas, 0.1),
    etaRatioMedian: median(etas),
    etaRatioP90: quantile(etas, 0.9),
    interval: intervalSummary(fans),
  };
}
export type ShapeSummary = ReturnType<typeof shapeSummary>;

/** How often the alarm came within the first warning's interval, against the coverage the warnings stated. */
export function intervalSummary(fans: readonly FanOutcome[]) {
  const warned = fans.filter((o) => o.warnedAt !== null && o.alarmedAt !== null);
  const judged = warned.filter((o) => o.alarmWithinInterval !== null);
  const covered = judged.filter((o) => o.alarmWithinInterval === true).length;
  return {
    warned: warned.length,
    withInterval: judged.length,
    withoutInterval: warned.length - judged.length,
    covered,
    coverage: judged.length === 0 ? null : covered / judged.length,
    statedCoverage: median(judged.map((o) => o.intervalCoverage as number)),
  };
}
