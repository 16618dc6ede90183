import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { AlarmTransitionSchema, type AlarmTransition, type HealthRecord } from "../../lib/domain/health.js";
import type { Prediction } from "../../lib/domain/prediction.js";
import type { SensorNotice } from "../../lib/domain/sensor-notice.js";
import { HEALTH_EVENTS_STREAM } from "../../lib/nats/health-events.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson } from "../support/process.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";
import { openFanRegistry } from "../../lib/registry/nats-registry.js";
import { RETIRED_NOTE } from "../../functions/health/retire.js";

/** Transitions of different fans in the order of their fans' ids, each fan's in its own order. */
const byFan = (a: readonly (string | null)[], b: readonly (string | null)[]) =>
  String(a[0]).localeCompare(String(b[0]));

// Health's sensor issues against a real nats-server and Mosquitto: what the anomaly topic carries
// (predictions and predict's SensorNotices) posted as the connector posts it, and what an engineer
// then sees: the record's sensorIssue beside the fan's state, and the transitions on fan/alarm and
// in FAN_HEALTH_EVENTS (what the notifier reads).

const STUCK = 5;
const CLEAR = 6;
const t0 = Date.UTC(2026, 11, 7, 9);

function prediction(deviceID: string, n: number, sound: number): Prediction {
  return {
    deviceID,
    fault: 0,
    probability: 0.02,
    timeStamp: t0 + n * 2_000,
    reading: { rotation: 600 + n / 10, temperature: 40 + n / 10, vibration: 150 + n / 10, sound },
  };
}

function notice(deviceID: string, n: number, value: number): SensorNotice {
  return {
    deviceID,
    timeStamp: t0 + n * 2_000,
    implausible: { sensor: "temperature", value, code: "FANWATCH_READING_IMPLAUSIBLE" },
  };
}

