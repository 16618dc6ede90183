// health alone under the load the connector gives it: predictions for a fleet of LOAD_FANS fans at
// LOAD_RATE a second, batched as the connector batches fan/anomaly (what arrived in 10 ms, at most
// 200, at most 8 invocations open), posted to a real `fanwatch function health` with a real
// nats-server and Mosquitto. Reports CPU time per prediction of health and of nats-server (what
// survives a shared machine's noise better than rates) and the invocations' p50/p99.
// HEALTH_NODE_ARGS are node's arguments for the health process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof",
// which NODE_OPTIONS does not take: the profile is written when it exits on SIGTERM).
// Run: node dist/bench/health/load.js (after npm run build); JSON result on stdout.
import { execFileSync, spawn } from "node:child_process";
import { request } from "node:http";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { startMosquitto } from "../../test/support/mosquitto.js";
import { startNats } from "../../test/support/nats.js";
import { CLI, REPO_ROOT } from "../../test/support/paths.js";
import { freePort, waitUntilReady } from "../../test/support/process.js";
import { cpuSeconds, peakRssMb } from "../support/process-stats.js";

const RATE = Number(process.env.LOAD_RATE ?? 4000);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 10);
const FANS = Number(process.env.LOAD_FANS ?? 1000);
const MAX_BATCH = 200;
const INFLIGHT = 8;

let sequence = 0;
const say = (line: string) => process.stderr.write(`${line}\n`);

const broker = await startMosquitto();
const nats = await startNats();
const port = await freePort();
const nodeArgs = (process.env.HEALTH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
const health = spawn(process.execPath, [...nodeArgs, CLI, "function", "health", "--port", String(port)], {
  cwd: REPO_ROOT,
  env: { ...process.env, LOG_LEVEL: "warn", MQTT_URL: broker.url, NATS_URL: nats.url },
});
try {
  await waitUntilReady(`http://127.0.0.1:${port}`, health, 60_000);
  health.stdout.resume();
  health.stderr.resume();
  await run(1000, 3); // warm-up: JIT, the fleet's records, the watch
  // startNats runs nats-server under a small shell that stops it with its parent.
  const natsPid = Number(
    execFileSync("pgrep", ["-P", String(nats.pid), "nats-server"], { encoding: "utf8" })
      .trim()
      .split("\n")[0],
  );
  const before = { health: await cpuSeconds(health.pid), nats: await cpuSeconds(natsPid) };
  const result = await run(RATE, SECONDS);
  const after = { health: await cpuSeconds(health.pid), nats: await cpuSeconds(natsPid) };
  const perPrediction = (s: number) => Math.round((s * 1e6) / result.sent);
  const nc = await connect({ servers: nats.url });
  const kv = await new Kvm(nc).open("fan_health");
  const entryBytes = { healthy: (await kv.get("bench-0"))?.length, faulty: (await kv.get("bench-9"))?.length };
  await nc.close();
  console.log(
    JSON.stringify({
      rate: RATE,
      seconds: SECONDS,
      fans: FANS,
      ...result,
      entryBytes,
      healthUsPerPrediction: perPrediction(after.health - before.health),
      natsUsPerPrediction: perPrediction(after.nats - before.nats),
      healthPeakRssMb: await peakRssMb(health.pid),
    }),
  );
} finally {
  if (health.exitCode === null) {
    health.kill("SIGTERM");
    await new Promise((resolve) => health.once("close", resolve));
  }
  await nats.stop();
  await broker.stop();
}

/** Offers `rate` predictions a second for `seconds`; resolves when every invocation answered. */
async function run(
  rate: number,
  seconds: number,
): Promise<{ sent: number; failed: number; invocations: number; p50Ms: number; p99Ms: number; meanBatch: number }> {
  const queue: object[] = [];
  const latencies: number[] = [];
  let inflight = 0;
  let failed = 0;
  let sent = 0;
  const open = new Set<Promise<void>>();
  const pump = () => {
    while (inflight < INFLIGHT && queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
      inflight++;
      const started = Date.now();
      const p = post(batch)
        .then((status) => {
          if (status !== 200) failed += batch.length;
          latencies.push(Date.now() - started);
        })
        .finally(() => {
          inflight--;
          open.delete(p);
          pump();
        });
      open.add(p);
    }
  };
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++) queue.push(prediction(sequence++));
    pump();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  while (queue.length > 0 || open.size > 0) {
    pump();
    await Promise.race(open);
  }
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  say(
    `  ${rate}/s for ${seconds} s: ${sent} predictions in ${latencies.length} invocations, ${failed} failed, p99 ${pick(0.99)} ms`,
  );
  return {
    sent,
    failed,
    invocations: latencies.length,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    meanBatch: Math.round(sent / Math.max(1, latencies.length)),
  };
}

/** What predict publishes: the reading, and for the faulty tenth of the fleet a cause and contributions. */
function prediction(n: number): object {
  const fan = n % FANS;
  const wobble = ((n * 7919) % 1000) / 1000;
  const base = { deviceID: `bench-${fan}`, timeStamp: Date.now(), model: "fan-v1" };
  if (fan % 10 === 9) {
    return {
      ...base,
      fault: wobble < 0.91 ? 1 : 0,
      probability: 0.6 + 0.4 * wobble,
      reading: {
        rotation: 420 + 60 * wobble,
        temperature: 50 + 4 * wobble,
        vibration: 220 + 25 * wobble,
        sound: 55 + 4 * wobble,
      },
      cause: "vibration",
      contributions: { rotation: 0.4, temperature: 1.1, vibration: 3.2 + wobble, sound: 0.2 },
    };
  }
  return {
    ...base,
    fault: 0,
    probability: 0.02 * wobble,
    reading: {
      rotation: 520 + 160 * wobble,
      temperature: 36 + 8 * wobble,
      vibration: 110 + 80 * wobble,
      sound: 46 + 5 * wobble,
    },
  };
}

function post(batch: object[]): Promise<number> {
  const body = JSON.stringify(batch);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "x-timeout-ms": "10000",
          "x-connector": "fanwatch-connector",
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
