import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { parseStaticFunctions, readConnectorConfig } from "../connectors/mqtt/config.js";
import { topicMatches } from "../connectors/mqtt/topic-filter.js";
import { ConfigError } from "../lib/errors.js";
import { startMosquitto, type Broker } from "./support/mosquitto.js";
import { Collector } from "./support/mqtt-collector.js";
import { finished, freePort, spawnCli, waitForOutput } from "./support/process.js";

describe("topic filters", () => {
  const cases: Array<[string, string, boolean]> = [
    ["fan/messages", "fan/messages", true],
    ["fan/messages", "fan/messages/x", false],
    ["fan/+", "fan/messages", true],
    ["fan/+", "fan/a/b", false],
    ["fan/+/temp", "fan/7/temp", true],
    ["fan/#", "fan", true],
    ["fan/#", "fan/a/b/c", true],
    ["#", "fan/a", true],
    ["#", "$SYS/broker/load", false],
    ["+/broker", "$SYS/broker", false],
    ["$share/g/fan/+", "fan/messages", true],
  ];
  for (const [filter, topic, expected] of cases) {
    it(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () => assert.equal(topicMatches(filter, topic), expected));
  }
});

describe("connector configuration", () => {
  it("reads the official connector's names in lower or upper case", () => {
    const config = readConnectorConfig({ gateway_url: "http://gw:8080/", TOPIC: "a,b/+", qos: "0", BATCH_SIZE: "50", broker: "mqtt://broker:1883", MQTT_USERNAME: "u", MQTT_PASSWORD: "p" });
    assert.equal(config.gatewayUrl, "http://gw:8080");
    assert.deepEqual(config.topics, ["a", "b/+"]);
    assert.equal(config.qos, 0);
    assert.equal(config.batchSize, 50);
    assert.deepEqual(config.mqtt, { url: "mqtt://broker:1883", username: "u", password: "p" });
    assert.equal(config.staticFunctions, undefined);
  });

  it("parses static routes", () => {
    assert.deepEqual([...parseStaticFunctions("fan/messages=predict, audit; x/+=y")], [["fan/messages", ["predict", "audit"]], ["x/+", ["y"]]]);
    assert.throws(() => parseStaticFunctions("fan/messages"), ConfigError);
  });

  it("names the setting that is wrong", () => {
    assert.throws(() => readConnectorConfig({ qos: "2" }), (e: unknown) => e instanceof ConfigError && /qos/.test(e.message));
    assert.throws(() => readConnectorConfig({ batch_size: "many" }), (e: unknown) => e instanceof ConfigError && /batch_size/.test(e.message));
    assert.throws(() => readConnectorConfig({ basic_auth: "true", secret_mount_path: "/nonexistent" }), /basic-auth-user/);
  });
});

interface Invocation {
  path: string;
  body: string;
  headers: IncomingHttpHeaders;
}

/**
 * A stand-in for the OpenFaaS gateway (none runs here): /system/functions behind basic auth, and
 * /function/<name> and /async-function/<name> that record what they receive.
 */
class FakeGateway {
  readonly invocations: Invocation[] = [];
  systemDown = false;
  server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const url = req.url ?? "/";
      if (url === "/system/functions") {
        if (req.headers.authorization !== `Basic ${Buffer.from("admin:s3cret").toString("base64")}`) return void res.writeHead(401).end("unauthorized");
        if (this.systemDown) return void res.writeHead(502).end("bad gateway");
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify([
          { name: "echo", annotations: { topic: "sensors/+/temp, fan/#", "reply-topic": "replies" } },
          { name: "other", annotations: { topic: "elsewhere" } },
          { name: "plain" },
        ]));
      }
      this.invocations.push({ path: url, body, headers: req.headers });
      res.writeHead(url.startsWith("/async-function/") ? 202 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true, bytes: body.length }));
    });
  });

  async listen(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
}

