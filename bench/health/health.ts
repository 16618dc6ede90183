/**
 * `npm run bench:health`: the health rules against ground truth, at accelerated time. Simulated
 * fleets (simulation/fleet-model.ts) are scored in-process by the real model (wasm backend) and fed
 * (faulty readings explained, as predict asks score to) to evaluate() with simulated reading and
 * arrival times, fan by fan, so days of readings take
 * seconds and nothing depends on the wall clock. docs/health.md explains the numbers.
 *
 * Two families of fans per seed: the reference fleet (MIX: every fan drawing from the fleet's whole
 * healthy range, today's shapes), and own-level fans (each at its own level with a smaller spread):
 * healthy and noisy ones for `days`, and drifting ones (one sensor, or two together) at each speed of
 * DRIFT_HOURS, each run until 2 h after its failure whatever `days` is.
 *
 *   node dist/bench/health/health.js [--short] [--seeds 10] [--seed-base 1000] [--days 5] [--degrade-hours 6] [--quality | --pipeline]
 *
 * Then, unless --quality, the end-to-end part (bench/pipeline/with-health.ts): readings/s through the
 * real pipeline with health on every reading, and the prediction path alone, in the same run.
 *
 * stdout: one JSON line per seed and a summary line (the reference fleet's numbers at its top level, as
 * before, and both families' under `families`); stderr: progress and the tables. HEALTH_*
 * variables change the policy as they change the function's (docs/health.md), to compare policies.
 */
import { parseArgs } from "node:util";
import { checkSilence, evaluate, type FanHealth } from "../../functions/health/evaluator.js";
import { readHealthPolicy } from "../../functions/health/policy.js";
import { SIDES, statistic, type DriftTrack } from "../../functions/health/drift.js";
import { FEATURES } from "../../lib/domain/features.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import type { ExplainedVerdict, Prediction } from "../../lib/domain/prediction.js";
import type { Readings } from "../../simulation/fan-profiles.js";
import { createFleet, type FleetModelOptions, type SimulatedFan } from "../../simulation/fleet-model.js";
import {
  outcome,
  READINGS_PER_DAY,
  speedLabel,
  summarise,
  type FanOutcome,
  type Seen,
  type ShapeSummary,
  type Summary,
} from "./metrics.js";

const INTERVAL_MS = 2_000;
const CHUNK = 4_096;
/** Fault fans run this long after they failed: long enough to see an alarm flap if it would. */
const AFTER_FAILURE_READINGS = (2 * 3_600_000) / INTERVAL_MS;
const START = Date.UTC(2026, 0, 1);

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    seeds: { type: "string" },
    "seed-base": { type: "string" },
    days: { type: "string" },
    "degrade-hours": { type: "string" },
    quality: { type: "boolean", default: false },
    pipeline: { type: "boolean", default: false },
  },
});
/** Both parts unless one is asked for: --quality (the rules at accelerated time) or --pipeline (end to end, wall clock). */
const parts = {
  quality: args.quality === true || args.pipeline !== true,
  pipeline: args.pipeline === true || args.quality !== true,
};
const short = args.short ?? false;
const seeds = Number(args.seeds ?? (short ? 2 : 10));
/** The first seed: calibrate on one range of seeds, validate on another. */
const seedBase = Number(args["seed-base"] ?? 1000);
const days = Number(args.days ?? (short ? 0.25 : 5));
const degradeHours = Number(args["degrade-hours"] ?? (short ? 1 : 6));
/** Per seed: 10 healthy and 10 noisy fans for `days` (10 seeds × 20 fans × 5 days = 1,000 fan-days), and 14 that fail. */
const MIX = { fans: 34, faulty: 3, sudden: 3, degrading: 4, bearing: 4, noisy: 10 };
/** Per seed, own-level fans: 5 healthy and 5 noisy for `days`… */
const OWN_LEVEL_MIX = { fans: 10, faulty: 0, degrading: 0, noisy: 5, ownLevels: true };
/** …and at each speed, four fans with one sensor drifting (one per sensor) and two with a pair. */
const DRIFT_MIX = { fans: 6, faulty: 0, degrading: 0, drift: 4, driftPair: 2, ownLevels: true };
const DRIFT_HOURS = short ? [0.5, 2] : [0.5, 2, 6, 24];
/**
 * A drift starts once the fan has run healthy long enough for its baseline to be learnt: at a
 * random moment within [2 h, 2 h + 1 day) (--short: [1 h, 2 h)).
 */
const DRIFT_ONSET = short
  ? { onsetAfterMs: 3_600_000, onsetMs: 3_600_000 }
  : { onsetAfterMs: 2 * 3_600_000, onsetMs: 86_400_000 };

