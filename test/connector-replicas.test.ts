import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { readConnectorConfig } from "../connectors/mqtt/config.js";
import { Connector } from "../connectors/mqtt/connector.js";
import { createLogger } from "../lib/log.js";
import { ConfigError } from "../lib/errors.js";
import { GatewayStandIn, STAND_IN_PASSWORD, STAND_IN_USER } from "./support/gateway-stand-in.js";
import { ManualClock } from "./support/manual-clock.js";
import { startMosquitto, type Broker } from "./support/mosquitto.js";

describe("connector settings for replicas and autoscaling", () => {
  it("keeps one replica's worth as today (8), caps all functions at 5 × that, autoscale off", () => {
    const config = readConnectorConfig({});
    assert.deepEqual([config.maxInFlight, config.maxInFlightTotal, config.autoscale], [8, 40, undefined]);
    assert.equal(readConnectorConfig({ max_inflight: "3" }).maxInFlightTotal, 15);
    assert.deepEqual(readConnectorConfig({ AUTOSCALE: "true", max_inflight: "4" }).autoscale, { intervalMs: 5_000, windowMs: 60_000, targetInFlight: 4 });
  });

  it("refuses autoscale with static routes, and a value that is not true or false", () => {
    assert.throws(() => readConnectorConfig({ autoscale: "true", functions: "fan/messages=predict" }), (e: unknown) => e instanceof ConfigError && /autoscale: it needs the gateway/.test(e.message));
    assert.throws(() => readConnectorConfig({ autoscale: "yes" }), (e: unknown) => e instanceof ConfigError && /autoscale: "yes" is not true or false/.test(e.message));
  });
});

