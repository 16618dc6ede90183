// npm run bench:influx — how fast the InfluxDB writer stores readings: a real Mosquitto (the
// project's config) and a real InfluxDB 1.x on this machine; one MQTT client publishes N readings at
// QoS 1 as fast as the broker takes them; the writer (`fanwatch influx-writer`) stores them. For each
// round: points stored per second from the first publish to the last point counted in InfluxDB.
// Baseline in the same run: the same writer writing every message on its own (INFLUX_BATCH_SIZE=1),
// as a per-message consumer would. Rounds alternate; medians are reported.
// Progress goes to stderr; results to stdout as JSON lines, the summary last.
// BENCH_READINGS (default 20000; the baseline gets a tenth) and BENCH_ROUNDS (default 3).
import mqtt from "mqtt";
import { freePort } from "../../lib/infra/net.js";
import { startInfluxDB } from "../../test/support/influxdb.js";
import { startMosquitto } from "../../test/support/mosquitto.js";
import { spawnCli, terminate, waitForOutput } from "../../test/support/process.js";
import { cpuSeconds } from "../support/process-stats.js";

const READINGS = Number(process.env.BENCH_READINGS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SHAPES = [
  { name: "baseline", batchSize: "1", readings: Math.max(100, Math.round(READINGS / 10)) },
  { name: "fanwatch", batchSize: "1000", readings: READINGS },
] as const;

const progress = (line: string) => process.stderr.write(`${line}\n`);
const [broker, influx] = await Promise.all([startMosquitto(), startInfluxDB()]);
const publisher = await mqtt.connectAsync(broker.url, { clientId: "bench-influx-publisher" });
const results: Record<string, number[]> = { baseline: [], fanwatch: [] };
const cpu: Record<string, number[]> = { baseline: [], fanwatch: [] };
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const shape of SHAPES) {
      const writer = spawnCli([
        "influx-writer",
        "--influx-url",
        influx.url,
        "--broker",
        broker.url,
        "--port",
        String(await freePort()),
        "--client-id",
        `bench-${shape.name}-${round}`,
        "--batch-size",
        shape.batchSize,
        "--flush-ms",
        "100",
      ]);
      await waitForOutput(writer, /InfluxDB writer running/);
      writer.stdout.resume();
      writer.stderr.resume();
      const device = `${shape.name}-${round}`;
      const cpuBefore = await cpuSeconds(writer.pid);
      const started = Date.now();
      await publishAll(device, shape.readings, started);
      const stored = await waitForCount(device, shape.readings);
      const seconds = (Date.now() - started) / 1000;
      const writerCpuMsPer1000 = Math.round((((await cpuSeconds(writer.pid)) - cpuBefore) * 1e6) / shape.readings);
      await terminate(writer);
      const perSecond = Math.round(stored / seconds);
      results[shape.name]?.push(perSecond);
      cpu[shape.name]?.push(writerCpuMsPer1000);
      console.log(
        JSON.stringify({
          kind: "round",
          round,
          shape: shape.name,
          readings: shape.readings,
          stored,
          seconds,
          pointsPerSecond: perSecond,
          writerCpuMsPer1000,
        }),
      );
      progress(
        `round ${round} ${shape.name}: ${stored} of ${shape.readings} stored in ${seconds.toFixed(1)} s, ${perSecond} points/s, writer ${writerCpuMsPer1000} ms CPU per 1,000`,
      );
    }
  }
} finally {
  await publisher.endAsync();
  await Promise.all([broker.stop(), influx.stop()]);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const ours = median(results.fanwatch ?? []);
const base = median(results.baseline ?? []);
console.log(
  JSON.stringify({
    kind: "summary",
    rounds: ROUNDS,
    medianPointsPerSecond: { fanwatch: ours, baseline: base },
    medianWriterCpuMsPer1000: { fanwatch: median(cpu.fanwatch ?? []), baseline: median(cpu.baseline ?? []) },
    speedupVsBaseline: base === 0 ? null : Math.round((ours / base) * 10) / 10,
  }),
);

/** Publishes `count` readings with distinct millisecond timestamps, at most 1,000 unacknowledged. */
async function publishAll(device: string, count: number, base: number): Promise<void> {
  const window: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    const reading = {
      deviceID: device,
      timeStamp: new Date(base - count + i).toISOString(),
      rotation: 500 + (i % 200),
      temperature: 40,
      vibration: 150,
      sound: 48,
    };
    window.push(publisher.publishAsync("fan/messages", JSON.stringify(reading), { qos: 1 }));
    if (window.length >= 1000) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
}

async function waitForCount(device: string, expected: number): Promise<number> {
  const deadline = Date.now() + 300_000;
  let stored = 0;
  while (stored < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    stored = Number(
      (await influx.query(`SELECT count("rotation") FROM "telemetry" WHERE "deviceID" = '${device}'`))[0]
        ?.values[0]?.[1] ?? 0,
    );
  }
  return stored;
}