const policy = readHealthPolicy();
let evaluated = 0;
let lastProgress = 0;

/** One line rewritten in place on a terminal; a line every 10 s into a file. */
function progress(line: string): void {
  const now = Date.now();
  if (now - lastProgress < (process.stderr.isTTY ? 500 : 10_000)) return;
  lastProgress = now;
  process.stderr.write(process.stderr.isTTY ? `\r${line}   ` : `${line}\n`);
}
let evaluateNs = 0n;

async function main(): Promise<void> {
  const model = await ScoringModel.load("model/artifact", { backend: "wasm" });
  const totalReadings = Math.round(days * READINGS_PER_DAY);
  process.stderr.write(
    `bench:health: ${seeds} seeds, ${MIX.fans} fans each (${MIX.faulty} faulty, ${MIX.sudden} sudden, ${MIX.degrading} degrading, ${MIX.bearing} bearing, ${MIX.noisy} noisy, the rest healthy), ${days} days at ${INTERVAL_MS / 1000} s, wear-out ${degradeHours} h, model ${model.metadata.id} on ${model.backend}\n`,
  );
  process.stderr.write(
    `  and own-level fans: ${OWN_LEVEL_MIX.fans - OWN_LEVEL_MIX.noisy} healthy + ${OWN_LEVEL_MIX.noisy} noisy for ${days} days, ${DRIFT_MIX.drift} drift + ${DRIFT_MIX.driftPair} drift-pair at each of ${DRIFT_HOURS.map((h) => speedLabel(h)).join(", ")}, seeds from ${seedBase}\n`,
  );
  const all: FanOutcome[] = [];
  const allOwn: FanOutcome[] = [];
  const started = Date.now();
  const fleetOf = (options: Omit<FleetModelOptions, "intervalMs">) =>
    createFleet({ ...options, intervalMs: INTERVAL_MS });
  for (let s = 0; s < seeds; s++) {
    const seed = seedBase + s;
    let done = 0;
    const runFleet = (fleet: SimulatedFan[], limit: (fan: SimulatedFan) => number) =>
      fleet.map((fan) => {
        progress(
          `seed ${s + 1}/${seeds} fan ${++done}, ${(evaluated / 1e6).toFixed(1)} M readings evaluated, ${((Date.now() - started) / 1000).toFixed(0)} s`,
        );
        return runFan(model, fan, limit(fan));
      });
    const reference = runFleet(
      fleetOf({
        ...MIX,
        degradeMs: degradeHours * 3_600_000,
        onsetMs: Math.min(days * 86_400_000, degradeHours * 3_600_000),
        seed,
      }),
      (fan) => untilAfterFailure(fan, totalReadings),
    );
    // Own-level fleets take seeds of their own, so that no fan shares its stream with a reference fan.
    const ownLevel = [
      ...runFleet(
        fleetOf({ ...OWN_LEVEL_MIX, degradeMs: 1, onsetMs: 0, seed: ownLevelSeed(seed, 0) }),
        () => totalReadings,
      ),
      ...DRIFT_HOURS.flatMap((hours, j) =>
        runFleet(
          fleetOf({ ...DRIFT_MIX, ...DRIFT_ONSET, degradeMs: hours * 3_600_000, seed: ownLevelSeed(seed, j + 1) }),
          (fan) => untilAfterFailure(fan, Number.POSITIVE_INFINITY),
        ),
      ),
    ];
    all.push(...reference);
    allOwn.push(...ownLevel);
    if (process.env.BENCH_HEALTH_FANS === "1")
      for (const o of [...reference, ...ownLevel]) process.stderr.write(`\n${JSON.stringify(o)}`);
    process.stdout.write(JSON.stringify({ seed, ...summarise(reference), ownLevel: summarise(ownLevel) }) + "\n");
  }
  process.stderr.write("\n");
  const summary = summarise(all);
  const ownSummary = summarise(allOwn);
  const rate = evaluated / (Number(evaluateNs) / 1e9);
  process.stdout.write(
    JSON.stringify({
      summary: true,
      seeds,
      seedBase,
      days,
      degradeHours,
      driftHours: DRIFT_HOURS,
      policy: { ...policy, healthyRanges: undefined },
      evaluateReadingsPerSecond: Math.round(rate),
      ...summary,
      families: { reference: summary, ownLevel: ownSummary },
    }) + "\n",
  );
  process.stderr.write(table(summary, rate));
  process.stderr.write(`\n${familyTable({ reference: summary, "own-level": ownSummary })}`);
  model.dispose();
}

/** A fan's readings: `readings`, but a fan that fails stops 2 h after its failure. */
function untilAfterFailure(fan: SimulatedFan, readings: number): number {
  const fails = fan.truth.failsAtReading;
  return fails === null ? readings : Math.min(readings, fails + AFTER_FAILURE_READINGS);
}

