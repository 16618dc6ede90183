import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { parse, stringify } from "yaml";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { createLogger } from "../../lib/infra/log.js";
import { ConfigError } from "../../lib/errors.js";
import { GatewayStandIn, STAND_IN_PASSWORD, STAND_IN_USER } from "../support/gateway-stand-in.js";
import { ManualClock } from "../support/manual-clock.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";
import { metricsOf } from "../support/connector-health.js";
import { eventually } from "../support/eventually.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";

describe("connector settings for replicas and autoscaling", () => {
  it("keeps one replica's worth as today (8), caps all functions at 5 × that, autoscale off", () => {
    const config = readConnectorConfig({});
    assert.deepEqual([config.maxInFlight, config.maxInFlightTotal, config.autoscale], [8, 40, undefined]);
    assert.equal(readConnectorConfig({ max_inflight: "3" }).maxInFlightTotal, 15);
    assert.deepEqual(readConnectorConfig({ AUTOSCALE: "true", max_inflight: "4" }).autoscale, {
      intervalMs: 5_000,
      windowMs: 60_000,
      targetInFlight: 4,
    });
  });

  it("refuses autoscale with static routes, and a value that is not true or false", () => {
    assert.throws(
      () => readConnectorConfig({ autoscale: "true", functions: "fan/messages=predict" }),
      (e: unknown) => e instanceof ConfigError && /autoscale: it needs the gateway/.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ autoscale: "yes" }),
      (e: unknown) => e instanceof ConfigError && /autoscale: "yes" is not true or false/.test(e.message),
    );
  });
});

