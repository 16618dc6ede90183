import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { SCHEMA } from "../../connectors/influxdb/points.js";
import { deadLetter } from "../../lib/domain/dead-letter.js";
import type { AlarmTransition, HealthEvent, HealthState } from "../../lib/domain/health.js";
import { startFanwatch } from "../support/fanwatch-start.js";
import { eventuallyValue } from "../support/eventually.js";
import { startInfluxDB, type Influx } from "../support/influxdb.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, waitForOutput } from "../support/process.js";

/** InfluxDB's pace for support/eventually's polls: a query every quarter second, for up to 30 s. */
const AT_INFLUX_PACE = { timeoutMs: 30_000, paceMs: 250 };

const READING = { rotation: 600, temperature: 40, vibration: 150, sound: 48 };

/** A prediction as predict publishes it on fan/anomaly, with the reading it scored: how readings reach InfluxDB. */
const scored = (deviceID: string, timeStamp?: string, reading: Record<string, unknown> = READING) =>
  JSON.stringify({ deviceID, ...(timeStamp === undefined ? {} : { timeStamp }), fault: 0, probability: 0.1, reading });

/**
 * Health transitions as the health function publishes them: fan 1 warned, in alarm, acknowledged;
 * fan 2 warned, in alarm, cleared, assigned and its finding recorded (each marked by its alarm id,
 * persist-<fan>-a1), and a warning at a time to the nanosecond.
 */
function healthStory(now: number): { sent: AlarmTransition[]; warning: AlarmTransition } {
  const iso = (ms: number) => new Date(ms).toISOString();
  // The alarm ids mark them: the health function in `fanwatch start` may write fans 1 and 2 too.
  const transition = (
    deviceID: string,
    event: HealthEvent,
    state: HealthState,
    at: string,
    extra: Partial<AlarmTransition> = {},
  ): AlarmTransition => ({
    deviceID,
    alarmId: `persist-${deviceID}-a1`,
    state,
    severity: state === "alarm" ? "major" : "minor",
    cause: "vibration",
    contributions: { rotation: 0.01, temperature: 0.02, vibration: 0.61, sound: 0.03 },
    probability: state === "alarm" ? 0.93 : 0.31,
    eta: state === "warning" ? iso(now + 600_000) : null,
    since: at,
    acknowledged: false,
    event,
    at,
    id: `persist-${deviceID}-${event}`,
    site: "local",
    ...extra,
  });
  // With the interval its eta lies in, what it was judged against and the sensors that drift.
  const warning = transition("1", "warning", "warning", "2026-11-27T10:00:00.123456789Z", {
    etaInterval: { from: "2026-11-27T12:00:00.000Z", to: "2026-11-27T15:00:00.000Z", coverage: 0.8 },
    basis: "baseline",
    sensors: ["vibration", "temperature"],
  });
  const sent = [
    transition("1", "warning", "warning", iso(now - 60_000)),
    // Named after the model that raised it, as health publishes it.
    transition("1", "alarm", "alarm", iso(now - 40_000), { model: "fan-0123456789abcdef" }),
    transition("1", "acknowledged", "alarm", iso(now - 20_000), {
      acknowledged: true,
      by: "ann",
      note: "on my way, 20 min",
    }),
    transition("2", "warning", "warning", iso(now - 50_000)),
    transition("2", "alarm", "alarm", iso(now - 30_000)),
    transition("2", "cleared", "cleared", iso(now - 10_000), { cause: null, contributions: null }),
    // Notes on fan 2's episode after its clear: who is on it, and what they found.
    transition("2", "assigned", "cleared", iso(now - 8_000), { cause: null, contributions: null, by: "ann", to: "bo" }),
    transition("2", "finding", "cleared", iso(now - 5_000), {
      cause: null,
      contributions: null,
      by: "bo",
      result: "confirmed",
      part: "bearing",
      sensor: "vibration",
      note: "outer race pitted",
    }),
    warning,
  ];
  return { sent, warning };
}