/** The seed of a seed's own-level fleet `j` (0: healthy and noisy, then one per drift speed). */
function ownLevelSeed(seed: number, j: number): number {
  return seed * 16 + 1 + j;
}

function runFan(model: ScoringModel, fan: SimulatedFan, limit: number): FanOutcome {
  let state: FanHealth | undefined;
  const healthyUntil = fan.truth.wearStartsAtReading ?? fan.truth.failsAtReading ?? Infinity;
  let driftPeak = 0;
  const seen: Seen[] = [];
  const rows: number[][] = [];
  for (let base = 0; base < limit; base += CHUNK) {
    const n = Math.min(CHUNK, limit - base);
    rows.length = 0;
    const readings = Array.from({ length: n }, () => fan.next());
    for (const r of readings) rows.push(FEATURES.map((f) => r[f]));
    const probabilities = model.probabilities(rows);
    const predictions: Prediction[] = readings.map((reading, i) => ({
      ...model.toVerdict(probabilities[i] as number),
      deviceID: fan.deviceID,
      reading,
    }));
    // As predict does: faulty readings, and only those, carry score's explanation.
    const faulty = predictions.filter((p) => p.fault === 1);
    if (faulty.length > 0) {
      const explained = model.predictExplained(faulty.map((p) => FEATURES.map((f) => (p.reading as Readings)[f])));
      faulty.forEach((p, i) => {
        const e = explained[i] as ExplainedVerdict;
        p.cause = e.cause;
        p.contributions = e.contributions;
      });
    }
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const at = START + (base + i) * INTERVAL_MS;
      const result = evaluate(state, fan.deviceID, [{ prediction: predictions[i] as Prediction, at }], at, policy);
      state = result.next;
      for (const transition of result.transitions) seen.push({ idx: base + i, transition });
      if (base + i < healthyUntil) driftPeak = Math.max(driftPeak, peakStatistic(state.tracker.drift));
    }
    evaluateNs += process.hrtime.bigint() - t0;
    evaluated += n;
    // The silence timer runs between readings too: a fan reporting every 2 s must never be silent.
    if (
      state !== undefined &&
      checkSilence(state, START + (base + n - 1) * INTERVAL_MS + INTERVAL_MS, policy) !== undefined
    )
      throw new Error(`fan ${fan.deviceID} went silent while reporting`);
  }
  return outcome(fan.truth, limit, seen, INTERVAL_MS, driftPeak);
}

/** The largest drift statistic of any side (0 before the fan has a baseline). */
function peakStatistic(drift: DriftTrack | undefined): number {
  let peak = 0;
  if (drift !== undefined) for (let side = 0; side < SIDES; side++) peak = Math.max(peak, statistic(drift, side));
  return peak;
}

const pct = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(0)}%`);
const num = (x: number | null, digits = 1) => (x === null ? "–" : x.toFixed(digits));

function table(s: Summary, rate: number): string {
  const rows: Array<[string, string, string]> = [
    ["faulty + sudden fans alarmed", `${pct(s.faulty.alarmed)} of ${s.faulty.fans}`, "100%"],
    [
      "readings until the alarm: median / p95 / max",
      `${num(s.faulty.readingsToAlarmMedian, 0)} / ${num(s.faulty.readingsToAlarmP95, 0)} / ${num(s.faulty.readingsToAlarmMax, 0)}`,
      "median ≤ 5",
    ],
    [
      `false alarms per 1,000 fan-days (${s.healthy.fanDays.toFixed(0)} healthy + noisy fan-days)`,
      `${num(s.healthy.falseAlarmsPer1000FanDays, 2)} (${s.healthy.falseAlarms})`,
      "0",
    ],
    [
      "false warnings per 1,000 fan-days",
      `${num(s.healthy.falseWarningsPer1000FanDays, 2)} (${s.healthy.falseWarnings})`,
      "≤ 1",
    ],
    [
      `alarms / warnings before the fault (${s.healthy.beforeFaultFanDays.toFixed(1)} fan-days of failing fans)`,
      `${s.healthy.beforeFaultFalseAlarms} / ${s.healthy.beforeFaultFalseWarnings}`,
      "0",
    ],
    ["wearing fans warned before the alarm", `${pct(s.wearing.warnedBeforeAlarm)} of ${s.wearing.fans}`, "100%"],
    [
      "lead before failure, share of wear-out: median / min",
      `${pct(s.wearing.leadShareMedian)} / ${pct(s.wearing.leadShareMin)}`,
      "median ≥ 33%",
    ],
    ["the alarm comes after this share of the wear-out: median", pct(s.wearing.alarmShareOfWearMedian), ""],
    [
      "warning to alarm, share of wear start to alarm: median / min",
      `${pct(s.wearing.warnShareOfRunUpMedian)} / ${pct(s.wearing.warnShareOfRunUpMin)}`,
      "",
    ],
    ["readings from warning to alarm: median", num(s.wearing.warnToAlarmReadingsMedian, 0), ""],
    [
      "eta / actual time to alarm: p10 / median / p90",
      `${num(s.wearing.etaRatioP10, 2)} / ${num(s.wearing.etaRatioMedian, 2)} / ${num(s.wearing.etaRatioP90, 2)}`,
      "≈ 1",
    ],
    [
      "bearing fans: warning / alarm with cause vibration",
      `${pct(s.wearing.bearingCauseVibration)} / ${pct(s.wearing.bearingAlarmCauseVibration)}`,
      "100%",
    ],
    ["alarms raised more than once per episode", `${s.flapping.extraAlarms} in ${s.flapping.episodes} episodes`, "0"],
    ["evaluate() alone, readings/s (one core)", rate.toFixed(0), "≥ 5,000"],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`).join("\n") + "\n";
}

