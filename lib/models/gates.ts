import { z } from "zod";
import type { Prediction, Verdict } from "../domain/prediction.js";
import { durationSchema, formatDuration } from "../infra/duration.js";
import { defineSettings, readSettings } from "../infra/settings.js";
import type { EvidenceReading } from "../nats/evidence.js";
import type { GateResult, GoldenSet, ShadowComparison } from "./schemas.js";

/**
 * The promotion gates (docs/models.md, "Promotion gates"): what `fanwatch model promote` checks
 * before it moves a site's pointer to a candidate.
 */
export interface PromotionQuestion {
  site: string;
  /** The active model's id and the candidate's. */
  active: string;
  candidate: string;
}

/** The gates' verdicts on the candidate, each with its numbers; promote refuses if any did not pass. */
export type PromotionGates = (question: PromotionQuestion) => Promise<GateResult[]>;

export const GATE_DEFAULTS = Object.freeze({
  MODEL_GATE_WINDOW_MS: 7 * 24 * 3_600_000,
  MODEL_GATE_MAX_ALARM_CHANGE: 0,
  MODEL_GATE_MIN_SHADOW_READINGS: 1_000,
  MODEL_AUTO_PROMOTE_AFTER_MS: 24 * 3_600_000,
});

const d = GATE_DEFAULTS;

/** The gates' settings: read by `fanwatch model promote` and `auto-promote` where they run. */
export const GATE_SETTINGS = defineSettings({
  MODEL_GATE_WINDOW: {
    env: ["MODEL_GATE_WINDOW"],
    help: "how far back the gates look for findings and confirmed-fault episodes",
    doc: "how far back (a duration: `7d`, `36h`) the gates look for findings: the confirmed-fault episodes the candidate must still alarm on, and the fans whose finding excuses a change in their alarms",
    default: formatDuration(d.MODEL_GATE_WINDOW_MS),
    schema: durationSchema(formatDuration(d.MODEL_GATE_WINDOW_MS), 60_000),
  },
  MODEL_GATE_MAX_ALARM_CHANGE: {
    env: ["MODEL_GATE_MAX_ALARM_CHANGE"],
    help: "fans with no finding whose alarms the candidate may open or close, over its shadow period",
    doc: "fans with no finding in the window whose alarms would open or close differently under the candidate (from the shadow comparisons), at most; a change on a fan with a finding is what learning from findings is for",
    default: d.MODEL_GATE_MAX_ALARM_CHANGE,
    schema: z.coerce.number().int().min(0).default(d.MODEL_GATE_MAX_ALARM_CHANGE),
  },
  MODEL_GATE_MIN_SHADOW_READINGS: {
    env: ["MODEL_GATE_MIN_SHADOW_READINGS"],
    help: "readings the candidate must have scored as a shadow next to the active model before the alarm-change gate can pass (0: no shadow needed)",
    default: d.MODEL_GATE_MIN_SHADOW_READINGS,
    schema: z.coerce.number().int().min(0).default(d.MODEL_GATE_MIN_SHADOW_READINGS),
  },
  MODEL_AUTO_PROMOTE_AFTER: {
    env: ["MODEL_AUTO_PROMOTE_AFTER"],
    help: "how long a shadow must have run before `fanwatch model auto-promote` promotes it (if it passes every gate)",
    doc: "how long (a duration: `24h`) a shadow must have run against the active model before `fanwatch model auto-promote` promotes it, if it passes every gate",
    default: formatDuration(d.MODEL_AUTO_PROMOTE_AFTER_MS),
    schema: durationSchema(formatDuration(d.MODEL_AUTO_PROMOTE_AFTER_MS), 60_000),
  },
});

export interface GateSettings {
  /** @default GATE_DEFAULTS.MODEL_GATE_WINDOW_MS */
  windowMs: number;
  /** @default GATE_DEFAULTS.MODEL_GATE_MAX_ALARM_CHANGE */
  maxAlarmChange: number;
  /** @default GATE_DEFAULTS.MODEL_GATE_MIN_SHADOW_READINGS */
  minShadowReadings: number;
  /** @default GATE_DEFAULTS.MODEL_AUTO_PROMOTE_AFTER_MS */
  autoPromoteAfterMs: number;
}