describe("persistence in a real InfluxDB 1.x", { timeout: 240_000 }, () => {
  let broker: Broker;
  let influx: Influx;
  let publisher: MqttClient;
  const writers: ChildProcessWithoutNullStreams[] = [];

  /** `fanwatch influx-writer` as its own process (the one before it stopped: they share a session); returns its URL. */
  async function startWriter(args: string[] = []): Promise<string> {
    for (const w of writers.splice(0)) if (w.exitCode === null) w.kill("SIGTERM");
    const port = await freePort();
    const child = spawnCli([
      "influx-writer",
      "--influx-url",
      influx.url,
      "--broker",
      broker.url,
      "--port",
      String(port),
      "--flush-ms",
      "200",
      ...args,
    ]);
    writers.push(child);
    await waitForOutput(child, /InfluxDB writer running/);
    return `http://127.0.0.1:${port}`;
  }

  const count = async (measurement: string, field: string, where: string) =>
    Number(
      (await influx.query(`SELECT count("${field}") FROM "${measurement}" WHERE ${where}`))[0]?.values[0]?.[1] ?? 0,
    );
  const metric = async (url: string, name: string) =>
    Number(
      new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(
        await (await fetch(`${url}/metrics`)).text(),
      )?.[1] ?? 0,
    );
  const health = async (url: string) =>
    (await (await fetch(`${url}/healthz`)).json()) as { status: string; buffered: number; bufferedBytes: number };

  // Every test has its own broker and InfluxDB: none reads what another stored.
  beforeEach(async () => {
    // Both or neither: one that started is stopped when the other fails, or the run would hang.
    const [b, i] = await Promise.allSettled([startMosquitto(), startInfluxDB()]);
    if (b.status === "rejected" || i.status === "rejected") {
      await Promise.all([b.status === "fulfilled" && b.value.stop(), i.status === "fulfilled" && i.value.stop()]);
      throw b.status === "rejected" ? b.reason : (i as PromiseRejectedResult).reason;
    }
    [broker, influx] = [b.value, i.value];
    publisher = await mqtt.connectAsync(broker.url, { clientId: "persistence-test-publisher" });
  });
  afterEach(async () => {
    for (const w of writers.splice(0)) if (w.exitCode === null) w.kill("SIGKILL");
    await publisher?.endAsync();
    await Promise.all([broker?.stop(), influx?.stop()]);
  });

  it("stores every prediction of `fanwatch start` with INFLUX_URL and the reading it scored, numeric and at the reading's time", async () => {
    const collector = await Collector.start(broker.url, ["fan/anomaly"]);
    const system = await startFanwatch(["--fans", "4", "--faulty", "1", "--degrading", "1", "--interval", "1000"], {
      MQTT_URL: broker.url,
      INFLUX_URL: influx.url,
      INFLUX_FLUSH_MS: "200",
    });
    // A failed assertion before Ctrl-C must not leave the system running (the file would never end).
    // Ctrl-C, as a user would: SIGKILL would leave its children holding its output pipe open, and the file would never end.
    after(async () => void (system.child.exitCode === null && (await system.interrupt())));
    assert.match(system.output(), /InfluxDB writer storing fan\/anomaly \(predictions and their readings\)/);
    assert.doesNotMatch(system.output(), /InfluxDB writer storing .*fan\/messages/);
    // One reading that is not one: its dead letter is stored too (the dashboard's dead-letter panels).
    // From a fan of the registered fleet: an unknown fan's reading would wait in quarantine.
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "4", rotation: "fast" }), { qos: 1 });
    await collector.waitFor("fan/anomaly", 24, 30_000);
    await eventuallyValue(
      "the dead letter in InfluxDB",
      () => count("deadletter", "error", "true"),
      (n) => n >= 1,
      AT_INFLUX_PACE,
    );
    assert.equal((await system.interrupt()).code, 0);
    // Whatever the in-process writer had not written when it stopped is still with the broker, in
    // its persistent session: the standalone writer, with the same client id, takes it from there.
    await startWriter();
    // Every prediction predict published (the broker acknowledged each before the system stopped)
    // has reached the collector once a marker published after them has: one topic, in order.
    await publisher.publishAsync("fan/anomaly", scored("marker"), { qos: 1 });
    await eventuallyValue(
      "the marker collected",
      async () => collector.on("fan/anomaly").some((r) => (r as { deviceID: string }).deviceID === "marker"),
      (seen) => seen,
      AT_INFLUX_PACE,
    );
    const predictions = (
      collector.on("fan/anomaly") as Array<{ deviceID: string; timeStamp: string; reading?: Record<string, number> }>
    ).filter((p) => /^[1-4]$/.test(p.deviceID));
    // predict sends the reading it scored with every prediction: the readings stored are those.
    assert.ok(
      predictions.every((p) => p.reading !== undefined),
      "every prediction carries its reading",
    );
    await eventuallyValue(
      "readings in InfluxDB",
      () => count("telemetry", "rotation", `"deviceID" =~ /^[1-4]$/`),
      (n) => n === predictions.length,
      AT_INFLUX_PACE,
    );
    await eventuallyValue(
      "predictions in InfluxDB",
      () => count("prediction", "probability", `"deviceID" =~ /^[1-4]$/`),
      (n) => n === predictions.length,
      AT_INFLUX_PACE,
    );
    await collector.stop();

    // The health measurement has a test of its own (below): with the health function in the stack, fanwatch start writes it too.
    const fields = (await influx.query("SHOW FIELD KEYS")).filter((m) => m.name !== "health");
    const types = Object.fromEntries(fields.flatMap((s) => s.values.map((v) => [`${s.name}.${String(v[0])}`, v[1]])));
    assert.deepEqual(types, {
      "deadletter.error": "string",
      "deadletter.payload": "string",
      "deadletter.sourceTopic": "string",
      "prediction.fault": "integer",
      "prediction.probability": "float",
      "telemetry.rotation": "float",
      "telemetry.sound": "float",
      "telemetry.temperature": "float",
      "telemetry.vibration": "float",
    });
    const tags = Object.fromEntries(
      (await influx.query("SHOW TAG KEYS"))
        .filter((m) => m.name !== "health")
        .map((s) => [s.name, s.values.map((v) => String(v[0]))]),
    );
    // The dead letter's error code is a tag when the refuser gives one.
    assert.deepEqual(
      tags.deadletter?.filter((t) => t !== "code"),
      ["topic"],
    );
    assert.deepEqual(
      { ...tags, deadletter: [] },
      {
        deadletter: [],
        prediction: ["deviceID", "model"],
        telemetry: ["deviceID"],
      },
    );
    const sample = predictions[predictions.length - 1] as { deviceID: string; timeStamp: string; reading: object };
    const stored = await influx.query(
      `SELECT "rotation", "sound", "temperature", "vibration" FROM "telemetry" WHERE "deviceID" = '${sample.deviceID}' AND time = '${sample.timeStamp}'`,
    );
    const [values] = stored[0]?.values ?? [];
    assert.deepEqual(
      Object.fromEntries(["rotation", "sound", "temperature", "vibration"].map((f, i) => [f, values?.[i + 1]])),
      { ...sample.reading },
      "the prediction's reading, stored at the reading's own timeStamp, as numbers",
    );
  });

  it("stores each health transition from fan/alarm once, at its own time, with the documented tags and fields", async () => {
    const writer = await startWriter();
    const deadLetters = await Collector.start(broker.url, ["fan/deadletter"]);
    const { sent, warning } = healthStory(Date.now());
    for (const t of sent) await publisher.publishAsync("fan/alarm", JSON.stringify(t), { qos: 1 });
    // Delivered twice (QoS 1 may): the same point, stored once.
    await publisher.publishAsync("fan/alarm", JSON.stringify(sent[1]), { qos: 1 });
    // Not transitions: dead-lettered with the reason, nothing stored.
    await publisher.publishAsync(
      "fan/alarm",
      JSON.stringify({ ...sent[1], deviceID: "persist-wrong-at", at: "yesterday" }),
      { qos: 1 },
    );
    await publisher.publishAsync(
      "fan/alarm",
      JSON.stringify({ ...sent[1], deviceID: "persist-wrong-state", state: "panic" }),
      { qos: 1 },
    );

    await eventuallyValue(
      "health points in InfluxDB",
      () => count("health", "probability", `"alarmId" =~ /^persist-/`),
      (n) => n === sent.length,
      AT_INFLUX_PACE,
    );
    const letters = (await deadLetters.waitFor("fan/deadletter", 2)) as Array<{ error: string; topic: string }>;
    await deadLetters.stop();
    assert.deepEqual(
      letters.map((l) => l.topic),
      ["fan/alarm", "fan/alarm"],
    );
    assert.match(letters.map((l) => l.error).join("\n"), /health transition at: "yesterday" is not an RFC 3339 time/);
    assert.match(letters.map((l) => l.error).join("\n"), /health transition state/);
    assert.equal(await count("health", "probability", `"deviceID" =~ /^persist-wrong/`), 0);

    const types = Object.fromEntries(
      (await influx.query(`SHOW FIELD KEYS FROM "health"`))[0]?.values.map((v) => [String(v[0]), v[1]]) ?? [],
    );
    assert.deepEqual(
      types,
      Object.fromEntries(Object.entries(SCHEMA.health.fields).map(([name, type]) => [name, type])),
    );
    const tags = (await influx.query(`SHOW TAG KEYS FROM "health"`))[0]?.values.map((v) => v[0]);
    assert.deepEqual(tags, ["deviceID", "event", "state"]);

    // At the transition's own time, to the nanosecond.
    const atTime = await influx.query(
      `SELECT "alarmId", "eta", "eta_from", "eta_to", "eta_coverage", "basis", "sensors" FROM "health" WHERE "deviceID" = '1' AND "event" = 'warning' AND time = '2026-11-27T10:00:00.123456789Z'`,
    );
    assert.deepEqual(atTime[0]?.values, [
      [
        "2026-11-27T10:00:00.123456789Z",
        "persist-1-a1",
        warning.eta,
        "2026-11-27T12:00:00.000Z",
        "2026-11-27T15:00:00.000Z",
        0.8,
        "baseline",
        "vibration,temperature",
      ],
    ]);
    const rows = async (where: string) => {
      const [series] = await influx.query(`SELECT * FROM "health" WHERE "alarmId" =~ /^persist-/ AND ${where}`);
      return (series?.values ?? []).map((v) => Object.fromEntries(series?.columns.map((c, i) => [c, v[i]]) ?? []));
    };
    const [raised] = await rows(`"deviceID" = '1' AND "event" = 'alarm'`);
    assert.equal(raised?.model, "fan-0123456789abcdef", "the alarm's point names its model");
    const [acknowledged] = await rows(`"event" = 'acknowledged'`);
    assert.equal(acknowledged?.deviceID, "1");
    assert.equal(acknowledged?.state, "alarm");
    assert.equal(acknowledged?.acknowledged, true);
    assert.equal(acknowledged?.acknowledgedBy, "ann");
    assert.equal(acknowledged?.note, "on my way, 20 min");
    assert.equal(acknowledged?.contribution_vibration, 0.61);
    const [finding] = await rows(`"event" = 'finding'`);
    assert.deepEqual(
      [
        finding?.deviceID,
        finding?.state,
        finding?.author,
        finding?.acknowledgedBy,
        finding?.result,
        finding?.part,
        finding?.sensor,
        finding?.note,
      ],
      ["2", "cleared", "bo", null, "confirmed", "bearing", "vibration", "outer race pitted"],
    );
    assert.equal((await rows(`"event" = 'assigned'`))[0]?.assignedTo, "bo");
    // JSON nulls are left out, as Telegraf's json_v2 leaves them out.
    const [cleared] = await rows(`"event" = 'cleared'`);
    assert.deepEqual(
      [cleared?.cause, cleared?.eta, cleared?.contribution_vibration, cleared?.acknowledgedBy],
      [null, null, null, null],
    );
    assert.equal(
      await metric(writer, `influx_writer_messages_total{kind="health",outcome="accepted"}`),
      sent.length + 1,
    );
    assert.equal(await metric(writer, `influx_writer_messages_total{kind="health",outcome="rejected"}`), 2);
  });

  it("stores readings from predictions only: a held-back reading lands nowhere, a prediction's reading in telemetry, a sensor notice nowhere, a dead letter with its code", async () => {
    // The session an earlier writer left (same client id), subscribed to fan/messages as writers
    // were: a reading queued there must not be stored either, and the writer drops the subscription.
    const old = await mqtt.connectAsync(broker.url, { clientId: "fanwatch-influx-writer", clean: false });
    await old.subscribeAsync(["fan/messages", "fan/anomaly", "fan/deadletter", "fan/alarm"], { qos: 1 });
    await old.endAsync();
    // A reading of a quarantined fan: on fan/messages, held back by the connector, never predicted.
    const held = (deviceID: string) => JSON.stringify({ deviceID, timeStamp: "2026-11-27 10:00:00", ...READING });
    await publisher.publishAsync("fan/messages", held("quarantined-1"), { qos: 1 });
    const writer = await startWriter();
    const deadLetters = await Collector.start(broker.url, ["fan/deadletter"]);

    const reading = { rotation: 612.5, temperature: 41.25, vibration: 151.75, sound: 48.5 };
    await publisher.publishAsync("fan/anomaly", scored("admitted-1", "2026-11-27 10:00:01", reading), { qos: 1 });
    const notice = {
      deviceID: "implausible-1",
      timeStamp: "2026-11-27 10:00:02",
      implausible: { sensor: "rotation", value: 25000, code: "FANWATCH_READING_IMPLAUSIBLE" },
    };
    await publisher.publishAsync("fan/anomaly", JSON.stringify(notice), { qos: 1 });
    const letter = {
      ...deadLetter(
        "connector: fan quarantined-9 is not registered",
        "fan/messages/quarantined-9",
        held("quarantined-9"),
      ),
      code: "FANWATCH_DEVICE_UNKNOWN",
    };
    await publisher.publishAsync("fan/deadletter", JSON.stringify(letter), { qos: 1 });
    // After them all: once the marker is stored, the writer has handled them (one session, in order).
    const marker = async (deviceID: string) => {
      await publisher.publishAsync("fan/anomaly", scored(deviceID, "2026-11-27 10:00:03"), { qos: 1 });
      await eventuallyValue(
        `the ${deviceID} reading in InfluxDB`,
        () => count("telemetry", "rotation", `"deviceID" = '${deviceID}'`),
        (n) => n === 1,
        AT_INFLUX_PACE,
      );
    };
    await marker("marker-1");

    const [stored] = await influx.query(
      `SELECT "rotation", "sound", "temperature", "vibration" FROM "telemetry" WHERE "deviceID" = 'admitted-1'`,
    );
    assert.deepEqual(stored?.values, [["2026-11-27T10:00:01Z", 612.5, 48.5, 41.25, 151.75]], "values and time");
    assert.equal(await count("prediction", "probability", `"deviceID" = 'admitted-1'`), 1);
    for (const [measurement, field] of [
      ["telemetry", "rotation"],
      ["prediction", "probability"],
    ] as const) {
      assert.equal(await count(measurement, field, `"deviceID" =~ /^quarantined-/`), 0, `${measurement}: quarantined`);
      assert.equal(await count(measurement, field, `"deviceID" = 'implausible-1'`), 0, `${measurement}: the notice`);
    }
    assert.equal(await metric(writer, `influx_writer_messages_total{kind="telemetry",outcome="skipped"}`), 1);
    assert.equal(await metric(writer, `influx_writer_messages_total{kind="sensor_notice",outcome="skipped"}`), 1);
    // The notice is expected on fan/anomaly: skipped, not dead-lettered.
    assert.deepEqual(
      deadLetters.on("fan/deadletter").filter((l) => (l as { error: string }).error.startsWith("influx-writer:")),
      [],
    );
    await deadLetters.stop();
    const coded = await eventuallyValue(
      "the dead letter in InfluxDB",
      // A field with the tags: InfluxQL answers a SELECT of tags alone with nothing.
      async () =>
        (await influx.query(`SELECT "error", "code", "topic", "sourceTopic" FROM "deadletter"`))[0]?.values ?? [],
      (rows) => rows.length === 1,
      AT_INFLUX_PACE,
    );
    // The topic tag is a fan's topic normalised (one series for every fan), the full topic a field.
    assert.deepEqual(coded[0]?.slice(1), [
      letter.error,
      "FANWATCH_DEVICE_UNKNOWN",
      "fan/messages/+",
      "fan/messages/quarantined-9",
    ]);

    // The old session's subscription is gone: a reading on fan/messages no longer even reaches the writer.
    await publisher.publishAsync("fan/messages", held("quarantined-2"), { qos: 1 });
    await marker("marker-2");
    assert.equal(await metric(writer, `influx_writer_messages_total{kind="telemetry",outcome="skipped"}`), 1);
    assert.equal(await count("telemetry", "rotation", `"deviceID" =~ /^quarantined-/`), 0);
  });

  it("answers every query of the provisioned Grafana dashboard with rows", async () => {
    // What the dashboard shows: a fleet's readings, predictions and a dead letter, stored by
    // `fanwatch start`, and the health story of fans 1 and 2.
    const collector = await Collector.start(broker.url, ["fan/anomaly"]);
    const system = await startFanwatch(["--fans", "4", "--faulty", "1", "--degrading", "1", "--interval", "1000"], {
      MQTT_URL: broker.url,
      INFLUX_URL: influx.url,
      INFLUX_FLUSH_MS: "200",
    });
    // Ctrl-C, as a user would: SIGKILL would leave its children holding its output pipe open, and the file would never end.
    after(async () => void (system.child.exitCode === null && (await system.interrupt())));
    // From a fan of the registered fleet: an unknown fan's reading would wait in quarantine.
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "4", rotation: "fast" }), { qos: 1 });
    await collector.waitFor("fan/anomaly", 24, 30_000);
    await collector.stop();
    const { sent } = healthStory(Date.now());
    for (const t of sent) await publisher.publishAsync("fan/alarm", JSON.stringify(t), { qos: 1 });
    await eventuallyValue(
      "the dead letter in InfluxDB",
      () => count("deadletter", "error", "true"),
      (n) => n >= 1,
      AT_INFLUX_PACE,
    );
    await eventuallyValue(
      "the health story in InfluxDB",
      () => count("health", "probability", `"alarmId" =~ /^persist-/`),
      (n) => n === sent.length,
      AT_INFLUX_PACE,
    );
    await eventuallyValue(
      "predictions in InfluxDB",
      () => count("prediction", "probability", `"deviceID" =~ /^[1-4]$/`),
      (n) => n >= 24,
      AT_INFLUX_PACE,
    );
    assert.equal((await system.interrupt()).code, 0);
    const dashboard = JSON.parse(
      await readFile(join(REPO_ROOT, "deploy/grafana/dashboards/fanwatch.json"), "utf8"),
    ) as {
      panels: Array<{ title: string; targets: Array<{ query: string }> }>;
      templating: { list: Array<{ name: string; query: string }> };
      annotations: { list: Array<{ name: string; query: string; target: { query: string } }> };
    };
    const variable = dashboard.templating.list.find((v) => v.name === "deviceID");
    const devices = (await influx.query(variable?.query ?? "")).flatMap((s) => s.values.map((v) => String(v[1])));
    assert.ok(
      ["1", "2", "3", "4"].every((d) => devices.includes(d)),
      `the deviceID variable lists the fans: ${devices.join(", ")}`,
    );
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
        assert.ok(
          series.length > 0 && (series[0]?.values.length ?? 0) > 0,
          `panel "${panel.title}" returned no rows: ${fill(target.query)}`,
        );
      }
    }
    // The health story left fan 1 in an acknowledged alarm and fan 2 cleared: the alarms table lists fan 1.
    const open = await influx.query(
      fill(dashboard.panels.find((p) => p.title.startsWith("Open alarms"))?.targets[0]?.query ?? ""),
    );
    assert.ok(
      open[0]?.values.some((v) => v[open[0]?.columns.indexOf("deviceID") ?? -1] === "1"),
      JSON.stringify(open),
    );
    assert.ok(dashboard.annotations.list.length >= 2);
    for (const annotation of dashboard.annotations.list) {
      assert.equal(
        annotation.target.query,
        annotation.query,
        `annotation "${annotation.name}": one query, in the legacy and the current place`,
      );
      const series = await influx.query(fill(annotation.query));
      assert.ok(
        (series[0]?.values.length ?? 0) > 0,
        `annotation "${annotation.name}" returned no rows: ${fill(annotation.query)}`,
      );
    }
  });

  it("loses nothing when InfluxDB restarts mid-stream", async () => {
    const metrics = await startWriter();
    const total = 3000;
    const base = Date.UTC(2026, 0, 1);
    let sent = 0;
    const sending = (async () => {
      for (; sent < total; sent++) {
        const prediction = scored(`restart-${sent % 10}`, new Date(base + sent).toISOString());
        await publisher.publishAsync("fan/anomaly", prediction, { qos: 1 });
        if (sent % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 20)); // the stream's pace
      }
    })();
    await eventuallyValue(
      "the stream under way",
      async () => sent,
      (n) => n >= 300,
      AT_INFLUX_PACE,
    );
    // Down until the writer has had writes fail, then back.
    await influx.restart(
      async () =>
        void (await eventuallyValue(
          "a failed write",
          () => metric(metrics, "influx_writer_write_failures_total"),
          (n) => n >= 1,
          AT_INFLUX_PACE,
        )),
    );
    await sending;
    await eventuallyValue(
      "readings after the restart",
      () => count("telemetry", "rotation", `"deviceID" =~ /^restart-/`),
      (n) => n === total,
      { ...AT_INFLUX_PACE, timeoutMs: 60_000 },
    );
    assert.equal(await count("prediction", "probability", `"deviceID" =~ /^restart-/`), total);
    const text = await (await fetch(`${metrics}/metrics`)).text();
    assert.match(
      text,
      /influx_writer_write_failures_total [1-9]/,
      "writes failed while InfluxDB was down, and were retried",
    );
  });

  it("dead-letters what is not a prediction (its reading included), writes none of it, and stores the dead letters", async () => {
    await startWriter();
    const deadLetters = await Collector.start(broker.url, ["fan/deadletter"]);
    await publisher.publishAsync("fan/anomaly", "not json", { qos: 1 });
    await publisher.publishAsync("fan/anomaly", scored("bad-1", undefined, { ...READING, rotation: "fast" }), {
      qos: 1,
    });
    await publisher.publishAsync("fan/anomaly", JSON.stringify({ deviceID: "bad-2", fault: 2, probability: 0.5 }), {
      qos: 1,
    });
    const letters = (await deadLetters.waitFor("fan/deadletter", 3)) as Array<{ error: string; topic: string }>;
    await deadLetters.stop();
    assert.ok(
      letters.every((l) => l.error.startsWith("influx-writer: ")),
      JSON.stringify(letters),
    );
    assert.deepEqual(
      letters.map((l) => l.topic),
      ["fan/anomaly", "fan/anomaly", "fan/anomaly"],
    );
    assert.match(letters.map((l) => l.error).join("\n"), /reading\.rotation/);
    assert.equal(await count("telemetry", "sound", `"deviceID" = 'bad-1'`), 0);
    assert.equal(await count("prediction", "probability", `"deviceID" = 'bad-1'`), 0);
    assert.equal(await count("prediction", "probability", `"deviceID" = 'bad-2'`), 0);
    // The writer reads fan/deadletter too and stores what arrives there, its own letters included.
    await eventuallyValue(
      "dead letters in InfluxDB",
      () => count("deadletter", "error", `"error" =~ /^influx-writer: / AND "payload" =~ /not json|bad-1|bad-2/`),
      (n) => n === 3,
      AT_INFLUX_PACE,
    );
  });

  it("dead-letters the one point of a batch InfluxDB refuses, stores the rest, acknowledges all, retries nothing", async () => {
    const writer = await startWriter();
    // A point that passes our schema but not InfluxDB: `rotation` already is an integer field in
    // the shard of 2001-01-01, so a float there is a field type conflict (400).
    const seed = await fetch(`${influx.url}/write?db=fan&precision=s`, {
      method: "POST",
      body: `telemetry,deviceID=seed rotation=1i ${Date.UTC(2001, 0, 1) / 1000}`,
    });
    assert.equal(seed.status, 204);
    const failuresBefore = await metric(writer, "influx_writer_write_failures_total");
    const deadLetters = await Collector.start(broker.url, ["fan/deadletter"]);
    const sends = [scored("batch-conflict", "2001-01-01 00:00:05"), scored("batch-year-9999", "9999-12-31 23:59:59")];
    for (let i = 0; i < 8; i++) sends.push(scored(`batch-good-${i}`, `2026-02-01 00:00:0${i}`));
    await Promise.all(sends.map((payload) => publisher.publishAsync("fan/anomaly", payload, { qos: 1 })));

    const letters = (await deadLetters.waitFor("fan/deadletter", 2)) as Array<{
      error: string;
      topic: string;
      payload: string;
    }>;
    await deadLetters.stop();
    const about = (deviceID: string) => letters.find((l) => l.payload.includes(deviceID));
    assert.match(
      about("batch-conflict")?.error ?? "",
      /^influx-writer: InfluxDB refused the point \(400\): field type conflict: input field "rotation" on measurement "telemetry" is type float, already exists as type integer/,
    );
    assert.match(about("batch-year-9999")?.error ?? "", /^influx-writer: .*timeStamp/);
    assert.equal(letters.length, 2, JSON.stringify(letters));
    await eventuallyValue(
      "the good readings",
      () => count("telemetry", "rotation", `"deviceID" =~ /^batch-good-/`),
      (n) => n === 8,
      AT_INFLUX_PACE,
    );
    assert.equal(await count("prediction", "probability", `"deviceID" =~ /^batch-good-/`), 8);
    assert.equal(await count("telemetry", "rotation", `"deviceID" =~ /^batch-(conflict|year)/`), 0);
    // The conflicting reading's prediction point was stored: the message is dead-lettered whole,
    // and replaying it writes that point again, the same point.
    assert.equal(await count("prediction", "probability", `"deviceID" = 'batch-conflict'`), 1);
    // Acknowledged: nothing held any more; and the refusal was not taken for an outage.
    const held = await eventuallyValue(
      "the writer's buffer",
      () => health(writer),
      (h) => h.buffered === 0 && h.bufferedBytes === 0,
      AT_INFLUX_PACE,
    );
    assert.equal(held.status, "ok");
    assert.equal(await metric(writer, "influx_writer_write_failures_total"), failuresBefore, "no write was retried");
    assert.equal(await metric(writer, `influx_writer_points_refused_total{reason="field_type_conflict"}`), 1);
    // Restarted, the writer gets none of them again: the broker has nothing left for its session.
    const again = await startWriter();
    const marker = scored("batch-marker", "2026-02-01 00:01:00");
    await publisher.publishAsync("fan/anomaly", marker, { qos: 1 });
    await eventuallyValue(
      "the marker",
      () => count("telemetry", "rotation", `"deviceID" = 'batch-marker'`),
      (n) => n === 1,
      AT_INFLUX_PACE,
    );
    assert.equal(
      await metric(again, `influx_writer_messages_total{kind="prediction",outcome="accepted"}`),
      1,
      "only the marker",
    );
  });

  it("creates a missing database and stores everything in it", async () => {
    const database = "fresh_fan";
    const rows = async () => {
      const answer = (await (
        await fetch(
          `${influx.url}/query?db=${database}&q=${encodeURIComponent(`SELECT count("rotation") FROM "telemetry"`)}`,
        )
      ).json()) as { results: Array<{ series?: Array<{ values: unknown[][] }>; error?: string }> };
      return Number(answer.results[0]?.series?.[0]?.values[0]?.[1] ?? 0);
    };
    const databases = JSON.stringify(await influx.query("SHOW DATABASES"));
    assert.ok(!databases.includes(database), databases);
    await startWriter(["--influx-db", database, "--client-id", "fresh-writer"]);
    for (let i = 0; i < 20; i++) {
      await publisher.publishAsync("fan/anomaly", scored(`fresh-${i}`), { qos: 1 });
    }
    await eventuallyValue("readings in the new database", rows, (n) => n === 20, AT_INFLUX_PACE);
  });
});