/**
 * Per family, false warnings and alarms, and per wearing shape (and speed) when the first warning
 * came (0: the start of the wear, 1: the alarm), whether it named the drifting sensors, its basis
 * (baseline / fleet-range / not said), its eta against the real time to the alarm, and how often
 * the alarm came within its interval.
 */
function familyTable(families: Record<string, Summary>): string {
  const head = [
    "",
    "fans",
    "warned",
    "position first/median/last",
    "named",
    "basis b/f/–",
    "eta p10/med/p90",
    "in interval",
  ];
  const rows: string[][] = [];
  const shapeRow = (label: string, s: ShapeSummary) => [
    label,
    String(s.fans),
    `${s.warned}${s.notAlarmed > 0 ? ` (${s.notAlarmed} no alarm)` : ""}`,
    `${num(s.warningPositionEarliest, 2)} / ${num(s.warningPositionMedian, 2)} / ${num(s.warningPositionLatest, 2)}`,
    pct(s.namedDriftingShare),
    `${s.basisBaseline}/${s.basisFleetRange}/${s.basisNone}`,
    `${num(s.etaRatioP10, 2)} / ${num(s.etaRatioMedian, 2)} / ${num(s.etaRatioP90, 2)}`,
    intervalCell(s.interval),
  ];
  for (const [family, summary] of Object.entries(families)) {
    const h = summary.healthy;
    rows.push([
      `${family}: false warnings / alarms per 1,000 fan-days: ${num(h.falseWarningsPer1000FanDays, 2)} / ${num(h.falseAlarmsPer1000FanDays, 2)} (${h.falseWarnings} / ${h.falseAlarms} in ${h.fanDays.toFixed(1)} healthy + noisy fan-days); before the wear or fault ${num(h.beforeFaultFalseWarningsPer1000FanDays, 2)} / ${num(h.beforeFaultFalseAlarmsPer1000FanDays, 2)} (${h.beforeFaultFalseWarnings} / ${h.beforeFaultFalseAlarms} in ${h.beforeFaultFanDays.toFixed(1)} fan-days); highest drift statistic while healthy ${num(h.driftPeak, 1)} (warns at ${policy.driftH})`,
    ]);
    for (const [shape, s] of Object.entries(summary.shapes)) {
      rows.push(shapeRow(`  ${shape}`, s));
      for (const [speed, sp] of Object.entries(s.speeds ?? {})) rows.push(shapeRow(`    ${speed}`, sp));
    }
    rows.push(shapeRow("  all wearing", summary.allWearing));
  }
  const table = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...table.filter((r) => r.length > 1).map((r) => (r[i] ?? "").length)));
  return (
    table
      .map((r) =>
        r.length === 1
          ? r[0]
          : r.map((c, i) => (i === 0 ? c.padEnd(widths[0] as number) : c.padStart(widths[i] as number))).join("  "),
      )
      .join("\n") + "\n"
  );
}

/** covered / judged (stated coverage), and how many warnings gave no interval. */
function intervalCell(i: ShapeSummary["interval"]): string {
  return `${i.covered}/${i.withInterval} = ${pct(i.coverage)} (stated ${pct(i.statedCoverage)})${i.withoutInterval > 0 ? `, ${i.withoutInterval} without` : ""}`;
}

async function run(): Promise<void> {
  if (parts.quality) await main();
  if (parts.pipeline) {
    // The rules' quality needs no servers; throughput and latency need the whole pipeline.
    const { benchHealthPipeline } = await import("../pipeline/with-health.js");
    await benchHealthPipeline();
  }
}

run().catch((error: unknown) => {
  process.stderr.write(`\nbench:health: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