/** Every transition of a fan in FAN_HEALTH_EVENTS, in stream order. */
async function stored(natsUrl: string, deviceID: string): Promise<AlarmTransition[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(HEALTH_EVENTS_STREAM);
    const out: AlarmTransition[] = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(HEALTH_EVENTS_STREAM, { seq });
      const t = m === null ? undefined : AlarmTransitionSchema.parse(m.json());
      if (t?.deviceID === deviceID) out.push(t);
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe("health's sensor issues (real nats-server, real Mosquitto)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let broker: Broker;
  let collector: Collector;
  let health: HealthProcess;

  const onAlarmTopic = (deviceID: string) =>
    collector
      .on("fan/alarm")
      .map((m) => AlarmTransitionSchema.parse(m))
      .filter((t) => t.deviceID === deviceID);

  async function record(deviceID: string): Promise<HealthRecord | undefined> {
    const answer = await fetch(`${health.url}?deviceID=${encodeURIComponent(deviceID)}`);
    return ((await answer.json()) as { fans: HealthRecord[] }).fans[0];
  }

  before(async () => {
    [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
    collector = await Collector.start(broker.url, ["fan/alarm"]);
    health = await startHealth({
      NATS_URL: nats.url,
      MQTT_URL: broker.url,
      HEALTH_SILENT_AFTER_MS: "3600000",
      HEALTH_STUCK_READINGS: String(STUCK),
      HEALTH_SENSOR_CLEAR_READINGS: String(CLEAR),
      HEALTH_SENSOR_IMPLAUSIBLE_COUNT: "3",
      HEALTH_SENSOR_WINDOW: "1m",
    });
  });
  after(async () => {
    await stopHealthProcesses();
    await collector?.stop();
    await Promise.all([nats?.stop(), broker?.stop()]);
  });

  it("opens an implausible sensor issue on the third notice, beside an ok fan, and tells fan/alarm and FAN_HEALTH_EVENTS", async () => {
    const batch = [prediction("s1", 0, 48.1), notice("s1", 1, -300), prediction("s1", 2, 48.2), notice("s1", 3, -300)];
    const first = await postJson(health.url, batch);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body, { evaluated: 4, rejected: 0, transitions: 0 });
    assert.equal((await record("s1"))?.sensorIssue, null);

    const third = await postJson(health.url, [notice("s1", 4, 900)]);
    assert.deepEqual(third.body, { evaluated: 1, rejected: 0, transitions: 1 });
    const fan = await record("s1");
    assert.equal(fan?.state, "ok", "the fan itself is fine");
    assert.deepEqual(fan?.sensorIssue, {
      sensor: "temperature",
      cause: "implausible",
      value: 900,
      since: new Date(t0 + 4 * 2_000).toISOString(),
    });
    const published = await eventuallyValue(
      "the sensor transition on fan/alarm",
      () => onAlarmTopic("s1"),
      (ts) => ts.length === 1,
    );
    assert.deepEqual(
      published.map((t) => [t.event, t.state, t.sensorIssue?.cause]),
      [["sensor", "ok", "implausible"]],
    );
    assert.deepEqual(await stored(nats.url, "s1"), published);
  });

  it("opens a stuck sensor issue after N identical values and clears it after M moving ones, saying which cleared", async () => {
    const stuck = Array.from({ length: STUCK }, (_, n) => prediction("s2", n, 47.3));
    const opened = await postJson(health.url, stuck);
    assert.deepEqual(opened.body, { evaluated: STUCK, rejected: 0, transitions: 1 });
    assert.deepEqual(
      { sensor: (await record("s2"))?.sensorIssue?.sensor, cause: (await record("s2"))?.sensorIssue?.cause },
      { sensor: "sound", cause: "stuck" },
    );
    // Delivered again (a connector retry): nothing new.
    assert.deepEqual((await postJson(health.url, stuck)).body, { evaluated: STUCK, rejected: 0, transitions: 0 });
    const moving = Array.from({ length: CLEAR }, (_, i) => prediction("s2", STUCK + i, 47 + i / 10));
    assert.deepEqual((await postJson(health.url, moving.slice(0, -1))).body, {
      evaluated: CLEAR - 1,
      rejected: 0,
      transitions: 0,
    });
    assert.deepEqual((await postJson(health.url, moving.slice(-1))).body, {
      evaluated: 1,
      rejected: 0,
      transitions: 1,
    });
    assert.equal((await record("s2"))?.sensorIssue, null);
    const events = await eventuallyValue(
      "both transitions on fan/alarm",
      () => onAlarmTopic("s2"),
      (ts) => ts.length === 2,
    );
    assert.deepEqual(
      events.map((t) => [t.event, t.sensorIssue?.sensor, t.sensorIssue?.cause, t.state]),
      [
        ["sensor", "sound", "stuck", "ok"],
        ["sensor-cleared", "sound", "stuck", "ok"],
      ],
    );
    assert.deepEqual(await stored(nats.url, "s2"), events);
  });

  it("refuses a malformed notice alone and evaluates the rest", async () => {
    const answer = await postJson(health.url, [
      prediction("s3", 0, 48),
      { deviceID: "s3", implausible: { sensor: "humidity", value: 1, code: "FANWATCH_READING_IMPLAUSIBLE" } },
    ]);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { evaluated: 1, rejected: 1, transitions: 0 });
  });
});