describe("connector with gateway discovery against a real Mosquitto", { timeout: 120_000 }, () => {
  let broker: Broker;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let secrets: string;
  let publisher: MqttClient;
  let collector: Collector;
  const children: ChildProcessWithoutNullStreams[] = [];

  async function connector(env: Record<string, string>): Promise<{ child: ChildProcessWithoutNullStreams; port: number }> {
    const port = await freePort();
    const child = spawnCli(["connector"], { gateway_url: gatewayUrl, broker: broker.url, basic_auth: "true", secret_mount_path: secrets, refresh_interval_ms: "200", port: String(port), ...env });
    children.push(child);
    await waitForOutput(child, /connector running/);
    return { child, port };
  }

  async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  before(async () => {
    broker = await startMosquitto();
    gateway = new FakeGateway();
    gatewayUrl = await gateway.listen();
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-secrets-"));
    await writeFile(join(secrets, "basic-auth-user"), "admin\n");
    await writeFile(join(secrets, "basic-auth-password"), "s3cret\n");
    publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-test-publisher" });
    collector = await Collector.start(broker.url, ["replies"]);
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await publisher?.endAsync();
    await collector?.stop();
    gateway?.server.close();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("with batch size 1 forwards the raw payload like the official connector, by wildcard topic, and publishes the reply", async () => {
    const { child } = await connector({ batch_size: "1", topic: "sensors/#,fan/#", client_id: "raw" });
    await publisher.publishAsync("sensors/a/temp", "not even json", { qos: 1 });
    await publisher.publishAsync("sensors/a/humidity", "{}", { qos: 1 }); // no function subscribes to it
    await until(() => gateway.invocations.length >= 1, "the invocation");
    const [call] = gateway.invocations;
    assert.equal(call?.path, "/function/echo");
    assert.equal(call?.body, "not even json");
    assert.equal(call?.headers["x-topic"], "sensors/a/temp");
    assert.equal(call?.headers["content-type"], "application/json");
    const [reply] = await collector.waitFor("replies", 1);
    assert.deepEqual(reply, { ok: true, bytes: 13 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(gateway.invocations.length, 1, "sensors/a/humidity matches no function");
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });

  it("keeps its routes while the gateway's /system API is down", async () => {
    gateway.invocations.length = 0;
    const { child, port } = await connector({ topic: "fan/#", client_id: "outage" });
    gateway.systemDown = true;
    after(() => (gateway.systemDown = false));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { status: string; discoveryError: string | null };
    assert.equal(health.status, "ok");
    assert.match(health.discoveryError ?? "", /502/);
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "1" }), { qos: 1 });
    await until(() => gateway.invocations.length >= 1, "an invocation during the outage");
    assert.equal(gateway.invocations[0]?.body, JSON.stringify([{ deviceID: "1" }]), "batches are JSON arrays");
    gateway.systemDown = false;
    child.kill("SIGTERM");
    await finished(child);
  });

  it("batches by source topic, so X-Topic names the topic of every message in the batch", async () => {
    gateway.invocations.length = 0;
    const { child } = await connector({ topic: "fan/#", client_id: "topics", batch_wait_ms: "200" });
    const sent = Array.from({ length: 40 }, (_, i) => ({ topic: `fan/${i % 2 === 0 ? "east" : "west"}/messages`, n: i }));
    await Promise.all(sent.map((m) => publisher.publishAsync(m.topic, JSON.stringify(m), { qos: 1 })));
    await until(() => gateway.invocations.reduce((n, c) => n + (JSON.parse(c.body) as unknown[]).length, 0) >= 40, "40 messages");
    for (const call of gateway.invocations) {
      const items = JSON.parse(call.body) as Array<{ topic: string }>;
      assert.ok(items.every((m) => m.topic === call.headers["x-topic"]), `a batch for ${String(call.headers["x-topic"])} held ${items.map((m) => m.topic).join(", ")}`);
    }
    assert.ok(gateway.invocations.length < 40, `messages were batched (${gateway.invocations.length} invocations)`);
    child.kill("SIGTERM");
    await finished(child);
  });

  it("invokes asynchronously with X-Callback-Url", async () => {
    gateway.invocations.length = 0;
    const { child } = await connector({ topic: "fan/#", client_id: "async", async_invoke: "true", callback_url: "http://receiver:8080/done" });
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "2" }), { qos: 1 });
    await until(() => gateway.invocations.length >= 1, "the async invocation");
    assert.equal(gateway.invocations[0]?.path, "/async-function/echo");
    assert.equal(gateway.invocations[0]?.headers["x-callback-url"], "http://receiver:8080/done");
    child.kill("SIGTERM");
    await finished(child);
  });

  it("splits the load between replicas of a shared subscription, each message once", async () => {
    gateway.invocations.length = 0;
    const replicas = [await connector({ topic: "fan/#", client_id: "replica-1", shared_group: "fanwatch", batch_size: "1" }), await connector({ topic: "fan/#", client_id: "replica-2", shared_group: "fanwatch", batch_size: "1" })];
    await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publishAsync("fan/messages", JSON.stringify({ n: i }), { qos: 1 })));
    await until(() => gateway.invocations.length >= 200, "200 invocations");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(gateway.invocations.length, 200);
    assert.equal(new Set(gateway.invocations.map((c) => c.body)).size, 200);
    const perReplica = await Promise.all(replicas.map(async (r) => Number(/connector_messages_received_total\{topic="fan\/messages"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text())?.[1] ?? 0)));
    assert.ok(perReplica.every((n) => n > 0), `each replica took a share: ${perReplica.join(" + ")}`);
    for (const r of replicas) r.child.kill("SIGTERM");
  });
});
