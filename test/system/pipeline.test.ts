import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { FAULTY_RANGES, HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { drawReading } from "../../simulation/draw.js";
import { FEATURES } from "../../lib/domain/features.js";
import { seededRandom } from "../../simulation/rng.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { eventually } from "../support/eventually.js";
import { Collector } from "../support/mqtt-collector.js";
import { finished, freePort, spawnCli, waitForOutput, waitUntilReady } from "../support/process.js";

// Real Mosquitto (with the project's mosquitto.conf) → connector → predict → score → fan/anomaly.
// The connector is pointed at the predict function directly (its server answers /function/predict),
// with a static route, since no OpenFaaS gateway runs here. Every test has its own broker,
// functions and connector: none relies on what an earlier one left (a retry count, a restart).
interface Fan {
  id: string;
  faulty: boolean;
}

const FANS: Fan[] = Array.from({ length: 12 }, (_, i) => ({ id: `fan-${i + 1}`, faulty: i % 3 === 0 }));

/** Readings whose timeStamps (epoch ms) base, base+1, … identify them in the predictions. */
function readings(count: number, seed: number, base: number): Array<Record<string, unknown>> {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const fan = FANS[i % FANS.length] as Fan;
    const ranges = fan.faulty ? FAULTY_RANGES : HEALTHY_RANGES;
    const values = Object.fromEntries(FEATURES.map((f) => [f, drawReading(ranges[f], random)]));
    return { deviceID: fan.id, timeStamp: base + i, ...values };
  });
}