describe(
  "connector concurrency and scaling against a real Mosquitto and a gateway stand-in",
  { timeout: 120_000 },
  () => {
    const silent = createLogger("connector-replicas-test", "silent");
    let broker: Broker;
    let publisher: MqttClient;
    let secrets: string;
    const cleanups: Array<() => Promise<void>> = [];

    before(async () => {
      broker = await startMosquitto();
      publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-replicas-publisher" });
      secrets = await writeGatewaySecrets("fanwatch-replicas-secrets-", STAND_IN_USER, STAND_IN_PASSWORD);
    });
    // Each test's gateway stand-in and connector end with it: none goes on running into the next.
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });
    after(async () => {
      await publisher?.endAsync();
      await broker?.stop();
      await rm(secrets, { recursive: true, force: true });
    });

    async function setUp(
      topic: string,
      fn: { labels?: Record<string, string>; replicas: number },
      env: Record<string, string>,
      clock?: ManualClock,
    ) {
      const gateway = new GatewayStandIn();
      gateway.functions = [
        {
          name: "predict",
          annotations: { topic },
          labels: fn.labels ?? {},
          replicas: fn.replicas,
          availableReplicas: fn.replicas,
        },
      ];
      const url = await gateway.listen();
      const config = readConnectorConfig({
        gateway_url: url,
        broker: broker.url,
        basic_auth: "true",
        secret_mount_path: secrets,
        refresh_interval_ms: "100",
        port: "0",
        HEALTH_HOST: "127.0.0.1",
        topic,
        client_id: topic.replace(/\W/g, "-"),
        batch_size: "1",
        ...env,
      });
      const connector = new Connector(config, silent, clock === undefined ? {} : { clock });
      cleanups.push(async () => {
        await gateway.close();
        await connector.drain();
      });
      await connector.start();
      return { gateway, connector, metrics: () => metricsOf(connector.port) };
    }

    async function publish(topic: string, count: number): Promise<void> {
      await Promise.all(
        Array.from({ length: count }, (_, n) => publisher.publishAsync(topic, JSON.stringify({ n }), { qos: 1 })),
      );
    }

    it("opens max_inflight invocations per replica ready, more as replicas become available, fewer when they go, and retries within the smaller limit", async () => {
      const clock = new ManualClock(); // the retries' backoff moves when the test says
      const { gateway, metrics } = await setUp(
        "fan/replicas",
        { replicas: 1 },
        { max_inflight: "2", retries: "20" },
        clock,
      );
      await publish("fan/replicas", 60);

      // One replica: two open, the rest waiting in the connector.
      await eventually(
        "two invocations open, 60 messages received",
        async () => gateway.open.length === 2 && (await pendingOf(metrics)) === 60,
      );
      assert.match(await metrics(), /^connector_inflight_limit\{function="predict"\} 2$/m);
      assert.match(await metrics(), /^connector_invocations_in_flight 2$/m, "the connector holds the other 58 back");
      assert.equal(gateway.peak, 2);

      // Three replicas ready: six open.
      gateway.fn("predict").availableReplicas = 3;
      await eventually("six invocations open with three replicas", async () => gateway.open.length === 6);
      assert.match(await metrics(), /^connector_inflight_limit\{function="predict"\} 6$/m);
      assert.equal(gateway.peak, 6);

      // Scaled down to one: the six in flight fail (their replicas are gone) and are retried two at a time.
      gateway.fn("predict").availableReplicas = 1;
      await eventually("the limit back to 2", async () =>
        /^connector_inflight_limit\{function="predict"\} 2$/m.test(await metrics()),
      );
      assert.equal(gateway.answerAll(503), 6);
      gateway.resetPeak();
      await eventually("six failed attempts", async () =>
        /^connector_retries_total\{function="predict"\} 6$/m.test(await metrics()),
      );
      clock.advance(); // every backoff ends at once: without a limit on attempts, all six would go now
      await eventually("two retries open", async () => gateway.open.length === 2);
      assert.match(
        await metrics(),
        /^connector_invocations_in_flight 6$/m,
        "six batches still in flight, no new one taken",
      );
      assert.equal(gateway.answerAll(200), 2);
      await eventually("the next two retries", async () => gateway.open.length === 2);
      gateway.hold = false;
      gateway.answerAll(200);
      await eventually(
        "every message delivered and acknowledged",
        async () => new Set(gateway.delivered).size === 60 && (await pendingOf(metrics)) === 0,
      );
      assert.equal(gateway.peak, 2, "never more than two open after the scale-down");
      assert.deepEqual(
        [...new Set(gateway.delivered)].map((b) => (JSON.parse(b) as { n: number }).n).sort((a, b) => a - b),
        Array.from({ length: 60 }, (_, n) => n),
      );
      assert.doesNotMatch(await metrics(), /^connector_dead_lettered_total/m);
    });

    it("with autoscale on, asks for replicas under a backlog by the labels' step up to max, then down one at a time to min once it is gone", async () => {
      // max 4, factor 50: CE's step ceil(4 × 50 / 100) = 2.
      const labels = {
        "com.openfaas.scale.min": "1",
        "com.openfaas.scale.max": "4",
        "com.openfaas.scale.factor": "50",
      };
      const { gateway, metrics } = await setUp(
        "fan/autoscale",
        { labels, replicas: 1 },
        { max_inflight: "1", autoscale: "true", autoscale_interval_ms: "200", autoscale_window_ms: "600" },
      );
      await publish("fan/autoscale", 40);
      await eventually("a scale-up request", async () => gateway.scaleRequests.length >= 1);
      gateway.fn("predict").availableReplicas = gateway.fn("predict").replicas;
      await eventually("a second scale-up request", async () => gateway.scaleRequests.length >= 2);
      gateway.fn("predict").availableReplicas = gateway.fn("predict").replicas;
      assert.deepEqual(
        gateway.scaleRequests.slice(0, 2),
        [
          { name: "predict", replicas: 3, serviceName: "predict" },
          { name: "predict", replicas: 4, serviceName: "predict" },
        ],
        "1 + 2, then max",
      );
      // The backlog is worked off; with no load, one replica less after each window, down to min.
      gateway.hold = false;
      gateway.answerAll(200);
      await eventually("three scale-down requests", async () => gateway.scaleRequests.length >= 5);
      const listings = gateway.listings;
      await eventually("ten more refreshes at min", async () => gateway.listings >= listings + 10);
      assert.deepEqual(
        gateway.scaleRequests.map((r) => r.replicas),
        [3, 4, 3, 2, 1],
        "never beyond the labels' bounds, down one at a time, nothing below min",
      );
      assert.match(
        await metrics(),
        /^connector_scale_requests_total\{function="predict",direction="down",code="202"\} 3$/m,
      );
      assert.equal(new Set(gateway.delivered).size, 40);
    });

    it("with autoscale off (the default), never asks the gateway to scale, whatever the backlog", async () => {
      const labels = {
        "com.openfaas.scale.min": "1",
        "com.openfaas.scale.max": "4",
        "com.openfaas.scale.factor": "50",
      };
      const { gateway } = await setUp(
        "fan/no-autoscale",
        { labels, replicas: 1 },
        { max_inflight: "1", autoscale_interval_ms: "100" },
      );
      await publish("fan/no-autoscale", 20);
      await eventually("the backlog", async () => gateway.open.length === 1);
      const listings = gateway.listings;
      await eventually("ten refreshes under the backlog", async () => gateway.listings >= listings + 10);
      assert.deepEqual(gateway.scaleRequests, []);
    });
  },
);

