// npm run bench:score — the score function under load, with dynamic batching on and, as the
// baseline in the same run, off (SCORE_MAX_BATCH=1: one tensor call per request); and the ceiling:
// a bare node:http server that only parses and answers JSON. Rounds alternate between the three so
// that noise on this shared machine hits all of them; medians and ratios are reported.
// Progress goes to stderr; results to stdout as one JSON object per line, the summary last.
// BENCH_SECONDS (default 10) sets each wrk run's length, BENCH_ROUNDS (default 3) the rounds.
// BENCH_EXPLAIN=1 adds the cost of explanations ("explain": true): single readings and batches
// explained by the batching server each round, and the runtime alone in this process (plain and
// explained predictions of 1,000 readings, no HTTP).
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { freePort } from "../../lib/infra/net.js";
import { peakRssMb } from "../support/process-stats.js";
import { runWrk, type WrkResult } from "./wrk.js";

const CLI = fileURLToPath(new URL("../../../bin/fanwatch.js", import.meta.url));
const CEILING = fileURLToPath(new URL("./ceiling-server.js", import.meta.url));
const CONFIGS = ["batching", "baseline", "ceiling"] as const;
type Config = (typeof CONFIGS)[number];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const EXPLAIN = process.env.BENCH_EXPLAIN === "1";
const MODEL_DIR = fileURLToPath(new URL("../../../model/artifact", import.meta.url));
const CONNECTIONS = 64;
const BATCH_SIZE = 1000;

interface Measurement {
  config: Config;
  round: number;
  startupMs: number;
  single: WrkResult;
  batch: WrkResult;
  readingsPerSecond: number;
  rssMb: number;
  explain?: { single: WrkResult; batch: WrkResult; readingsPerSecond: number };
}

interface RuntimeMeasurement {
  round: number;
  plainReadingsPerSecond: number;
  explainedReadingsPerSecond: number;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

if (spawnSync("wrk", ["--version"]).error !== undefined) {
  progress("bench:score needs wrk: apt-get install -y wrk");
  process.exit(1);
}

const scriptDir = await mkdtemp(join(tmpdir(), "fanwatch-bench-"));
const single = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] });
const readings = Array.from({ length: BATCH_SIZE }, (_, i) => [
  500 + (i % 200),
  35 + (i % 20),
  100 + (i % 150),
  45 + (i % 15),
]);
const batch = JSON.stringify({ instances: readings });
const explainSingle = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9], explain: true });
const explainBatch = JSON.stringify({ instances: readings, explain: true });

const results: Measurement[] = [];
const runtime: RuntimeMeasurement[] = [];
const model = EXPLAIN ? await ScoringModel.load(MODEL_DIR) : undefined;
for (let round = 1; round <= ROUNDS; round++) {
  for (const config of CONFIGS) {
    progress(`round ${round}/${ROUNDS}: ${config} …`);
    const m = await measure(config, round, await freePort());
    results.push(m);
    progress(
      `  single ${m.single.requestsPerSecond.toFixed(0)} req/s (p50 ${m.single.p50Ms} ms, p99 ${m.single.p99Ms} ms), batches ${m.readingsPerSecond.toFixed(0)} readings/s, RSS ${m.rssMb} MB, first answer ${m.startupMs} ms`,
    );
    if (m.explain !== undefined) {
      progress(
        `  explained: single ${m.explain.single.requestsPerSecond.toFixed(0)} req/s (p50 ${m.explain.single.p50Ms} ms, p99 ${m.explain.single.p99Ms} ms), batches ${m.explain.readingsPerSecond.toFixed(0)} readings/s`,
      );
    }
    console.log(JSON.stringify({ kind: "measurement", ...m }));
  }
  if (model !== undefined) {
    const r = measureRuntime(model, round);
    runtime.push(r);
    progress(
      `  runtime alone: ${r.plainReadingsPerSecond.toFixed(0)} readings/s plain, ${r.explainedReadingsPerSecond.toFixed(0)} explained`,
    );
    console.log(JSON.stringify({ kind: "runtime", ...r }));
  }
}
model?.dispose();

const summary = { batching: summarize("batching"), baseline: summarize("baseline"), ceiling: summarize("ceiling") };
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
console.log(
  JSON.stringify({
    kind: "summary",
    connections: CONNECTIONS,
    seconds: SECONDS,
    rounds: ROUNDS,
    batchSize: BATCH_SIZE,
    ...summary,
    singleSpeedupVsBaseline: ratio(summary.batching.singleRequestsPerSecond, summary.baseline.singleRequestsPerSecond),
    singleShareOfCeiling: ratio(summary.batching.singleRequestsPerSecond, summary.ceiling.singleRequestsPerSecond),
    batchShareOfCeiling: ratio(summary.batching.batchReadingsPerSecond, summary.ceiling.batchReadingsPerSecond),
    ...(EXPLAIN ? { explain: summarizeExplain() } : {}),
  }),
);