describe("pipeline: Mosquitto → connector → predict → score → fan/anomaly", { timeout: 180_000 }, () => {
  let broker: Broker;
  let score: ChildProcessWithoutNullStreams;
  let scorePort: number;
  let predict: ChildProcessWithoutNullStreams;
  let connector: ChildProcessWithoutNullStreams;
  let connectorEnv: NodeJS.ProcessEnv;
  let collector: Collector;
  let publisher: MqttClient;

  async function startScore(): Promise<void> {
    score = spawnCli(["function", "score", "--port", String(scorePort)]);
    await waitUntilReady(`http://127.0.0.1:${scorePort}`, score);
  }

  async function startConnector(): Promise<void> {
    connector = spawnCli(["connector"], connectorEnv);
    await waitForOutput(connector, /connector running/);
  }

  async function send(messages: Array<Record<string, unknown> | string>): Promise<void> {
    await Promise.all(
      messages.map((m) =>
        publisher.publishAsync("fan/messages", typeof m === "string" ? m : JSON.stringify(m), { qos: 1 }),
      ),
    );
  }

  /** Predictions of the readings base … base+count-1, by timeStamp. */
  function predictionsFor(base: number, count: number): Map<number, Array<{ deviceID: string; fault: number }>> {
    const byKey = new Map<number, Array<{ deviceID: string; fault: number }>>();
    for (const p of collector.on("fan/anomaly") as Array<{ deviceID: string; fault: number; timeStamp: number }>) {
      if (!(p.timeStamp >= base && p.timeStamp < base + count)) continue;
      byKey.set(p.timeStamp, [...(byKey.get(p.timeStamp) ?? []), p]);
    }
    return byKey;
  }

  async function waitForAll(
    base: number,
    count: number,
    timeoutMs = 60_000,
  ): Promise<Map<number, Array<{ deviceID: string; fault: number }>>> {
    await eventually(
      `every one of ${count} readings got a prediction`,
      () => predictionsFor(base, count).size >= count,
      timeoutMs,
    );
    return predictionsFor(base, count);
  }

  /** The value of one of the connector's metrics, by its series (name and labels); 0 when absent. */
  async function metric(series: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${connectorEnv.port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  }

  /**
   * Resolves once everything sent so far has had all the predictions it will ever get: the
   * connector idle (nothing pending, nothing in flight), then a marker reading's prediction
   * arrived. predict publishes before it answers, and QoS 1 through one broker to one subscriber
   * keeps a topic's order, so any earlier prediction, a duplicate included, arrived before it.
   */
  async function settled(marker: number): Promise<void> {
    await eventually(
      "the connector idle",
      async () =>
        (await metric("connector_messages_pending")) === 0 && (await metric("connector_invocations_in_flight")) === 0,
    );
    await send(readings(1, 0, marker));
    await waitForAll(marker, 1);
  }

  beforeEach(async () => {
    broker = await startMosquitto();
    collector = await Collector.start(broker.url, ["fan/anomaly", "fan/deadletter"]);
    publisher = await mqtt.connectAsync(broker.url, { clientId: "test-fleet" });
    scorePort = await freePort();
    await startScore();
    const predictPort = await freePort();
    predict = spawnCli(["function", "predict", "--port", String(predictPort)], {
      MQTT_URL: broker.url,
      SCORE_URL: `http://127.0.0.1:${scorePort}/`,
    });
    await waitUntilReady(`http://127.0.0.1:${predictPort}`, predict);
    connectorEnv = {
      gateway_url: `http://127.0.0.1:${predictPort}`,
      broker: broker.url,
      functions: "fan/messages=predict",
      port: String(await freePort()),
      client_id: "pipeline-test",
      batch_wait_ms: "5",
      retry_base_ms: "200",
      retries: "6",
      // Under the broker's packet limit (16 KiB), so that an oversized reading reaches the
      // connector and its own check is what rejects it.
      max_message_bytes: "8192",
    };
    await startConnector();
  });

  afterEach(async () => {
    await Promise.all(
      [connector, predict, score].map(async (child) => {
        if (child?.exitCode !== null || child.signalCode !== null) return;
        const exit = once(child, "exit");
        child.kill("SIGKILL");
        await exit;
      }),
    );
    await publisher?.endAsync();
    await collector?.stop();
    await broker?.stop();
  });

  it("turns N readings from M fans into exactly N predictions and flags the faulty fans", async () => {
    const batch = readings(600, 1, 1e12);
    await send(batch);
    const found = await waitForAll(1e12, 600);
    await settled(1.5e12); // any duplicate has arrived by now
    const predictions = [...predictionsFor(1e12, 600).values()];
    assert.equal(predictions.length, 600);
    assert.ok(
      predictions.every((list) => list.length === 1),
      "exactly one prediction per reading",
    );
    for (const [i, reading] of batch.entries()) assert.equal(found.get(1e12 + i)?.[0]?.deviceID, reading.deviceID);
    for (const fan of FANS) {
      const own = predictions.flat().filter((p) => p.deviceID === fan.id);
      const share = own.filter((p) => p.fault === 1).length / own.length;
      if (fan.faulty) assert.ok(share > 0.7, `${fan.id} is faulty but only ${share} of its readings were flagged`);
      else assert.ok(share < 0.05, `${fan.id} is healthy but ${share} of its readings were flagged`);
    }
  });

  it("dead-letters malformed messages with reasons and loses nothing else", async () => {
    const deadBefore = collector.on("fan/deadletter").length;
    const good = readings(120, 2, 2e12);
    const bad: string[] = [
      "not json at all",
      JSON.stringify({ deviceID: "x", rotation: 600 }),
      JSON.stringify({ ...good[0], temperature: "hot" }),
      '{"deviceID":"x","rotation":NaN,"temperature":1,"vibration":1,"sound":1}',
      JSON.stringify({ ...good[0], pad: "x".repeat(10 * 1024) }),
      `{"deviceID":"x","nested":${"[".repeat(2000)}${"]".repeat(2000)}}`,
      '{"deviceID":"x","__proto__":{"polluted":true},"rotation":1,"temperature":1,"vibration":1,"sound":1}',
    ];
    const mixed: Array<Record<string, unknown> | string> = [];
    good.forEach((g, i) => {
      mixed.push(g);
      if (i % 17 === 0 && bad.length > 0) mixed.push(bad.shift() as string);
    });
    mixed.push(...bad);
    await send(mixed);
    await waitForAll(2e12, 120);
    const letters = (await collector.waitFor("fan/deadletter", deadBefore + 7)).slice(deadBefore) as Array<{
      error: string;
      topic: string;
    }>;
    assert.equal(letters.length, 7);
    const reasons = letters.map((l) => l.error).join("\n");
    for (const expected of [
      /not acceptable JSON/,
      /temperature: missing/,
      /temperature: must be a finite number, not "hot"/,
      /exceeds max_message_bytes/,
      /__proto__|prototype/,
    ]) {
      assert.match(reasons, expected);
    }
    assert.ok(letters.every((l) => l.topic === "fan/messages"));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it("loses nothing when the connector is killed mid-stream and started again", async () => {
    const batch = readings(3000, 3, 3e12);
    const sending = send(batch);
    await eventually("the first predictions (mid-stream)", () => predictionsFor(3e12, 3000).size > 0);
    connector.kill("SIGKILL");
    await finished(connector);
    await sending;
    await startConnector();
    const found = await waitForAll(3e12, 3000, 90_000);
    const duplicates = [...found.values()].filter((list) => list.length > 1).length;
    console.log(
      `connector killed mid-stream: 3000 readings, ${found.size} predicted, ${duplicates} predicted more than once`,
    );
    assert.equal(found.size, 3000);
  });

  it("retries while the score function is down, and loses nothing", async () => {
    score.kill("SIGKILL");
    await finished(score);
    await send(readings(200, 4, 4e12));
    // Down until the connector has retried calls that failed, twice over: then score comes back.
    await eventually(
      "the connector retries the calls that failed",
      async () => (await metric('connector_retries_total{function="predict"}')) >= 2,
    );
    await startScore();
    const found = await waitForAll(4e12, 200, 60_000);
    assert.equal(found.size, 200);
  });

  it("reports health and metrics", async () => {
    await send(readings(24, 5, 5e12));
    await waitForAll(5e12, 24);
    await settled(5.5e12);
    const health = (await (await fetch(`http://127.0.0.1:${connectorEnv.port}/healthz`)).json()) as {
      status: string;
      broker: string;
    };
    assert.deepEqual([health.status, health.broker], ["ok", "connected"]);
    const metrics = await (await fetch(`http://127.0.0.1:${connectorEnv.port}/metrics`)).text();
    for (const name of [
      "connector_messages_received_total",
      "connector_invocations_total",
      "connector_batch_size",
      "connector_invocation_seconds",
      "connector_retries_total",
      "connector_dead_lettered_total",
      "connector_invocations_in_flight",
    ]) {
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    assert.match(metrics, /connector_batch_size_count\{function="predict"\} [1-9]/);
    assert.match(metrics, /^connector_messages_pending 0$/m, "everything received was acknowledged");
    assert.match(metrics, /^connector_invocations_in_flight 0$/m);
  });

  it("drains and exits 0 on SIGTERM", async () => {
    const done = finished(connector);
    connector.kill("SIGTERM");
    assert.equal((await done).code, 0);
  });
});
