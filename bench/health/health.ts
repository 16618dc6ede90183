/**
 * `npm run bench:health`: the health rules against ground truth, at accelerated time. Simulated
 * fleets (simulation/fleet-model.ts) are scored in-process by the real model (wasm backend) and fed
 * (faulty readings explained, as predict asks score to) to evaluate() with simulated reading and
 * arrival times, fan by fan, so days of readings take
 * seconds and nothing depends on the wall clock. docs/health.md explains the numbers.
 *
 *   node dist/bench/health/health.js [--short] [--seeds 10] [--days 5] [--degrade-hours 6] [--quality | --pipeline]
 *
 * Then, unless --quality, the end-to-end part (bench/pipeline/with-health.ts): readings/s through the
 * real pipeline with health on every reading, and the prediction path alone, in the same run.
 *
 * stdout: one JSON line per seed and a summary line; stderr: progress and the table. HEALTH_*
 * variables change the policy as they change the function's (docs/health.md), to compare policies.
 */
import { parseArgs } from "node:util";
import { checkSilence, evaluate, type FanHealth } from "../../functions/health/evaluator.js";
import { readHealthPolicy } from "../../functions/health/policy.js";
import { FEATURES } from "../../lib/domain/features.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import type { ExplainedVerdict, Prediction } from "../../lib/domain/prediction.js";
import type { Readings } from "../../simulation/fan-profiles.js";
import { createFleet, type SimulatedFan } from "../../simulation/fleet-model.js";
import { outcome, READINGS_PER_DAY, summarise, type FanOutcome, type Seen, type Summary } from "./metrics.js";

const INTERVAL_MS = 2_000;
const CHUNK = 4_096;
/** Fault fans run this long after they failed: long enough to see an alarm flap if it would. */
const AFTER_FAILURE_READINGS = (2 * 3_600_000) / INTERVAL_MS;
const START = Date.UTC(2026, 0, 1);

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    seeds: { type: "string" },
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
const days = Number(args.days ?? (short ? 0.25 : 5));
const degradeHours = Number(args["degrade-hours"] ?? (short ? 1 : 6));
/** Per seed: 10 healthy and 10 noisy fans for `days` (10 seeds × 20 fans × 5 days = 1,000 fan-days), and 14 that fail. */
const MIX = { fans: 34, faulty: 3, sudden: 3, degrading: 4, bearing: 4, noisy: 10 };

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
  const all: FanOutcome[] = [];
  const started = Date.now();
  for (let s = 0; s < seeds; s++) {
    const seed = 1000 + s;
    const fleet = createFleet({
      ...MIX,
      intervalMs: INTERVAL_MS,
      degradeMs: degradeHours * 3_600_000,
      onsetMs: Math.min(days * 86_400_000, degradeHours * 3_600_000),
      seed,
    });
    const outcomes = fleet.map((fan, i) => {
      progress(
        `seed ${s + 1}/${seeds} fan ${i + 1}/${fleet.length}, ${(evaluated / 1e6).toFixed(1)} M readings evaluated, ${((Date.now() - started) / 1000).toFixed(0)} s`,
      );
      return runFan(model, fan, totalReadings);
    });
    all.push(...outcomes);
    if (process.env.BENCH_HEALTH_FANS === "1") for (const o of outcomes) process.stderr.write(`\n${JSON.stringify(o)}`);
    process.stdout.write(JSON.stringify({ seed, ...summarise(outcomes) }) + "\n");
  }
  process.stderr.write("\n");
  const summary = summarise(all);
  const rate = evaluated / (Number(evaluateNs) / 1e9);
  process.stdout.write(
    JSON.stringify({
      summary: true,
      seeds,
      days,
      degradeHours,
      policy: { ...policy, healthyRanges: undefined },
      evaluateReadingsPerSecond: Math.round(rate),
      ...summary,
    }) + "\n",
  );
  process.stderr.write(table(summary, rate));
  model.dispose();
}

function runFan(model: ScoringModel, fan: SimulatedFan, totalReadings: number): FanOutcome {
  const fails = fan.truth.failsAtReading;
  const limit = fails === null ? totalReadings : Math.min(totalReadings, fails + AFTER_FAILURE_READINGS);
  let state: FanHealth | undefined;
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
  return outcome(fan.truth, limit, seen, INTERVAL_MS);
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