describe(
  "connector concurrency against the real local gateway (fanwatch gateway), whose replicas are set through its scale API",
  { timeout: 180_000 },
  () => {
    const silent = createLogger("connector-real-gateway-test", "silent");
    const score = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] });
    let broker: Broker;
    let dir: string;
    let gatewayUrl: string;
    let connector: Connector;
    let publisher: MqttClient;
    const auth = { authorization: `Basic ${Buffer.from(`${STAND_IN_USER}:${STAND_IN_PASSWORD}`).toString("base64")}` };
    let stopGateway = async (): Promise<void> => {};

    before(async () => {
      broker = await startMosquitto();
      dir = await mkdtemp(join(tmpdir(), "fanwatch-real-gateway-"));
      // score alone, routed from fan/real-score, between 1 and 3 replicas; the gateway's autoscaler
      // never acts within the test (a target no load reaches): the replicas change by hand only.
      const stack = parse(await readFile(join(REPO_ROOT, "stack.yml"), "utf8")) as {
        functions: Record<string, { annotations?: Record<string, string>; labels?: Record<string, string> }>;
      };
      const fn = stack.functions.score;
      assert.ok(fn !== undefined);
      stack.functions = {
        score: {
          ...fn,
          annotations: { ...fn.annotations, topic: "fan/real-score" },
          labels: { "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "3", "com.openfaas.scale.factor": "20" },
        },
      };
      await writeFile(join(dir, "stack.yml"), stringify(stack));
      await writeFile(join(dir, "basic-auth-user"), `${STAND_IN_USER}\n`);
      await writeFile(join(dir, "basic-auth-password"), `${STAND_IN_PASSWORD}\n`);
      const port = await freePort();
      const child = spawnCli(["gateway", "--port", String(port), "--stack", join(dir, "stack.yml")], {
        MQTT_URL: broker.url,
        NATS_URL: "",
        GATEWAY_PASSWORD: STAND_IN_PASSWORD,
        GATEWAY_SCALE_TARGET_INFLIGHT: "1000",
        GATEWAY_SCALE_DOWN_WINDOW_MS: "3600000",
      });
      stopGateway = () => terminate(child);
      await waitForOutput(child, /gateway running on/, 90_000);
      gatewayUrl = `http://127.0.0.1:${port}`;
      const config = readConnectorConfig({
        gateway_url: gatewayUrl,
        broker: broker.url,
        basic_auth: "true",
        secret_mount_path: dir,
        refresh_interval_ms: "100",
        port: "0",
        HEALTH_HOST: "127.0.0.1",
        topic: "fan/real-score",
        client_id: "real-gateway",
        batch_size: "1",
        max_inflight: "2",
      });
      connector = new Connector(config, silent);
      await connector.start();
      publisher = await mqtt.connectAsync(broker.url, { clientId: "real-gateway-publisher" });
    });
    after(async () => {
      await publisher?.endAsync();
      await connector?.drain();
      await stopGateway();
      await broker?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    const limit = async () =>
      Number(/^connector_inflight_limit\{function="score"\} (\d+)$/m.exec(await metricsOf(connector.port))?.[1] ?? 0);
    const answered = async () =>
      Number(
        /^connector_invocations_total\{function="score",code="200"\} (\d+)$/m.exec(
          await metricsOf(connector.port),
        )?.[1] ?? 0,
      );
    const scale = async (replicas: number) => {
      const response = await fetch(`${gatewayUrl}/system/scale-function/score`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body: JSON.stringify({ serviceName: "score", replicas }),
      });
      assert.equal(response.status, 202, await response.text());
    };
    const send = (count: number) =>
      Promise.all(Array.from({ length: count }, () => publisher.publishAsync("fan/real-score", score, { qos: 1 })));

    it("reads availableReplicas from the gateway: 2 in flight at one replica, 6 at three, 2 again at one, and every message answered", async () => {
      await eventually("the limit of one replica (2)", async () => (await limit()) === 2);
      await scale(3);
      await eventually("the limit of three replicas ready (6)", async () => (await limit()) === 6);
      await send(100);
      await eventually("100 invocations answered by three replicas", async () => (await answered()) === 100);
      await scale(1);
      await eventually("the limit back to one replica's (2)", async () => (await limit()) === 2);
      await send(50);
      await eventually(
        "150 answered, none pending",
        async () => (await answered()) === 150 && (await pendingOf(() => metricsOf(connector.port))) === 0,
      );
      assert.doesNotMatch(
        await metricsOf(connector.port),
        /^connector_invocations_total\{function="score",code="(?!200)/m,
        "no failed attempt",
      );
    });
  },
);

async function pendingOf(metrics: () => Promise<string>): Promise<number> {
  return Number(/^connector_messages_pending (\d+)$/m.exec(await metrics())?.[1] ?? -1);
}