describe("health and retired fans (real nats-server, the device registry in it)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let broker: Broker;
  let collector: Collector;
  let health: HealthProcess;

  before(async () => {
    [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
    collector = await Collector.start(broker.url, ["fan/alarm"]);
    const registry = await openFanRegistry({ url: nats.url });
    try {
      for (const id of ["kept", "late", "broken", "gone"]) await registry.add(id, {}, "test");
      await registry.retire("gone", "test");
    } finally {
      await registry.close();
    }
    const env = {
      NATS_URL: nats.url,
      MQTT_URL: broker.url,
      HEALTH_SILENT_AFTER_MS: "4000",
      HEALTH_SILENT_CHECK_MS: "200",
      HEALTH_STUCK_READINGS: String(STUCK),
      LOG_LEVEL: "info",
    };
    // Two replicas: both see the retirements, only one may close what the fans left open.
    const replicas = await Promise.all([startHealth(env), startHealth(env)]);
    [health] = replicas;
    // Health reads the registry in the background (a retired fan counts as active until then).
    for (const replica of replicas)
      await eventually("health watching the device registry", () => replica.output().includes('"registry_watched"'));
  });
  after(async () => {
    await stopHealthProcesses();
    await collector?.stop();
    await Promise.all([nats?.stop(), broker?.stop()]);
  });

  const transitions = () => collector.on("fan/alarm").map((m) => AlarmTransitionSchema.parse(m));
  const faulty = (deviceID: string, from: number) =>
    Array.from({ length: 8 }, (_, i) => ({
      deviceID,
      fault: 1,
      probability: 0.97,
      timeStamp: from + i,
      cause: "vibration",
    }));

  it("raises nothing for a retired fan, never declares it silent and leaves it out of the list and counts; retiring a fan in alarm or with a sensor issue clears them once; an active one goes silent as ever", async () => {
    const now = Date.now();
    assert.deepEqual((await postJson(health.url, faulty("gone", now))).body, {
      evaluated: 0,
      rejected: 0,
      transitions: 0,
    });
    assert.equal(((await postJson(health.url, faulty("kept", now))).body as { transitions: number }).transitions, 1);
    assert.equal(((await postJson(health.url, faulty("late", now))).body as { transitions: number }).transitions, 1);
    const stuck = Array.from({ length: STUCK }, (_, n) => prediction("broken", n, 48));
    assert.equal(((await postJson(health.url, stuck)).body as { transitions: number }).transitions, 1);
    const registry = await openFanRegistry({ url: nats.url });
    try {
      await registry.retire("late", "test");
      await registry.retire("broken", "test");
    } finally {
      await registry.close();
    }
    // Health has it retired once it leaves the fan's predictions unevaluated.
    await eventuallyValue(
      "health to see fan late retired",
      async () => (await postJson(health.url, faulty("late", now + 100))).body as { evaluated: number },
      (body) => body.evaluated === 0,
    );
    await eventuallyValue(
      "the active fan silent on fan/alarm",
      () => transitions(),
      (ts) => ts.some((t) => t.deviceID === "kept" && t.event === "silent"),
    );
    await eventuallyValue(
      "the retired fans' alarm and sensor issue closed on fan/alarm",
      () => transitions(),
      (ts) =>
        ts.some((t) => t.deviceID === "late" && t.event === "cleared") &&
        ts.some((t) => t.deviceID === "broken" && t.event === "sensor-cleared"),
    );
    assert.deepEqual(
      transitions()
        .filter((t) => t.deviceID !== "kept")
        .map((t) => [t.deviceID, t.event, t.note ?? null])
        .sort(byFan),
      [
        ["late", "alarm", null],
        ["broken", "sensor", null],
        ["late", "cleared", RETIRED_NOTE],
        ["broken", "sensor-cleared", RETIRED_NOTE],
      ].sort(byFan),
      "before the retirement, what the fans raised; after it, each closed once (two replicas saw it), and nothing since",
    );
    // Gone from the list and its counts; its history stays, the episode closed.
    const list = (await (await fetch(health.url)).json()) as {
      fans: HealthRecord[];
      counts: Record<string, number>;
    };
    assert.deepEqual(
      list.fans.map((f) => [f.deviceID, f.state]),
      [["kept", "silent"]],
    );
    assert.deepEqual(list.counts, { ok: 0, warning: 0, alarm: 0, cleared: 0, silent: 1 });
    const history = (await (await fetch(`${health.url}/history?deviceID=late`)).json()) as {
      episodes: Array<{ transitions: Array<{ event: string }> }>;
    };
    assert.deepEqual(
      history.episodes.flatMap((e) => e.transitions.map((t) => t.event)),
      ["alarm", "cleared"],
    );
  });
});
