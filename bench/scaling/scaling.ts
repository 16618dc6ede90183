// npm run bench:scaling — a load ramp, low → high → low, through the real pipeline on this machine:
// Mosquitto (the project's config) → our connector (finding predict through the gateway, as
// `npm start` does) → the local gateway (`fanwatch gateway`) → predict → score → fan/anomaly.
// Two runs in one invocation, the same ramp:
// - "autoscaled": stack.yml's scale labels, the gateway's autoscaler on (a short scale-down window,
//   BENCH_SCALE_DOWN_WINDOW_S), and a chaos step: one predict replica SIGKILLed under load;
// - "one replica": the same stack with com.openfaas.scale.max 1 for every function;
// - "autoscaled, CPU check off": as "autoscaled", with GATEWAY_SCALE_MIN_IDLE_CPU=0, so that
//   replicas are added even while every core is busy.
// Per second: offered and achieved readings/s, p99 from publish to prediction, each function's
// replicas (the gateway's /system/functions). Per ramp step: sent, lost, p99; sustained = the
// highest step that, with every step below it, lost nothing and kept p99 <= 250 ms. A reading is
// lost if its prediction never arrives, whichever scale event it met.
// Progress goes to stderr; JSON lines to stdout, the summary last; the timeline as an SVG picture
// (BENCH_SVG, default docs/img/scaling.svg).
import { pino } from "pino";
import { Lifecycle } from "../../runtime/system/lifecycle.js";
import { CliProcess } from "../../test/support/cli-process.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { parse, stringify } from "yaml";
import { CONNECTOR_NODE_OPTIONS } from "../../connectors/mqtt/node-options.js";
import { freePort } from "../../lib/infra/net.js";
import { startMosquitto, type Broker } from "../../test/support/mosquitto.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { cpuByProcess, cpuMsPer1000, publishPaced, quantile, waitUntilDone } from "../support/load-step.js";
import { childPids, readArgs } from "../support/process-stats.js";
import { timelineSvg, type TimelinePanel, type TimelinePoint } from "./timeline-svg.js";

const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 10);
const RAMP = (process.env.BENCH_RAMP ?? "500,2000,4000,6000,8000,10000,12000").split(",").map(Number);
const LOW_RATE = 500;
const SCALE_DOWN_WINDOW_S = Number(process.env.BENCH_SCALE_DOWN_WINDOW_S ?? 30);
/** Low load after the ramp: the window, and time for the replicas to step down one by one. */
const LOW_SECONDS = Number(process.env.BENCH_LOW_SECONDS ?? SCALE_DOWN_WINDOW_S * 3 + 20);
const CHAOS_RATE = Number(process.env.BENCH_CHAOS_RATE ?? 4000);
const P99_LIMIT_MS = 250;
const PASSWORD = "bench-scaling";
const SVG = process.env.BENCH_SVG ?? join(REPO_ROOT, "docs/img/scaling.svg");
/** The gateway's autoscaler settings for the run (docs/start.md): a window short enough for a benchmark. */
const AUTOSCALER_ENV: Record<string, string> = { GATEWAY_SCALE_DOWN_WINDOW_MS: String(SCALE_DOWN_WINDOW_S * 1000) };

interface Run {
  name: string;
  maxReplicas?: number;
  chaos: boolean;
  /** The gateway's settings for this run, over AUTOSCALER_ENV. */
  env?: Record<string, string>;
}

const RUNS: Run[] = [
  { name: "one replica", maxReplicas: 1, chaos: false },
  { name: "autoscaled", chaos: true },
  // What the replicas would do on this machine without the CPU check: they rise and fall, and
  // the picture shows what a second process on two busy cores costs.
  { name: "autoscaled, CPU check off", chaos: true, env: { GATEWAY_SCALE_MIN_IDLE_CPU: "0" } },
];

interface StepResult {
  kind: "step";
  run: string;
  phase: "ramp" | "chaos" | "low";
  offered: number;
  seconds: number;
  sent: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
  ok: boolean;
  /** Replicas of each function at the end of the step (desired/available). */
  replicas: Record<string, string>;
  cpuMsPer1000: Record<string, number>;
}

