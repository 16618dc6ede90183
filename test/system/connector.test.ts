import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { healthOf, metricsOf } from "../support/connector-health.js";
import { eventually } from "../support/eventually.js";
import { FAKE_GATEWAY_PASSWORD, FAKE_GATEWAY_USER, FakeGateway } from "../support/fake-gateway.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { finished, freePort, spawnCli, waitForOutput } from "../support/process.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";

// The connector as a process against Mosquitto. What needs no server (topic filters, the circuit,
// configuration, the connector in-process on a fake clock) is in test/unit.
// Every test has its own broker, gateway stand-in, publisher and collector: none sees a message,
// an invocation, a restarted broker or a patched answer left by another.
describe("connector with gateway discovery against a real Mosquitto", { timeout: 120_000 }, () => {
  let broker: Broker;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let secrets: string;
  let publisher: MqttClient;
  let collector: Collector;
  let children: ChildProcessWithoutNullStreams[];

  async function connector(
    env: Record<string, string>,
  ): Promise<{ child: ChildProcessWithoutNullStreams; port: number }> {
    const port = await freePort();
    const child = spawnCli(["connector"], {
      gateway_url: gatewayUrl,
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      refresh_interval_ms: "200",
      port: String(port),
      ...env,
    });
    children.push(child);
    await waitForOutput(child, /connector running/);
    return { child, port };
  }

  beforeEach(async () => {
    children = [];
    broker = await startMosquitto();
    gateway = new FakeGateway();
    gatewayUrl = await gateway.listen();
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
    publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-test-publisher" });
    collector = await Collector.start(broker.url, ["replies", "fan/deadletter"]);
  });
  afterEach(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await publisher?.endAsync();
    await collector?.stop();
    await gateway?.close();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("with batch size 1 forwards the raw payload like the official connector, by wildcard topic, and publishes the reply", async () => {
    const { child, port } = await connector({ batch_size: "1", topic: "sensors/#,fan/#", client_id: "raw" });
    await publisher.publishAsync("sensors/a/temp", "not even json", { qos: 1 });
    await publisher.publishAsync("sensors/a/humidity", "{}", { qos: 1 }); // no function subscribes to it: held
    await eventually("the invocation", () => gateway.invocations.length >= 1);
    const [call] = gateway.invocations;
    assert.equal(call?.path, "/function/echo");
    assert.equal(call?.body, "not even json");
    assert.equal(call?.headers["x-topic"], "sensors/a/temp");
    assert.equal(call?.headers["content-type"], "application/json");
    assert.equal(call?.headers["x-timeout-ms"], "10000", "the function's budget is the connector's timeout");
    const [reply] = await collector.waitFor("replies", 1);
    assert.deepEqual(reply, { ok: true, bytes: 13 });
    await eventually("sensors/a/humidity received and held", async () =>
      /^connector_messages_held 1$/m.test(await metricsOf(port)),
    );
    assert.equal(gateway.invocations.length, 1, "sensors/a/humidity matches no function");
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });

  it("keeps its routes while the gateway's /system API is down", async () => {
    const { child, port } = await connector({ topic: "fan/#", client_id: "outage" });
    gateway.systemDown = true;
    await eventually("a refresh that failed", async () => /502/.test((await healthOf(port)).discoveryError ?? ""));
    assert.equal((await healthOf(port)).status, "ok");
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "1" }), { qos: 1 });
    await eventually("an invocation during the outage", () => gateway.invocations.length >= 1);
    assert.equal(gateway.invocations[0]?.body, JSON.stringify([{ deviceID: "1" }]), "batches are JSON arrays");
    gateway.systemDown = false;
    child.kill("SIGTERM");
    await finished(child);
  });

  it("batches by source topic, so X-Topic names the topic of every message in the batch", async () => {
    const { child } = await connector({ topic: "fan/#", client_id: "topics", batch_wait_ms: "200" });
    const sent = Array.from({ length: 40 }, (_, i) => ({
      topic: `fan/${i % 2 === 0 ? "east" : "west"}/messages`,
      n: i,
    }));
    await Promise.all(sent.map((m) => publisher.publishAsync(m.topic, JSON.stringify(m), { qos: 1 })));
    await eventually(
      "40 messages",
      () => gateway.invocations.reduce((n, c) => n + (JSON.parse(c.body) as unknown[]).length, 0) >= 40,
    );
    for (const call of gateway.invocations) {
      const items = JSON.parse(call.body) as Array<{ topic: string }>;
      assert.ok(
        items.every((m) => m.topic === call.headers["x-topic"]),
        `a batch for ${String(call.headers["x-topic"])} held ${items.map((m) => m.topic).join(", ")}`,
      );
    }
    assert.ok(gateway.invocations.length < 40, `messages were batched (${gateway.invocations.length} invocations)`);
    child.kill("SIGTERM");
    await finished(child);
  });

  it("invokes asynchronously with X-Callback-Url", async () => {
    const { child } = await connector({
      topic: "fan/#",
      client_id: "async",
      async_invoke: "true",
      callback_url: "http://receiver:8080/done",
    });
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "2" }), { qos: 1 });
    await eventually("the async invocation", () => gateway.invocations.length >= 1);
    assert.equal(gateway.invocations[0]?.path, "/async-function/echo");
    assert.equal(gateway.invocations[0]?.headers["x-callback-url"], "http://receiver:8080/done");
    child.kill("SIGTERM");
    await finished(child);
  });

  it("splits the load between replicas of a shared subscription, each message once", async () => {
    const replicas = [
      await connector({ topic: "fan/#", client_id: "replica-1", shared_group: "fanwatch", batch_size: "1" }),
      await connector({ topic: "fan/#", client_id: "replica-2", shared_group: "fanwatch", batch_size: "1" }),
    ];
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        publisher.publishAsync("fan/messages", JSON.stringify({ n: i }), { qos: 1 }),
      ),
    );
    await eventually("200 invocations", () => gateway.invocations.length >= 200);
    // Nothing more to come: both replicas idle, having received 200 messages between them.
    const received = async (port: number) =>
      Number(/connector_messages_received_total\{filter="fan\/#"\} (\d+)/.exec(await metricsOf(port))?.[1] ?? 0);
    await eventually("both replicas idle", async () => {
      const metrics = await Promise.all(replicas.map((r) => metricsOf(r.port)));
      return metrics.every(
        (m) => /^connector_messages_pending 0$/m.test(m) && /^connector_invocations_in_flight 0$/m.test(m),
      );
    });
    assert.equal(
      (await Promise.all(replicas.map((r) => received(r.port)))).reduce((a, b) => a + b, 0),
      200,
      "each message received once",
    );
    assert.equal(gateway.invocations.length, 200);
    assert.equal(new Set(gateway.invocations.map((c) => c.body)).size, 200);
    const perReplica = await Promise.all(replicas.map((r) => received(r.port)));
    assert.ok(
      perReplica.every((n) => n > 0),
      `each replica took a share: ${perReplica.join(" + ")}`,
    );
    for (const r of replicas) r.child.kill("SIGTERM");
  });

  it("holds a message no function has the topic for, unhealthy and saying why, across a restart, and delivers it once a route appears", async () => {
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/mesages" } }]; // a typo
    const first = await connector({ topic: "fan/held", client_id: "no-route" });
    const reading = { deviceID: "7", n: "held" };
    await publisher.publishAsync("fan/held", JSON.stringify(reading), { qos: 1 });
    const health = await healthOf(first.port);
    assert.deepEqual([health.code, health.status], [503, "unavailable"]);
    assert.ok(
      health.problems.includes("no function has the topic annotation for fan/held"),
      JSON.stringify(health.problems),
    );
    await eventually("the message held", async () => /^connector_messages_held 1$/m.test(await metricsOf(first.port)));
    assert.equal(
      (await healthOf(first.port)).paused,
      "no function has the topic annotation for fan/held",
      "intake paused",
    );
    first.child.kill("SIGTERM");
    assert.equal((await finished(first.child)).code, 0);

    const second = await connector({ topic: "fan/held", client_id: "no-route" });
    await eventually("the message redelivered to the restarted connector and held again", async () =>
      /^connector_messages_held 1$/m.test(await metricsOf(second.port)),
    );
    assert.equal(gateway.invocations.length, 0);
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/held" } }];
    await eventually("the invocation once a route appeared", () => gateway.invocations.length >= 1);
    assert.equal(gateway.invocations[0]?.path, "/function/predict");
    assert.deepEqual(JSON.parse(gateway.invocations[0]?.body ?? ""), [reading]);
    await eventually("healthy again", async () => (await healthOf(second.port)).status === "ok");
    assert.match(await metricsOf(second.port), /^connector_messages_pending 0$/m);
    second.child.kill("SIGTERM");
    assert.equal((await finished(second.child)).code, 0);
  });

  it("splits a batch the function rejects with 400, dead-letters only the bad message and delivers the rest once each", async () => {
    gateway.answer = (call) => (call.body.includes('"bad"') ? { status: 400, body: "bad reading" } : undefined);
    const letters = collector.on("fan/deadletter").length;
    const { child } = await connector({ topic: "fan/split", client_id: "split", batch_wait_ms: "300" });
    const sent = Array.from({ length: 10 }, (_, n) => (n === 6 ? { n, bad: true } : { n }));
    await Promise.all(sent.map((m) => publisher.publishAsync("fan/split", JSON.stringify(m), { qos: 1 })));
    const [letter] = (await collector.waitFor("fan/deadletter", letters + 1)).slice(letters) as Array<{
      error: string;
      topic: string;
      payload: string;
    }>;
    assert.match(letter?.error ?? "", /echo answered 400: bad reading/);
    assert.equal(letter?.topic, "fan/split");
    assert.deepEqual(JSON.parse(letter?.payload ?? ""), { n: 6, bad: true });
    await eventually("the nine good messages", () => gateway.delivered().length >= 9);
    const delivered = (gateway.delivered() as Array<{ n: number }>).map((m) => m.n).sort((a, b) => a - b);
    assert.deepEqual(delivered, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });
});
