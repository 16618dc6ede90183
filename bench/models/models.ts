// npm run bench:models — model swaps and a shadow under load, through the real pipeline with health
// on (system.ts: Mosquitto, the connector, the local gateway with 2 score, 2 predict and 1 health
// replicas, fixed, and a real nats-server holding the model registry). A fleet of FANS fans sends
// RATE readings/s throughout.
// - Swaps: for SWAP_SECONDS, every SWAP_EVERY_S a promote (to a second version: the shipped model
//   pushed with another parent, so another id with the same answers) then a rollback, alternating,
//   each one compare-and-set of the pointer (ModelRegistry.setPointer), as `fanwatch model` does.
//   Per swap: the time from the pointer's write until every score replica's status names the new
//   active model, and until the old model's last prediction arrived. Per 1-s window (by publish
//   time): p99 of publish → prediction, windows within 1 s of a swap against the steady ones.
// - Shadow cost: COST_ROUNDS rounds of a phase without a shadow then one with the second version as
//   the shadow, COST_SECONDS each at the same rate: CPU ms per 1,000 readings from /proc per process.
// Failed requests per phase (the failure counters that grew in it): the connector's and gateway's,
// each function replica's own, and dead letters; lost readings = sent − predictions received.
// Progress goes to stderr; JSON lines to stdout, the summary last.
import { join } from "node:path";
import { sumComparisons } from "../../lib/models/comparison-sum.js";
import { bundleFromDirectory } from "../../lib/models/bundle.js";
import type { ActivePointer } from "../../lib/models/schemas.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { reading } from "../pipeline/with-health.js";
import { cpuByProcess, cpuMsPer1000, publishPaced, quantile, waitUntilDone } from "../support/load-step.js";
import { failureCounts, grown } from "./metrics.js";
import { SITE, startSystem, type System } from "./system.js";
import { splitWindows, spread } from "./windows.js";

const RATE = Number(process.env.BENCH_RATE ?? 5000);
const FANS = Number(process.env.BENCH_FANS ?? 200);
const SWAP_SECONDS = Number(process.env.BENCH_SWAP_SECONDS ?? 60);
const SWAP_EVERY_S = Number(process.env.BENCH_SWAP_EVERY_S ?? 8);
const COST_SECONDS = Number(process.env.BENCH_COST_SECONDS ?? 15);
const COST_ROUNDS = Number(process.env.BENCH_COST_ROUNDS ?? 3);
const REPLICAS = { score: 2, predict: Number(process.env.BENCH_PREDICT_REPLICAS ?? 2), health: 1 };

const say = (line: string) => process.stderr.write(`${line}\n`);
const emit = (value: unknown) => console.log(JSON.stringify(value));

interface Sent {
  sentAt: number;
  into: Array<{ sentAt: number; ms: number }>;
}

say(`starting Mosquitto, nats-server, the gateway (score ×2, predict ×${REPLICAS.predict}, health ×1), the connector`);
const system = await startSystem({ replicas: REPLICAS });
try {
  await runBench(system);
} finally {
  await system.stop();
}

