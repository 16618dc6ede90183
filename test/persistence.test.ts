import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { startFanwatch } from "./support/fanwatch-start.js";
import { startInfluxDB, type Influx } from "./support/influxdb.js";
import { startMosquitto, type Broker } from "./support/mosquitto.js";
import { Collector } from "./support/mqtt-collector.js";
import { REPO_ROOT } from "./support/paths.js";
import { freePort, spawnCli, waitForOutput } from "./support/process.js";

async function eventually<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    value = await probe();
  }
  return value;
}

describe("persistence in a real InfluxDB 1.x", { timeout: 240_000 }, () => {
  let broker: Broker;
  let influx: Influx;
  let publisher: MqttClient;
  const writers: ChildProcessWithoutNullStreams[] = [];

  /** `fanwatch influx-writer` as its own process (the one before it stopped: they share a session); returns its URL. */
  async function startWriter(): Promise<string> {
    for (const w of writers.splice(0)) if (w.exitCode === null) w.kill("SIGTERM");
    const port = await freePort();
    const child = spawnCli(["influx-writer", "--influx-url", influx.url, "--broker", broker.url, "--port", String(port), "--flush-ms", "200"]);
    writers.push(child);
    await waitForOutput(child, /InfluxDB writer running/);
    return `http://127.0.0.1:${port}`;
  }

  const count = async (measurement: string, field: string, where: string) => Number((await influx.query(`SELECT count("${field}") FROM "${measurement}" WHERE ${where}`))[0]?.values[0]?.[1] ?? 0);

  before(async () => {
    [broker, influx] = await Promise.all([startMosquitto(), startInfluxDB()]);
    publisher = await mqtt.connectAsync(broker.url, { clientId: "persistence-test-publisher" });
  });
  after(async () => {
    for (const w of writers) if (w.exitCode === null) w.kill("SIGKILL");
    await publisher?.endAsync();
    await Promise.all([broker?.stop(), influx?.stop()]);
  });

  it("stores every reading and prediction of `fanwatch start` with INFLUX_URL, numeric and at the reading's time", async () => {
    const collector = await Collector.start(broker.url, ["fan/messages", "fan/anomaly"]);
    const system = await startFanwatch(["--fans", "4", "--faulty", "1", "--degrading", "1", "--interval", "1000"], { MQTT_URL: broker.url, INFLUX_URL: influx.url, INFLUX_FLUSH_MS: "200" });
    assert.match(system.output(), /InfluxDB writer storing fan\/messages and fan\/anomaly/);
    await collector.waitFor("fan/anomaly", 24, 30_000);
    assert.equal((await system.interrupt()).code, 0);
    // Whatever the in-process writer had not written when it stopped is still with the broker, in
    // its persistent session: the standalone writer, with the same client id, takes it from there.
    await startWriter();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const readings = collector.on("fan/messages") as Array<{ deviceID: string; timeStamp: string; rotation: number }>;
    const predictions = collector.on("fan/anomaly").length;
    await eventually("readings in InfluxDB", () => count("telemetry", "rotation", `"deviceID" =~ /^[1-4]$/`), (n) => n === readings.length);
    await eventually("predictions in InfluxDB", () => count("prediction", "probability", `"deviceID" =~ /^[1-4]$/`), (n) => n === predictions);
    await collector.stop();

    const fields = await influx.query("SHOW FIELD KEYS");
    const types = Object.fromEntries(fields.flatMap((s) => s.values.map((v) => [`${s.name}.${String(v[0])}`, v[1]])));
    assert.deepEqual(types, { "prediction.fault": "integer", "prediction.probability": "float", "telemetry.rotation": "float", "telemetry.sound": "float", "telemetry.temperature": "float", "telemetry.vibration": "float" });
    const tags = await influx.query("SHOW TAG KEYS");
    assert.deepEqual(Object.fromEntries(tags.map((s) => [s.name, s.values.map((v) => v[0])])), { prediction: ["deviceID", "model"], telemetry: ["deviceID"] });
    const sample = readings[readings.length - 1] as { deviceID: string; timeStamp: string; rotation: number };
    const stored = await influx.query(`SELECT "rotation" FROM "telemetry" WHERE "deviceID" = '${sample.deviceID}' AND time = '${sample.timeStamp}'`);
    assert.equal(stored[0]?.values[0]?.[1], sample.rotation, "stored at the reading's own timeStamp, as a number");
  });

  it("answers every query of the provisioned Grafana dashboard with rows", async () => {
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, "deploy/grafana/dashboards/fanwatch.json"), "utf8")) as {
      panels: Array<{ title: string; targets: Array<{ query: string }> }>;
      templating: { list: Array<{ name: string; query: string }> };
    };
    const variable = dashboard.templating.list.find((v) => v.name === "deviceID");
    const devices = (await influx.query(variable?.query ?? "")).flatMap((s) => s.values.map((v) => String(v[1])));
    assert.ok(["1", "2", "3", "4"].every((d) => devices.includes(d)), `the deviceID variable lists the fans: ${devices.join(", ")}`);
    // As Grafana fills them in for "last 15 minutes", a 10 s interval and fans 1 and 2 chosen.
    const fill = (q: string) =>
      q
        .replaceAll("$timeFilter", "time > now() - 15m")
        .replaceAll("$__interval", "10s")
        .replaceAll("$__range", "15m")
        .replaceAll("/^$deviceID$/", "/^(1|2)$/");
    // The stats over "the last minute" need readings from the last minute: the fleet just stopped.
    assert.ok(dashboard.panels.length >= 9);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        const series = await influx.query(fill(target.query));
        assert.ok(series.length > 0 && (series[0]?.values.length ?? 0) > 0, `panel "${panel.title}" returned no rows: ${fill(target.query)}`);
      }
    }
  });

  it("loses nothing when InfluxDB restarts mid-stream", async () => {
    const metrics = await startWriter();
    const total = 3000;
    const base = Date.UTC(2026, 0, 1);
    const sending = (async () => {
      for (let i = 0; i < total; i++) {
        const reading = { deviceID: `restart-${i % 10}`, timeStamp: new Date(base + i).toISOString(), rotation: 600, temperature: 40, vibration: 150, sound: 48 };
        await publisher.publishAsync("fan/messages", JSON.stringify(reading), { qos: 1 });
        if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await influx.restart(2_000);
    await sending;
    await eventually("readings after the restart", () => count("telemetry", "rotation", `"deviceID" =~ /^restart-/`), (n) => n === total, 60_000);
    const text = await (await fetch(`${metrics}/metrics`)).text();
    assert.match(text, /influx_writer_write_failures_total [1-9]/, "writes failed while InfluxDB was down, and were retried");
  });

  it("dead-letters what is not a reading or a prediction and writes none of it", async () => {
    const deadLetters = await Collector.start(broker.url, ["fan/deadletter"]);
    await publisher.publishAsync("fan/messages", "not json", { qos: 1 });
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "bad-1", rotation: "fast", temperature: 40, vibration: 150, sound: 48 }), { qos: 1 });
    await publisher.publishAsync("fan/anomaly", JSON.stringify({ deviceID: "bad-2", fault: 2, probability: 0.5 }), { qos: 1 });
    const letters = (await deadLetters.waitFor("fan/deadletter", 3)) as Array<{ error: string; topic: string }>;
    await deadLetters.stop();
    assert.ok(letters.every((l) => l.error.startsWith("influx-writer: ")), JSON.stringify(letters));
    assert.deepEqual(letters.map((l) => l.topic).sort(), ["fan/anomaly", "fan/messages", "fan/messages"]);
    assert.match(letters.map((l) => l.error).join("\n"), /rotation/);
    assert.equal(await count("telemetry", "sound", `"deviceID" = 'bad-1'`), 0);
    assert.equal(await count("prediction", "probability", `"deviceID" = 'bad-2'`), 0);
  });
});