describe("connector concurrency and scaling against a real Mosquitto and a gateway stand-in", { timeout: 120_000 }, () => {
  const silent = createLogger("connector-replicas-test", "silent");
  let broker: Broker;
  let publisher: MqttClient;
  let secrets: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    broker = await startMosquitto();
    publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-replicas-publisher" });
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-replicas-secrets-"));
    await writeFile(join(secrets, "basic-auth-user"), `${STAND_IN_USER}\n`);
    await writeFile(join(secrets, "basic-auth-password"), `${STAND_IN_PASSWORD}\n`);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await publisher?.endAsync();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  async function setUp(topic: string, fn: { labels?: Record<string, string>; replicas: number }, env: Record<string, string>, clock?: ManualClock) {
    const gateway = new GatewayStandIn();
    gateway.functions = [{ name: "predict", annotations: { topic }, labels: fn.labels ?? {}, replicas: fn.replicas, availableReplicas: fn.replicas }];
    const url = await gateway.listen();
    const config = readConnectorConfig({ gateway_url: url, broker: broker.url, basic_auth: "true", secret_mount_path: secrets, refresh_interval_ms: "100", port: "0", HEALTH_HOST: "127.0.0.1", topic, client_id: topic.replace(/\W/g, "-"), batch_size: "1", ...env });
    const connector = new Connector(config, silent, clock === undefined ? {} : { clock });
    cleanups.push(async () => {
      await gateway.close();
      await connector.drain();
    });
    await connector.start();
    return { gateway, connector, metrics: () => metricsOf(connector.port) };
  }

  async function publish(topic: string, count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, (_, n) => publisher.publishAsync(topic, JSON.stringify({ n }), { qos: 1 })));
  }

  it("opens max_inflight invocations per replica ready, more as replicas become available, fewer when they go, and retries within the smaller limit", async () => {
    const clock = new ManualClock(); // the retries' backoff moves when the test says
    const { gateway, metrics } = await setUp("fan/replicas", { replicas: 1 }, { max_inflight: "2", retries: "20" }, clock);
    await publish("fan/replicas", 60);

    // One replica: two open, the rest waiting in the connector.
    await eventually(async () => gateway.open.length === 2 && (await pendingOf(metrics)) === 60, "two invocations open, 60 messages received");
    assert.match(await metrics(), /^connector_inflight_limit\{function="predict"\} 2$/m);
    assert.match(await metrics(), /^connector_invocations_in_flight 2$/m, "the connector holds the other 58 back");
    assert.equal(gateway.peak, 2);

    // Three replicas ready: six open.
    gateway.fn("predict").availableReplicas = 3;
    await eventually(async () => gateway.open.length === 6, "six invocations open with three replicas");
    assert.match(await metrics(), /^connector_inflight_limit\{function="predict"\} 6$/m);
    assert.equal(gateway.peak, 6);

    // Scaled down to one: the six in flight fail (their replicas are gone) and are retried two at a time.
    gateway.fn("predict").availableReplicas = 1;
    await eventually(async () => /^connector_inflight_limit\{function="predict"\} 2$/m.test(await metrics()), "the limit back to 2");
    assert.equal(gateway.answerAll(503), 6);
    gateway.resetPeak();
    await eventually(async () => /^connector_retries_total\{function="predict"\} 6$/m.test(await metrics()), "six failed attempts");
    clock.advance(); // every backoff ends at once: without a limit on attempts, all six would go now
    await eventually(async () => gateway.open.length === 2, "two retries open");
    assert.match(await metrics(), /^connector_invocations_in_flight 6$/m, "six batches still in flight, no new one taken");
    assert.equal(gateway.answerAll(200), 2);
    await eventually(async () => gateway.open.length === 2, "the next two retries");
    gateway.hold = false;
    gateway.answerAll(200);
    await eventually(async () => new Set(gateway.delivered).size === 60 && (await pendingOf(metrics)) === 0, "every message delivered and acknowledged");
    assert.equal(gateway.peak, 2, "never more than two open after the scale-down");
    assert.deepEqual([...new Set(gateway.delivered)].map((b) => (JSON.parse(b) as { n: number }).n).sort((a, b) => a - b), Array.from({ length: 60 }, (_, n) => n));
    assert.doesNotMatch(await metrics(), /^connector_dead_lettered_total/m);
  });

  it("with autoscale on, asks for replicas under a backlog by the labels' step up to max, then down one at a time to min once it is gone", async () => {
    // max 4, factor 50: CE's step ceil(4 × 50 / 100) = 2.
    const labels = { "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "4", "com.openfaas.scale.factor": "50" };
    const { gateway, metrics } = await setUp("fan/autoscale", { labels, replicas: 1 }, { max_inflight: "1", autoscale: "true", autoscale_interval_ms: "200", autoscale_window_ms: "600" });
    await publish("fan/autoscale", 40);
    await eventually(async () => gateway.scaleRequests.length >= 1, "a scale-up request");
    gateway.fn("predict").availableReplicas = gateway.fn("predict").replicas;
    await eventually(async () => gateway.scaleRequests.length >= 2, "a second scale-up request");
    gateway.fn("predict").availableReplicas = gateway.fn("predict").replicas;
    assert.deepEqual(gateway.scaleRequests.slice(0, 2), [{ name: "predict", replicas: 3, serviceName: "predict" }, { name: "predict", replicas: 4, serviceName: "predict" }], "1 + 2, then max");
    // The backlog is worked off; with no load, one replica less after each window, down to min.
    gateway.hold = false;
    gateway.answerAll(200);
    await eventually(async () => gateway.scaleRequests.length >= 5, "three scale-down requests");
    const listings = gateway.listings;
    await eventually(async () => gateway.listings >= listings + 10, "ten more refreshes at min");
    assert.deepEqual(gateway.scaleRequests.map((r) => r.replicas), [3, 4, 3, 2, 1], "never beyond the labels' bounds, down one at a time, nothing below min");
    assert.match(await metrics(), /^connector_scale_requests_total\{function="predict",direction="down",code="202"\} 3$/m);
    assert.equal(new Set(gateway.delivered).size, 40);
  });

  it("with autoscale off (the default), never asks the gateway to scale, whatever the backlog", async () => {
    const labels = { "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "4", "com.openfaas.scale.factor": "50" };
    const { gateway } = await setUp("fan/no-autoscale", { labels, replicas: 1 }, { max_inflight: "1", autoscale_interval_ms: "100" });
    await publish("fan/no-autoscale", 20);
    await eventually(async () => gateway.open.length === 1, "the backlog");
    const listings = gateway.listings;
    await eventually(async () => gateway.listings >= listings + 10, "ten refreshes under the backlog");
    assert.deepEqual(gateway.scaleRequests, []);
  });
});

async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

async function pendingOf(metrics: () => Promise<string>): Promise<number> {
  return Number(/^connector_messages_pending (\d+)$/m.exec(await metrics())?.[1] ?? -1);
}

/** Polls an asynchronous condition until it holds. */
async function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