async function runBench(system: System): Promise<void> {
  const { registry } = system;
  // Every score replica has bootstrapped the site and serves its first version.
  if (!(await system.untilStatuses((all) => all.length >= REPLICAS.score, 120_000)))
    throw new Error(`fewer than ${REPLICAS.score} score replicas wrote a status within 2 minutes`);
  const first = (await registry.pointer(SITE))?.pointer.active as string;
  const bundle = await bundleFromDirectory(join(REPO_ROOT, "model/artifact"), { parent: first });
  const second = (await registry.push(bundle, "bench:models")).id;
  say(`versions: ${first} (shipped), ${second} (the same model, parent ${first})`);

  const pending = new Map<string, Sent>();
  /** The swaps so far; the newest learns when the model it replaced answered last. */
  const swaps: Array<{
    kind: "promote" | "rollback";
    to: string;
    from: string;
    at: number;
    allServeMs?: number;
    lastOldPredictionMs?: number;
  }> = [];
  const byModel: Record<string, number> = {};
  let sentTotal = 0;
  let published = 0;
  let received = 0;
  system.onArrival(({ key, model, at }) => {
    const sent = pending.get(key);
    if (sent === undefined) return; // a duplicate (QoS 1)
    pending.delete(key);
    received++;
    sent.into.push({ sentAt: sent.sentAt, ms: at - sent.sentAt });
    const name = model ?? "unnamed";
    const swap = swaps.at(-1);
    if (swap !== undefined && name === swap.from && at >= swap.at) swap.lastOldPredictionMs = at - swap.at;
    byModel[name] = (byModel[name] ?? 0) + 1;
  });
  const lastAt: number[] = [];
  const failuresNow = async () => ({ ...failureCounts(await system.metrics()), deadLetters: system.deadLetters() });
  const failures: Record<string, Record<string, number>> = {};
  /** Publishes at RATE for `seconds`, fan after fan; resolves once every reading arrived or nothing moved for 5 s. */
  const phase = async (name: string, seconds: number) => {
    const into: Sent["into"] = [];
    const failedBefore = await failuresNow();
    const cpuBefore = await cpuByProcess(system.pids());
    const start = Date.now();
    const progress = setInterval(
      () => say(`    ${Math.round((Date.now() - start) / 1000)} s: ${received} of ${published} predicted`),
      5_000,
    );
    const sent = await publishPaced(RATE, seconds, (n) => {
      const fan = n % FANS;
      const deviceID = `bench-${fan}`;
      const sentAt = Date.now();
      // Distinct times per fan: a prediction names its reading by fan and time.
      const at = Math.max(sentAt, (lastAt[fan] ?? 0) + 1);
      lastAt[fan] = at;
      published++;
      pending.set(`${deviceID}@${at}`, { sentAt, into });
      return system.publisher.publishAsync(
        "fan/messages",
        JSON.stringify({ deviceID, timeStamp: at, ...reading(fan, n) }),
        { qos: 1 },
      );
    });
    sentTotal += sent;
    await waitUntilDone(() => into.length, sent, 5_000);
    clearInterval(progress);
    const cpu = byFunction(cpuMsPer1000(cpuBefore, await cpuByProcess(system.pids()), sent));
    failures[name] = grown(failedBefore, await failuresNow());
    const sorted = into.map((r) => r.ms).sort((a, b) => a - b);
    return {
      start,
      into,
      sent,
      lost: sent - into.length,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      cpu,
    };
  };
  /** Moves the pointer by compare-and-set, as `fanwatch model` does; resolves with the write's time. */
  const move = async (change: Pick<ActivePointer, "active" | "previous" | "shadow" | "reason">) => {
    const current = await registry.pointer(SITE);
    if (current === undefined) throw new Error(`site ${SITE} has no pointer`);
    const at = Date.now();
    const pointer = {
      ...current.pointer,
      ...change,
      by: "bench:models",
      at: new Date(at).toISOString(),
      forced: false,
    };
    await registry.setPointer(SITE, pointer, current.revision);
    return at;
  };
  const allServe = (active: string, shadow: string | null) =>
    system.untilStatuses(
      (all) => all.length >= REPLICAS.score && all.every((s) => s.active === active && s.shadow === shadow),
    );

  say(`warm-up: ${RATE} readings/s for 5 s`);
  await phase("warm-up", 5);

  // Swaps under load.
  say(`swaps: ${RATE} readings/s for ${SWAP_SECONDS} s, a promote or rollback every ${SWAP_EVERY_S} s`);
  const timers: NodeJS.Timeout[] = [];
  const pendingSwaps: Array<Promise<void>> = [];
  for (let t = SWAP_EVERY_S / 2, i = 0; t < SWAP_SECONDS - 1; t += SWAP_EVERY_S, i++) {
    const kind = i % 2 === 0 ? "promote" : "rollback";
    timers.push(
      setTimeout(() => {
        const [to, from] = kind === "promote" ? [second, first] : [first, second];
        const swap: (typeof swaps)[number] = { kind, to, from, at: Date.now() };
        swaps.push(swap);
        pendingSwaps.push(
          (async () => {
            swap.at = await move({ active: to, previous: from, shadow: null, reason: kind });
            if (await allServe(to, null)) swap.allServeMs = Date.now() - swap.at;
            say(
              `    ${kind} to ${to}: ${swap.allServeMs === undefined ? "NOT served by every replica within 30 s" : `every replica serves it ${swap.allServeMs} ms after the pointer's write`}`,
            );
          })(),
        );
      }, t * 1000),
    );
  }
  const swapPhase = await phase("swaps", SWAP_SECONDS);
  for (const timer of timers) clearTimeout(timer);
  await Promise.all(pendingSwaps);
  const windows = splitWindows(
    swapPhase.into,
    swapPhase.start,
    swaps.map((s) => s.at),
  );
  for (const window of windows.windows) emit({ kind: "window", ...window });
  // lastOldPredictionMs: calls in flight when the pointer moved finish on the model they began with.
  const swapLines = swaps.map((s) => ({
    kind: "swap",
    swap: s.kind,
    to: s.to,
    allServeMs: s.allServeMs,
    lastOldPredictionMs: s.lastOldPredictionMs ?? null,
  }));
  for (const line of swapLines) emit(line);
  const swapSummary = {
    readings: swapPhase.sent,
    lost: swapPhase.lost,
    failures: failures.swaps,
    p99Ms: swapPhase.p99Ms,
    swapWindowP99Ms: spread(windows.swap),
    steadyWindowP99Ms: spread(windows.steady),
    promoteAllServeMs: spread(swapLines.filter((s) => s.swap === "promote").map((s) => s.allServeMs ?? NaN)),
    rollbackAllServeMs: spread(swapLines.filter((s) => s.swap === "rollback").map((s) => s.allServeMs ?? NaN)),
    firstPromoteAllServeMs: swapLines[0]?.allServeMs,
    lastOldPredictionMs: spread(swapLines.flatMap((s) => s.lastOldPredictionMs ?? [])),
  };
  emit({ kind: "swaps", ...swapSummary });
  say(`  ${JSON.stringify(swapSummary)}`);

  // Shadow cost: back to the first version, then rounds without and with the second as the shadow.
  const now = await registry.pointer(SITE);
  if (now?.pointer.active !== first) await move({ active: first, previous: second, shadow: null, reason: "rollback" });
  if (!(await allServe(first, null))) throw new Error(`the replicas do not all serve ${first}`);
  const rounds: Array<{ without: Record<string, number>; with: Record<string, number> }> = [];
  for (let round = 0; round < COST_ROUNDS; round++) {
    const result: Partial<(typeof rounds)[number]> = {};
    for (const shadow of [null, second]) {
      await move({ active: first, previous: second, shadow, reason: shadow === null ? "shadow-off" : "shadow" });
      if (!(await allServe(first, shadow)))
        throw new Error(`the replicas do not all serve ${first} with shadow ${shadow}`);
      const p = await phase(`cost ${round} ${shadow === null ? "without" : "with"} shadow`, COST_SECONDS);
      const line = {
        kind: "cost",
        round,
        shadow,
        sent: p.sent,
        lost: p.lost,
        p50Ms: p.p50Ms,
        p99Ms: p.p99Ms,
        cpuMsPer1000: p.cpu,
      };
      emit(line);
      say(`  round ${round} ${shadow === null ? "without" : "with"} shadow: ${JSON.stringify(line)}`);
      result[shadow === null ? "without" : "with"] = p.cpu;
    }
    rounds.push(result as (typeof rounds)[number]);
  }
  const ratio = (name: string) =>
    spread(
      rounds.map((r) => (r.with[name] ?? 0) / Math.max(1, r.without[name] ?? 0)),
      100,
    );
  const perReading = (name: string, which: "with" | "without") => spread(rounds.map((r) => r[which][name] ?? 0));
  // Each predict replica writes its comparison every PREDICT_COMPARE_EVERY_MS (5 s): the last round's, whole.
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  const comparison = sumComparisons(await registry.comparisons(SITE, second), first, second, SITE);

  await waitUntilDone(() => received, sentTotal, 5_000);
  const summary = {
    kind: "summary",
    rate: RATE,
    fans: FANS,
    replicas: REPLICAS,
    versions: { first, second },
    sent: sentTotal,
    lost: sentTotal - received,
    predictionsByModel: byModel,
    /** Failure counters that grew in each phase (none: {}), dead letters included. */
    failures,
    swaps: swapSummary,
    shadowCost: {
      rounds: rounds.length,
      seconds: COST_SECONDS,
      cpuMsPer1000Without: {
        score: perReading("score", "without"),
        predict: perReading("predict", "without"),
        total: perReading("total", "without"),
      },
      cpuMsPer1000With: {
        score: perReading("score", "with"),
        predict: perReading("predict", "with"),
        total: perReading("total", "with"),
      },
      ratio: { score: ratio("score"), predict: ratio("predict"), total: ratio("total") },
      comparison: {
        readings: comparison.readings,
        agreement: comparison.agreement,
        alarms: comparison.alarms,
        fans: { opened: comparison.fans.opened.length, closed: comparison.fans.closed.length },
        cost: comparison.cost,
      },
    },
  };
  emit(summary);
}

/** CPU per 1,000 readings with a function's replicas added up ("score-1234" → "score"), and `total`: every process but the load generator. */
function byFunction(cpu: Record<string, number>): Record<string, number> {
  const sums: Record<string, number> = { total: 0 };
  for (const [name, ms] of Object.entries(cpu)) {
    if (name === "load generator") continue;
    const key = name.replace(/-\d+$/, "");
    sums[key] = (sums[key] ?? 0) + ms;
    sums.total = (sums.total ?? 0) + ms;
  }
  return sums;
}