const say = (line: string) => process.stderr.write(`${line}\n`);

interface System {
  publisher: MqttClient;
  /** Readings sent and not yet predicted: id → when sent. */
  pending: Map<string, number>;
  /** The last seconds' predictions: when each arrived and its latency (the timeline's samples). */
  arrivals: Array<{ at: number; ms: number }>;
  /** Latency of every prediction that arrived, by reading id (the steps' figures). */
  latencies: Map<string, number>;
  replicas(): Promise<Record<string, { replicas: number; available: number }>>;
  pids(): Record<string, number | undefined>;
  killOne(fn: string): number | undefined;
  stop(): Promise<void>;
}

const summary: Record<string, unknown> = {
  kind: "summary",
  stepSeconds: STEP_SECONDS,
  scaleDownWindowS: SCALE_DOWN_WINDOW_S,
  p99LimitMs: P99_LIMIT_MS,
};
const panels: TimelinePanel[] = [];
for (const run of RUNS) {
  say(`${run.name}: starting Mosquitto, the gateway with score, predict and health, and the connector`);
  const system = await startSystem(run);
  try {
    const started = Date.now();
    const timeline: TimelinePoint[] = [];
    const marks: TimelinePanel["marks"] = [];
    let offeredNow = 0;
    const sampler = setInterval(() => void sample(), 1000);
    async function sample(): Promise<void> {
      const now = Date.now();
      const recent = system.arrivals
        .filter((a) => a.at > now - 1000)
        .map((a) => a.ms)
        .sort((a, b) => a - b);
      const replicas = await system.replicas().catch(() => ({}));
      timeline.push({
        t: (now - started) / 1000,
        offered: offeredNow,
        achieved: recent.length,
        p99Ms: recent.length > 0 ? quantile(recent, 0.99) : Number.NaN,
        replicas: Object.fromEntries(Object.entries(replicas).map(([n, r]) => [n, r.replicas])),
      });
      const keep = system.arrivals.findIndex((a) => a.at > now - 2000);
      system.arrivals.splice(0, keep < 0 ? system.arrivals.length : keep);
    }
    const steps: StepResult[] = [];
    const step = async (phase: StepResult["phase"], rate: number, seconds: number, during?: () => void) => {
      offeredNow = rate;
      const result = await runStep(system, run, phase, rate, seconds, during);
      steps.push(result);
      console.log(JSON.stringify(result));
      say(
        `  ${run.name} ${phase} ${rate}/s: sent ${result.sent}, lost ${result.lost}, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, replicas ${Object.entries(
          result.replicas,
        )
          .map(([n, r]) => `${n} ${r}`)
          .join(", ")} ${result.ok ? "ok" : "NOT SUSTAINED"}`,
      );
      return result;
    };
    for (const rate of RAMP) await step("ramp", rate, STEP_SECONDS);
    if (run.chaos) {
      await step("chaos", CHAOS_RATE, STEP_SECONDS, () => {
        const pid = system.killOne("predict");
        marks.push({ t: (Date.now() - started) / 1000, label: `SIGKILL predict ${pid ?? "(none found)"}` });
        say(`    SIGKILL predict replica ${pid}`);
      });
    }
    await step("low", LOW_RATE, LOW_SECONDS);
    offeredNow = 0;
    // Every reading of the run predicted, or nothing moved for 10 s.
    const outstanding = system.pending.size;
    await waitUntilDone(() => outstanding - system.pending.size, outstanding, 10_000);
    clearInterval(sampler);
    const lost = system.pending.size;
    let sustained = 0;
    for (const s of steps.filter((s) => s.phase === "ramp")) {
      if (!s.ok) break;
      sustained = s.offered;
    }
    const finalReplicas = await system.replicas();
    const peak = Object.fromEntries(
      Object.keys(finalReplicas).map((n) => [n, Math.max(0, ...timeline.map((p) => p.replicas[n] ?? 0))]),
    );
    summary[run.name] = {
      sustained,
      lostInRun: lost,
      peakReplicas: peak,
      finalReplicas: Object.fromEntries(
        Object.entries(finalReplicas).map(([n, r]) => [n, `${r.available}/${r.replicas}`]),
      ),
    };
    say(
      `${run.name}: sustained ${sustained} readings/s, lost ${lost} in the whole run, peak replicas ${JSON.stringify(peak)}, at the end ${JSON.stringify(summary[run.name])}`,
    );
    panels.push({
      title: `${run.name}: sustained ${sustained.toLocaleString("en")} readings/s, ${lost} lost`,
      points: timeline,
      marks,
    });
  } finally {
    await system.stop();
  }
}
mkdirSync(dirname(SVG), { recursive: true });
writeFileSync(SVG, timelineSvg(panels));
say(`timeline written to ${SVG}`);
console.log(JSON.stringify(summary));