/** From the environment unless `env` is given. */
export function readGateSettings(env?: NodeJS.ProcessEnv): GateSettings {
  const s = readSettings(GATE_SETTINGS, env);
  return {
    windowMs: s.MODEL_GATE_WINDOW,
    maxAlarmChange: s.MODEL_GATE_MAX_ALARM_CHANGE,
    minShadowReadings: s.MODEL_GATE_MIN_SHADOW_READINGS,
    autoPromoteAfterMs: s.MODEL_AUTO_PROMOTE_AFTER,
  };
}

/** An episode and the latest finding on it. */
export interface EpisodeFinding {
  deviceID: string;
  alarmId: string;
  result: "confirmed" | "false-alarm" | "not-checked";
}

/**
 * What the gates read, given by whoever runs them (cli/model-gates.ts wires the registry, NATS
 * and health's rules): lib/ knows neither the models' runtime nor health's rules.
 */
export interface GateSources {
  /** A model's golden set (from its bundle). */
  golden(id: string): Promise<GoldenSet>;
  /** A model's verdicts on readings in FEATURES order. */
  verdicts(id: string, inputs: number[][]): Promise<Verdict[]>;
  /** The site's episodes with a finding made since `since` (epoch ms), each with its latest finding. */
  findings(site: string, since: number): Promise<EpisodeFinding[]>;
  /** The readings kept with an episode (lead and during), oldest first. */
  evidence(site: string, deviceID: string, alarmId: string): Promise<EvidenceReading[]>;
  /** Every replica's comparison of `shadow` at the site. */
  comparisons(site: string, shadow: string): Promise<ShadowComparison[]>;
  /** The health rules: whether one fan's predictions, in order, raise an alarm. */
  alarms(deviceID: string, predictions: Prediction[]): boolean;
}

/**
 * The gates as a PromotionGates function: each runs even when another failed, so that promote
 * shows every number at once.
 */
export function promotionGates(
  sources: GateSources,
  settings: GateSettings,
  now: () => number = Date.now,
): PromotionGates {
  return async ({ site, active, candidate }) => {
    const since = now() - settings.windowMs;
    const [findings, comparisons] = await Promise.all([
      sources.findings(site, since),
      sources.comparisons(site, candidate),
    ]);
    const [golden, confirmed] = await Promise.all([
      goldenAccuracy(sources, active, candidate),
      confirmedFaults(sources, site, candidate, findings, settings),
    ]);
    const withFinding = new Set(findings.map((f) => f.deviceID));
    return [golden, confirmed, alarmChangeGate(comparisons, active, since, withFinding, settings)];
  };
}

/** Labelled readings of both golden sets, each once. */
export function labelledUnion(sets: readonly GoldenSet[]): Array<{ input: number[]; label: 0 | 1 }> {
  const seen = new Map<string, { input: number[]; label: 0 | 1 }>();
  for (const set of sets)
    for (const r of set.readings)
      if (r.label !== undefined && !seen.has(r.input.join(",")))
        seen.set(r.input.join(","), { input: r.input, label: r.label });
  return [...seen.values()];
}

/** Gate 1: the candidate's accuracy on the union of both golden sets' labelled readings is at least the active's. */
async function goldenAccuracy(sources: GateSources, active: string, candidate: string): Promise<GateResult> {
  const labelled = labelledUnion(await Promise.all([sources.golden(active), sources.golden(candidate)]));
  const inputs = labelled.map((r) => r.input);
  const [a, c] = await Promise.all([sources.verdicts(active, inputs), sources.verdicts(candidate, inputs)]);
  return goldenAccuracyGate(
    labelled.map((r) => r.label),
    a,
    c,
  );
}

export function goldenAccuracyGate(
  labels: ReadonlyArray<0 | 1>,
  active: readonly Verdict[],
  candidate: readonly Verdict[],
): GateResult {
  if (labels.length === 0)
    return { gate: "golden-accuracy", passed: false, detail: "no labelled reading in either golden set" };
  const accuracy = (verdicts: readonly Verdict[]) =>
    verdicts.filter((v, i) => v.fault === labels[i]).length / labels.length;
  const a = accuracy(active);
  const c = accuracy(candidate);
  const passed = c >= a;
  return {
    gate: "golden-accuracy",
    passed,
    detail: `candidate ${c.toFixed(3)} ${passed ? "≥" : "<"} active ${a.toFixed(3)} on ${labels.length} labelled readings of both golden sets`,
  };
}