/**
 * Explanations against plain scoring, both from the batching server's runs and from the runtime
 * alone. Shares are medians of each round's own ratio (explained and plain measured in the same
 * process, minutes apart at most), which the load of a shared machine moves less than the rates.
 */
function summarizeExplain() {
  const runs = results.filter(
    (r): r is Measurement & { explain: NonNullable<Measurement["explain"]> } => r.explain !== undefined,
  );
  return {
    singleRequestsPerSecond: median(runs.map((r) => r.explain.single.requestsPerSecond)),
    singleP50Ms: median(runs.map((r) => r.explain.single.p50Ms)),
    singleP99Ms: median(runs.map((r) => r.explain.single.p99Ms)),
    batchReadingsPerSecond: median(runs.map((r) => r.explain.readingsPerSecond)),
    singleShareOfPlain: median(runs.map((r) => ratio(r.explain.single.requestsPerSecond, r.single.requestsPerSecond))),
    batchShareOfPlain: median(runs.map((r) => ratio(r.explain.readingsPerSecond, r.readingsPerSecond))),
    runtimePlainReadingsPerSecond: median(runtime.map((r) => r.plainReadingsPerSecond)),
    runtimeExplainedReadingsPerSecond: median(runtime.map((r) => r.explainedReadingsPerSecond)),
    runtimeShareOfPlain: median(runtime.map((r) => ratio(r.explainedReadingsPerSecond, r.plainReadingsPerSecond))),
    errors: runs.reduce((n, r) => n + r.explain.single.errors + r.explain.batch.errors, 0),
  };
}

/** The runtime alone: medians of 31 timed calls of 1,000 readings each, plain and explained, answers built as score builds them. */
function measureRuntime(scoring: ScoringModel, round: number): RuntimeMeasurement {
  const time = (work: () => unknown) => {
    for (let i = 0; i < 5; i++) work(); // warm-up
    const ms = Array.from({ length: 31 }, () => {
      const started = performance.now();
      work();
      return performance.now() - started;
    });
    return BATCH_SIZE / (median(ms) / 1000);
  };
  return {
    round,
    plainReadingsPerSecond: Math.round(time(() => scoring.predict(readings))),
    explainedReadingsPerSecond: Math.round(time(() => scoring.predictExplained(readings))),
  };
}

function summarize(config: Config) {
  const runs = results.filter((r) => r.config === config);
  return {
    singleRequestsPerSecond: median(runs.map((r) => r.single.requestsPerSecond)),
    singleP50Ms: median(runs.map((r) => r.single.p50Ms)),
    singleP99Ms: median(runs.map((r) => r.single.p99Ms)),
    batchReadingsPerSecond: median(runs.map((r) => r.readingsPerSecond)),
    rssMb: median(runs.map((r) => r.rssMb)),
    startupMs: median(runs.map((r) => r.startupMs)),
    errors: runs.reduce((n, r) => n + r.single.errors + r.batch.errors, 0),
  };
}

async function measure(config: Config, round: number, port: number): Promise<Measurement> {
  const env = { ...process.env, LOG_LEVEL: "silent", ...(config === "baseline" ? { SCORE_MAX_BATCH: "1" } : {}) };
  const args = config === "ceiling" ? [CEILING, String(port)] : [CLI, "function", "score", "--port", String(port)];
  const started = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: "ignore" });
  try {
    await firstAnswer(`http://127.0.0.1:${port}/`);
    const startupMs = Math.round(performance.now() - started);
    await runWrk(`http://127.0.0.1:${port}/`, single, { connections: CONNECTIONS, seconds: 2, scriptDir }); // warm-up
    const singleResult = await runWrk(`http://127.0.0.1:${port}/`, single, {
      connections: CONNECTIONS,
      seconds: SECONDS,
      scriptDir,
    });
    const batchResult = await runWrk(`http://127.0.0.1:${port}/`, batch, {
      connections: 4,
      seconds: SECONDS,
      scriptDir,
    });
    let explain: Measurement["explain"];
    if (EXPLAIN && config === "batching") {
      const explainedSingle = await runWrk(`http://127.0.0.1:${port}/`, explainSingle, {
        connections: CONNECTIONS,
        seconds: SECONDS,
        scriptDir,
      });
      const explainedBatch = await runWrk(`http://127.0.0.1:${port}/`, explainBatch, {
        connections: 4,
        seconds: SECONDS,
        scriptDir,
      });
      explain = {
        single: explainedSingle,
        batch: explainedBatch,
        readingsPerSecond: explainedBatch.requestsPerSecond * BATCH_SIZE,
      };
    }
    const rssMb = await peakRssMb(child.pid);
    return {
      config,
      round,
      startupMs,
      single: singleResult,
      batch: batchResult,
      readingsPerSecond: batchResult.requestsPerSecond * BATCH_SIZE,
      rssMb,
      ...(explain === undefined ? {} : { explain }),
    };
  } finally {
    child.kill("SIGTERM");
  }
}

async function firstAnswer(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: single,
      });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`no answer from ${url} within 30 s`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