async function startSystem(run: Run): Promise<System> {
  const broker: Broker = await startMosquitto();
  const workspace = await mkdtemp(join(tmpdir(), "fanwatch-bench-scaling-"));
  // The parts as fanwatch start runs them, each a process here: started in order, drained in reverse.
  const parts = new Lifecycle({ log: pino({ level: "silent" }) });
  const spawnReady = (args: string[], env: Record<string, string>, ready: RegExp) =>
    parts.start(new CliProcess({ name: args[0] ?? "fanwatch", args, env: { LOG_LEVEL: "warn", ...env }, ready }));
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const stackFile = join(workspace, "stack.yml");
    writeFileSync(stackFile, stackWith(run.maxReplicas));
    const gatewayPort = await freePort();
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    const gateway = await spawnReady(
      ["gateway", "--port", String(gatewayPort), "--stack", stackFile],
      { MQTT_URL: broker.url, GATEWAY_PASSWORD: PASSWORD, ...AUTOSCALER_ENV, ...run.env },
      /gateway running/,
    );
    // Discovery through the gateway, as `npm start`: the connector reads predict's replicas there.
    const connector = await spawnReady(
      ["connector"],
      {
        gateway_url: gatewayUrl,
        broker: broker.url,
        topic: "fan/messages",
        port: String(await freePort()),
        client_id: `bench-scaling-${run.name.replace(/\W+/g, "-")}`,
        basic_auth: "true",
        secret_mount_path: await credentials(workspace),
        refresh_interval_ms: "1000",
        NODE_OPTIONS: CONNECTOR_NODE_OPTIONS,
      },
      /connector running/,
    );
    const pending = new Map<string, number>();
    const arrivals: System["arrivals"] = [];
    const latencies: System["latencies"] = new Map();
    const listener = await mqtt.connectAsync(broker.url, { clientId: `bench-scaling-listener-${process.pid}` });
    closers.push(() => listener.endAsync());
    listener.on("message", (_topic, payload) => {
      const id = (JSON.parse(payload.toString()) as { deviceID: string }).deviceID;
      const sentAt = pending.get(id);
      if (sentAt === undefined) return; // a duplicate
      pending.delete(id);
      const now = Date.now();
      arrivals.push({ at: now, ms: now - sentAt });
      latencies.set(id, now - sentAt);
    });
    await listener.subscribeAsync("fan/anomaly", { qos: 1 });
    const publisher = await mqtt.connectAsync(broker.url, { clientId: `bench-scaling-fleet-${process.pid}` });
    closers.push(() => publisher.endAsync());
    const auth = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}`;
    const functionPids = (name?: string) =>
      childPids(gateway.pid).filter((pid) => name === undefined || readArgs(pid).includes(` function ${name} `));
    return {
      publisher,
      pending,
      arrivals,
      latencies,
      async replicas() {
        const answer = await fetch(`${gatewayUrl}/system/functions`, { headers: { authorization: auth } });
        const list = (await answer.json()) as Array<{ name: string; replicas: number; availableReplicas: number }>;
        return Object.fromEntries(
          list
            .filter((f) => f.name !== "health")
            .map((f) => [f.name, { replicas: f.replicas, available: f.availableReplicas }]),
        );
      },
      pids: () => ({
        mosquitto: broker.pid,
        connector: connector.pid,
        gateway: gateway.pid,
        ...Object.fromEntries(
          functionPids().map((pid) => [`${readArgs(pid).match(/ function (\w+) /)?.[1] ?? "function"}-${pid}`, pid]),
        ),
        "load generator": process.pid,
      }),
      killOne(fn) {
        const pid = functionPids(fn)[0];
        if (pid !== undefined) process.kill(pid, "SIGKILL");
        return pid;
      },
      async stop() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
        await parts.stop();
        await broker.stop();
        await rm(workspace, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await parts.stop();
    await broker.stop();
    throw error;
  }
}

/** stack.yml, with every function's scale.max set to `maxReplicas` when given. */
function stackWith(maxReplicas: number | undefined): string {
  const stack = parse(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8")) as {
    functions: Record<string, { labels?: Record<string, string> }>;
  };
  if (maxReplicas !== undefined) {
    for (const fn of Object.values(stack.functions))
      fn.labels = { ...fn.labels, "com.openfaas.scale.max": String(maxReplicas) };
  }
  return stringify(stack);
}

/** The gateway's basic-auth secret files, for the connector (as in the cluster). */
async function credentials(workspace: string): Promise<string> {
  const dir = join(workspace, "secrets");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "basic-auth-user"), "admin");
  writeFileSync(join(dir, "basic-auth-password"), PASSWORD);
  return dir;
}

/** Publishes `rate` readings a second for `seconds` (paced every 10 ms), each with an id of its own; then waits for the step's stragglers. */
async function runStep(
  system: System,
  run: Run,
  phase: StepResult["phase"],
  rate: number,
  seconds: number,
  during?: () => void,
): Promise<StepResult> {
  const cpuBefore = await cpuByProcess(system.pids());
  const started = Date.now();
  const ids: string[] = [];
  const duringAt = during === undefined ? -1 : Math.floor((rate * seconds) / 3);
  await publishPaced(rate, seconds, (n) => {
    if (n === duringAt) during?.();
    const id = `${phase}-${rate}-${n}-${started}`;
    ids.push(id);
    const now = Date.now();
    system.pending.set(id, now);
    return system.publisher.publishAsync(
      "fan/messages",
      JSON.stringify({
        deviceID: id,
        timeStamp: now,
        rotation: 500 + (n % 200),
        temperature: 35 + (n % 20),
        vibration: 100 + (n % 150),
        sound: 45 + (n % 15),
      }),
      { qos: 1 },
    );
  });
  // Stragglers: until every reading of the step arrived, or nothing moved for 5 s.
  const waiting = () => ids.filter((id) => system.pending.has(id)).length;
  await waitUntilDone(() => ids.length - waiting(), ids.length, 5_000);
  const cpu = cpuMsPer1000(cpuBefore, await cpuByProcess(system.pids()), ids.length);
  const latencies = ids.flatMap((id) => system.latencies.get(id) ?? []).sort((a, b) => a - b);
  for (const id of ids) system.latencies.delete(id);
  const lost = waiting();
  const p99Ms = quantile(latencies, 0.99);
  const replicas = Object.fromEntries(
    Object.entries(await system.replicas().catch(() => ({}))).map(([n, r]) => [n, `${r.available}/${r.replicas}`]),
  );
  return {
    kind: "step",
    run: run.name,
    phase,
    offered: rate,
    seconds,
    sent: ids.length,
    lost,
    p50Ms: quantile(latencies, 0.5),
    p99Ms,
    ok: lost === 0 && p99Ms <= P99_LIMIT_MS,
    replicas,
    cpuMsPer1000: sumByFunction(cpu),
  };
}

/** CPU per 1,000 readings with the replicas of a function added up ("predict-1234" → "predict"). */
function sumByFunction(cpu: Record<string, number>): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const [name, ms] of Object.entries(cpu)) {
    const key = name.replace(/-\d+$/, "");
    sums[key] = (sums[key] ?? 0) + ms;
  }
  return sums;
}