/** Gate 2: every episode of the window whose latest finding is `confirmed` is still alarmed by the candidate, under the health rules. */
async function confirmedFaults(
  sources: GateSources,
  site: string,
  candidate: string,
  findings: readonly EpisodeFinding[],
  settings: GateSettings,
): Promise<GateResult> {
  const confirmed = findings.filter((f) => f.result === "confirmed");
  const judged: Array<{ episode: EpisodeFinding; readings: number; alarmed: boolean }> = [];
  for (const episode of confirmed) {
    const readings = await sources.evidence(site, episode.deviceID, episode.alarmId);
    const verdicts =
      readings.length === 0
        ? []
        : await sources.verdicts(
            candidate,
            readings.map((r) => [r.rotation, r.temperature, r.vibration, r.sound]),
          );
    const predictions: Prediction[] = readings.map((r, i) => ({
      deviceID: episode.deviceID,
      timeStamp: r.at,
      fault: verdicts[i]!.fault,
      probability: verdicts[i]!.probability,
      model: candidate,
      reading: { rotation: r.rotation, temperature: r.temperature, vibration: r.vibration, sound: r.sound },
    }));
    judged.push({ episode, readings: readings.length, alarmed: sources.alarms(episode.deviceID, predictions) });
  }
  return confirmedFaultsGate(judged, settings.windowMs);
}

export function confirmedFaultsGate(
  judged: ReadonlyArray<{ episode: EpisodeFinding; readings: number; alarmed: boolean }>,
  windowMs: number,
): GateResult {
  const window = formatDuration(windowMs);
  if (judged.length === 0)
    return { gate: "confirmed-faults", passed: true, detail: `no confirmed-fault episode in the last ${window}` };
  const missed = judged.filter((j) => !j.alarmed);
  const named = missed
    .slice(0, 5)
    .map((m) =>
      m.readings === 0
        ? `${m.episode.alarmId} (no readings kept)`
        : `${m.episode.alarmId} (${m.readings} readings, no alarm)`,
    );
  return {
    gate: "confirmed-faults",
    passed: missed.length === 0,
    detail:
      `${judged.length - missed.length} of ${judged.length} confirmed-fault episodes of the last ${window} still alarmed` +
      (missed.length === 0 ? "" : `; missed: ${named.join(", ")}${missed.length > 5 ? ", …" : ""}`),
  };
}

/**
 * Gate 3: over the candidate's shadow period against the active model (every replica's
 * comparison, within the window), the fans with no finding whose alarms would open or close
 * differently are at most MODEL_GATE_MAX_ALARM_CHANGE; and the shadow saw enough readings.
 */
export function alarmChangeGate(
  comparisons: readonly ShadowComparison[],
  active: string,
  since: number,
  fansWithFinding: ReadonlySet<string>,
  settings: GateSettings,
): GateResult {
  const relevant = comparisons.filter((c) => c.active === active && Date.parse(c.at) >= since);
  const readings = relevant.reduce((n, c) => n + c.readings, 0);
  // 0 readings needed waives the shadow (a site that promotes on golden sets and findings alone).
  if (readings < settings.minShadowReadings || (relevant.length === 0 && settings.minShadowReadings > 0))
    return {
      gate: "alarm-change",
      passed: false,
      detail: `${readings} readings compared as a shadow of ${active}, ${settings.minShadowReadings} needed (MODEL_GATE_MIN_SHADOW_READINGS): let it shadow longer (\`fanwatch model shadow <id>\` starts one)`,
    };
  const opened = new Set(relevant.flatMap((c) => c.fans.opened).filter((f) => !fansWithFinding.has(f)));
  const closed = new Set(relevant.flatMap((c) => c.fans.closed).filter((f) => !fansWithFinding.has(f)));
  const changed = new Set([...opened, ...closed]).size;
  const passed = changed <= settings.maxAlarmChange;
  const list = (fans: Set<string>) => [...fans].slice(0, 5).join(", ") + (fans.size > 5 ? ", …" : "");
  const alarms = relevant.reduce((sum, c) => ({ a: sum.a + c.alarms.active, s: sum.s + c.alarms.shadow }), {
    a: 0,
    s: 0,
  });
  return {
    gate: "alarm-change",
    passed,
    detail:
      `${changed} fans without a finding would alarm differently ${passed ? "≤" : ">"} ${settings.maxAlarmChange} (MODEL_GATE_MAX_ALARM_CHANGE)` +
      (opened.size > 0 ? `; opened: ${list(opened)}` : "") +
      (closed.size > 0 ? `; closed: ${list(closed)}` : "") +
      `; alarms ${alarms.a} → ${alarms.s} over ${readings} readings`,
  };
}
