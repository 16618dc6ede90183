import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { rm } from "node:fs/promises";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import mqtt, { type MqttClient } from "mqtt";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { QUARANTINE_STREAM, quarantineSubject } from "../../connectors/mqtt/quarantine.js";
import { createLogger } from "../../lib/infra/log.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { openFanRegistry, type NatsFanRegistry } from "../../lib/registry/nats-registry.js";
import { freePort } from "../../lib/infra/net.js";
import { finished, spawnCli, waitForOutput } from "../support/process.js";
import { isSensorNotice, SensorNoticeSchema } from "../../lib/domain/sensor-notice.js";
import { healthOf, metricsOf } from "../support/connector-health.js";
import { eventually } from "../support/eventually.js";
import { FAKE_GATEWAY_PASSWORD, FAKE_GATEWAY_USER, FakeGateway } from "../support/fake-gateway.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { startNats, type TestNats } from "../support/nats.js";

// The connector's registry gate, in-process (the registry is handed to it, as fanwatch start does),
// against a real Mosquitto and a real nats-server holding FAN_QUARANTINE; predict is a gateway
// stand-in that records what it is given. One broker and one nats-server for the file; every test
// has its own connector, session ids, gateway and fan ids, so none sees another's readings.
describe("only known fans get in: the connector's registry gate", { timeout: 120_000 }, () => {
  let broker: Broker;
  let nats: TestNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let secrets: string;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let publisher: MqttClient;
  let collector: Collector;
  let running: Connector[];
  let registry: MemoryFanRegistry;
  let logLines: Array<Record<string, unknown>>;

  before(async () => {
    broker = await startMosquitto();
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });
  beforeEach(async () => {
    running = [];
    logLines = [];
    registry = new MemoryFanRegistry();
    gateway = new FakeGateway();
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/messages,fan/messages/+" } }];
    gatewayUrl = await gateway.listen();
    publisher = await mqtt.connectAsync(broker.url, { clientId: `registry-test-publisher-${Math.random()}` });
    collector = await Collector.start(broker.url, ["fan/deadletter", "fan/anomaly"]);
  });
  afterEach(async () => {
    for (const c of running) await c.drain();
    await publisher.endAsync();
    await collector.stop();
    await gateway.close();
  });

  /** A connector in this process with the test's registry (none: `withRegistry` false). */
  async function connector(
    clientId: string,
    env: Record<string, string> = {},
    withRegistry = true,
  ): Promise<Connector> {
    const config = readConnectorConfig({
      gateway_url: gatewayUrl,
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      refresh_interval_ms: "200",
      batch_wait_ms: "5",
      port: "0",
      HEALTH_HOST: "127.0.0.1",
      topic: "fan/messages,fan/messages/+",
      client_id: clientId,
      NATS_URL: nats.url,
      ...env,
    });
    const log = createLogger("connector-test", "info", (line) =>
      logLines.push(JSON.parse(line) as Record<string, unknown>),
    );
    const c = new Connector(config, log, withRegistry ? { registry } : {});
    running.push(c);
    await c.start();
    await eventually("the connector ready", async () => (await fetch(`http://127.0.0.1:${c.port}/readyz`)).ok);
    return c;
  }

  const reading = (id: string, n: number, over: Record<string, unknown> = {}) => ({
    deviceID: id,
    timeStamp: `2026-12-07 10:00:${String(n % 60).padStart(2, "0")}`,
    rotation: 600 + n,
    temperature: 40,
    vibration: 150,
    sound: 49,
    ...over,
  });

  /** Publishes one at a time (QoS 1): the broker keeps their order. */
  async function publishInOrder(topic: string, messages: readonly object[]): Promise<void> {
    for (const m of messages) await publisher.publishAsync(topic, JSON.stringify(m), { qos: 1 });
  }

  /** The readings predict was given of fan `id`, in the order it got them. */
  const deliveredOf = (id: string) =>
    gateway.delivered().filter((r) => (r as { deviceID?: unknown }).deviceID === id) as Array<{ rotation: number }>;

  const deadLettersWith = (code: string) =>
    collector.on("fan/deadletter").filter((d) => (d as { code?: unknown }).code === code) as Array<{
      error: string;
      topic: string;
      payload: string;
      code: string;
    }>;

  async function heldIn(id: string): Promise<number> {
    const info = await jsm.streams.info(QUARANTINE_STREAM, { subjects_filter: quarantineSubject(id) });
    return info.state.subjects?.[quarantineSubject(id)] ?? 0;
  }

  const metric = async (c: Connector, pattern: RegExp) => pattern.test(await metricsOf(c.port));

  it("without a registry every reading passes as before, and the connector says every device id is trusted", async () => {
    const c = await connector("no-registry", { NATS_URL: "" }, false);
    await publishInOrder("fan/messages", [reading("ghost-1", 1)]);
    await publishInOrder("fan/messages/ghost-2", [reading("someone-else", 2)]);
    await eventually("both readings at predict", () => gateway.delivered().length >= 2);
    const health = (await healthOf(c.port)) as unknown as { registry: { state: string; trusted: string } };
    assert.equal(health.registry.state, "none");
    assert.match(health.registry.trusted, /every device id/);
    assert.ok(
      logLines.some((l) => l.event === "registry_none" && /every device id is trusted/.test(String(l.msg))),
      "the log says so at start",
    );
    assert.deepEqual(collector.on("fan/deadletter"), []);
  });

  it("reject: an unknown id is dead-lettered FANWATCH_DEVICE_UNKNOWN and counted; an active fan's reading passes", async () => {
    await registry.add("r-known", {}, "test");
    const c = await connector("policy-reject", { UNKNOWN_DEVICE_POLICY: "reject" });
    await publishInOrder("fan/messages/r-stranger", [reading("r-stranger", 1)]);
    await publishInOrder("fan/messages/r-known", [reading("r-known", 2)]);
    const [letter] = await collector.waitFor("fan/deadletter", 1);
    assert.equal((letter as { code: string }).code, "FANWATCH_DEVICE_UNKNOWN");
    assert.match((letter as { error: string }).error, /r-stranger.*not in the registry/);
    await eventually("the known fan's reading at predict", () => deliveredOf("r-known").length === 1);
    assert.equal(deliveredOf("r-stranger").length, 0);
    assert.equal(await registry.get("r-stranger"), undefined, "reject registers nothing");
    await eventually("counted", () => metric(c, /connector_readings_refused_total\{reason="unknown"\} 1/));
  });

  it("open: an unknown id is registered active on its first reading and its readings pass", async () => {
    await connector("policy-open", { UNKNOWN_DEVICE_POLICY: "open" });
    await publishInOrder("fan/messages/o-new", [reading("o-new", 1), reading("o-new", 2)]);
    await eventually("both readings at predict", () => deliveredOf("o-new").length === 2);
    const record = await registry.get("o-new");
    assert.equal(record?.state, "active");
    assert.equal(record?.approvedBy, "open");
  });

  it("quarantine, then approval: the held readings reach predict in order, none lost, none twice, and the stream is emptied", async () => {
    const c = await connector("quarantine-approve");
    const sent = Array.from({ length: 30 }, (_, n) => reading("q-approve", n));
    await publishInOrder("fan/messages/q-approve", sent);
    await eventually("30 readings held", async () => (await heldIn("q-approve")) === 30);
    assert.equal((await registry.get("q-approve"))?.state, "pending");
    assert.equal(deliveredOf("q-approve").length, 0, "nothing of a pending fan reaches predict");
    await eventually("counted", () => metric(c, /connector_readings_quarantined_total 30/));
    await eventually("pending in the gauge", () => metric(c, /connector_registry_fans\{state="pending"\} 1/));

    await registry.approve("q-approve", "Ana");
    await eventually("30 readings at predict", () => deliveredOf("q-approve").length >= 30);
    await eventually("the stream emptied", async () => (await heldIn("q-approve")) === 0);
    await publishInOrder("fan/messages/q-approve", [reading("q-approve", 30)]);
    await eventually("the next reading passes directly", () => deliveredOf("q-approve").length >= 31);
    assert.deepEqual(
      deliveredOf("q-approve").map((r) => r.rotation),
      Array.from({ length: 31 }, (_, n) => 600 + n),
      "in order, each once",
    );
    await eventually("releases counted", () => metric(c, /connector_quarantine_released_total 30/));
  });

  it("quarantine, then refusal: the held readings are purged and never reach predict", async () => {
    await connector("quarantine-refuse");
    await publishInOrder(
      "fan/messages/q-refuse",
      Array.from({ length: 10 }, (_, n) => reading("q-refuse", n)),
    );
    await eventually("10 readings held", async () => (await heldIn("q-refuse")) === 10);
    await registry.retire("q-refuse", "Ana");
    await eventually("purged", async () => (await heldIn("q-refuse")) === 0);
    await publishInOrder("fan/messages/q-refuse", [reading("q-refuse", 10)]);
    const [letter] = await collector.waitFor("fan/deadletter", 1);
    assert.match((letter as { error: string }).error, /retired/);
    assert.equal(deliveredOf("q-refuse").length, 0);
  });

  it("keeps at most QUARANTINE_MAX_PER_FAN readings of a pending fan, the newest", async () => {
    await connector("quarantine-bound", { QUARANTINE_MAX_PER_FAN: "5" });
    await publishInOrder(
      "fan/messages/q-bound",
      Array.from({ length: 12 }, (_, n) => reading("q-bound", n)),
    );
    await eventually("12 readings taken", async () =>
      /connector_readings_quarantined_total 12/.test(await metricsOf((running[0] as Connector).port)),
    );
    assert.equal(await heldIn("q-bound"), 5);
    await registry.approve("q-bound", "Ana");
    await eventually("the 5 held readings at predict", () => deliveredOf("q-bound").length >= 5);
    await eventually("the stream emptied", async () => (await heldIn("q-bound")) === 0);
    assert.deepEqual(
      deliveredOf("q-bound").map((r) => r.rotation),
      [607, 608, 609, 610, 611],
    );
  });

  it("past REGISTRY_MAX_PENDING pending fans, readings of new ids are dead-lettered FANWATCH_REGISTRY_FULL", async () => {
    const c = await connector("pending-bound", { REGISTRY_MAX_PENDING: "3" });
    for (let i = 0; i < 6; i++) await publishInOrder(`fan/messages/p-${i}`, [reading(`p-${i}`, i)]);
    await eventually("3 dead letters", () => deadLettersWith("FANWATCH_REGISTRY_FULL").length >= 3);
    assert.equal((await registry.list("pending")).length, 3);
    assert.equal(deadLettersWith("FANWATCH_REGISTRY_FULL").length, 3);
    assert.match(deadLettersWith("FANWATCH_REGISTRY_FULL")[0]?.error ?? "", /REGISTRY_MAX_PENDING/);
    await eventually("counted", () => metric(c, /connector_readings_refused_total\{reason="full"\} 3/));
  });

  it("holds every reading of a fan that just became pending, even when that fan filled REGISTRY_MAX_PENDING", async () => {
    // As with NATS KV, the connector's cache learns of the fan being pending only later: its
    // second and third readings come while the first is making it pending.
    const lagging = new LaggingRegistry();
    registry = lagging;
    await connector("pending-last", { REGISTRY_MAX_PENDING: "1" });
    lagging.lag = true;
    await publishInOrder("fan/messages/pl-1", [reading("pl-1", 1), reading("pl-1", 2), reading("pl-1", 3)]);
    await eventually("3 readings held", async () => (await heldIn("pl-1")) === 3);
    assert.deepEqual(deadLettersWith("FANWATCH_REGISTRY_FULL"), []);
    lagging.catchUp();
    await publishInOrder("fan/messages/pl-2", [reading("pl-2", 4)]);
    await eventually("the next new id refused", () => deadLettersWith("FANWATCH_REGISTRY_FULL").length === 1);
    assert.equal(deadLettersWith("FANWATCH_REGISTRY_FULL")[0]?.topic, "fan/messages/pl-2");
  });

  it("open: past REGISTRY_MAX_PENDING fans registered by the policy, new ids are dead-lettered FANWATCH_REGISTRY_FULL", async () => {
    await registry.add("ob-person", {}, "test"); // registered by a person: not counted
    await connector("open-bound", { UNKNOWN_DEVICE_POLICY: "open", REGISTRY_MAX_PENDING: "2" });
    for (let i = 0; i < 4; i++) await publishInOrder(`fan/messages/ob-${i}`, [reading(`ob-${i}`, i)]);
    await eventually("2 dead letters", () => deadLettersWith("FANWATCH_REGISTRY_FULL").length >= 2);
    assert.deepEqual(
      deadLettersWith("FANWATCH_REGISTRY_FULL").map((d) => d.topic),
      ["fan/messages/ob-2", "fan/messages/ob-3"],
    );
    assert.match(deadLettersWith("FANWATCH_REGISTRY_FULL")[0]?.error ?? "", /open policy.*REGISTRY_MAX_PENDING/);
    const opened = (await registry.list("active")).filter((r) => r.approvedBy === "open").map((r) => r.id);
    assert.deepEqual(opened.sort(), ["ob-0", "ob-1"]);
    await publishInOrder("fan/messages/ob-1", [reading("ob-1", 5)]);
    await publishInOrder("fan/messages/ob-person", [reading("ob-person", 6)]);
    await eventually(
      "registered fans' readings at predict",
      () => deliveredOf("ob-1").length === 2 && deliveredOf("ob-person").length === 1,
    );
  });

  it("a reading whose deviceID is not its topic's fan is dead-lettered FANWATCH_IDENTITY_MISMATCH, counted and logged", async () => {
    await registry.add("i-a", {}, "test");
    await registry.add("i-b", {}, "test");
    const c = await connector("identity");
    await publishInOrder("fan/messages/i-a", [reading("i-b", 1)]);
    const [letter] = await collector.waitFor("fan/deadletter", 1);
    assert.equal((letter as { code: string }).code, "FANWATCH_IDENTITY_MISMATCH");
    assert.equal((letter as { topic: string }).topic, "fan/messages/i-a");
    await eventually("counted", () => metric(c, /connector_readings_refused_total\{reason="identity"\} 1/));
    const warning = logLines.find((l) => l.event === "identity_mismatch");
    assert.equal(warning?.topic, "fan/messages/i-a");
    assert.equal(warning?.claimed, "i-b");
    assert.equal(warning?.level, 40, "a warning");
    assert.equal(gateway.delivered().length, 0);
  });

  it("the bare telemetry topic is refused with ALLOW_UNBOUND_FANS=false, accepted for registered fans with true", async () => {
    await registry.add("u-1", {}, "test");
    const c = await connector("unbound");
    await publishInOrder("fan/messages", [reading("u-1", 1)]);
    const [letter] = await collector.waitFor("fan/deadletter", 1);
    assert.match((letter as { error: string }).error, /only on fan\/messages\/<deviceID>/);
    await eventually("counted", () => metric(c, /connector_readings_refused_total\{reason="unbound"\} 1/));
    await c.drain();

    await connector("unbound-allowed", { ALLOW_UNBOUND_FANS: "true", UNKNOWN_DEVICE_POLICY: "reject" });
    await publishInOrder("fan/messages", [reading("u-1", 2), reading("u-stranger", 3)]);
    await eventually("the registered fan's reading at predict", () => deliveredOf("u-1").length === 1);
    await eventually("the stranger's dead letter", () => deadLettersWith("FANWATCH_DEVICE_UNKNOWN").length === 1);
    assert.equal(deliveredOf("u-stranger").length, 0);
  });

  it("warns at start when no topic filter carries per-fan readings and ALLOW_UNBOUND_FANS is off", async () => {
    await connector("per-fan-subscribed");
    assert.equal(logLines.filter((l) => l.event === "readings_unreachable").length, 0, "fan/messages/+ is subscribed");
    await connector("bare-only", { topic: "fan/messages" });
    const warning = logLines.find((l) => l.event === "readings_unreachable");
    assert.equal(warning?.level, 40, "a warning");
    assert.match(String(warning?.msg), /fan\/messages\/\+.*every reading on fan\/messages will be refused/);
    await connector("bare-allowed", { topic: "fan/messages", ALLOW_UNBOUND_FANS: "true" });
    assert.equal(
      logLines.filter((l) => l.event === "readings_unreachable").length,
      1,
      "none with unbound fans allowed",
    );
  });

  it("an implausible reading is dead-lettered FANWATCH_READING_IMPLAUSIBLE and health is told on the anomaly topic", async () => {
    await registry.add("s-1", { limits: { temperature: { min: 0, max: 90 } } }, "test");
    const c = await connector("implausible");
    await publishInOrder("fan/messages/s-1", [
      reading("s-1", 1, { rotation: 1e308 }),
      reading("s-1", 2, { temperature: 95 }), // inside the defaults, outside this fan's limits
      reading("s-1", 3),
    ]);
    const letters = await collector.waitFor("fan/deadletter", 2);
    assert.deepEqual(
      letters.map((l) => (l as { code: string }).code),
      ["FANWATCH_READING_IMPLAUSIBLE", "FANWATCH_READING_IMPLAUSIBLE"],
    );
    assert.match((letters[0] as { error: string }).error, /^rotation: 1e\+308 rpm is outside its physical limits/);
    assert.match(
      (letters[1] as { error: string }).error,
      /^temperature: 95 °C is outside its physical limits \(0 to 90 °C\)/,
    );
    const notices = await collector.waitFor("fan/anomaly", 2);
    assert.ok(notices.every(isSensorNotice));
    assert.deepEqual(
      notices.map((n) => SensorNoticeSchema.parse(n).implausible.sensor),
      ["rotation", "temperature"],
    );
    await eventually("the plausible one at predict", () => deliveredOf("s-1").length === 1);
    assert.equal(deliveredOf("s-1")[0]?.rotation, 603);
    await eventually("counted", () => metric(c, /connector_readings_refused_total\{reason="implausible"\} 2/));
  });

  it("a batch is checked per reading: the known fan's reading passes, the unknown one is held", async () => {
    await registry.add("b-known", {}, "test");
    await connector("batch", { ALLOW_UNBOUND_FANS: "true" });
    await publisher.publishAsync(
      "fan/messages",
      JSON.stringify([reading("b-known", 1), reading("b-new", 2), reading("b-known", 3)]),
      { qos: 1 },
    );
    await eventually("the known fan's readings at predict", () => deliveredOf("b-known").length === 2);
    await eventually("the unknown one held", async () => (await heldIn("b-new")) === 1);
    assert.equal(deliveredOf("b-new").length, 0);
  });

  it("with two replicas sharing the readings, an approved fan's held readings reach predict once each", async () => {
    await connector("replica-1", { shared_group: "fanwatch" });
    await connector("replica-2", { shared_group: "fanwatch" });
    await publishInOrder(
      "fan/messages/q-replicas",
      Array.from({ length: 40 }, (_, n) => reading("q-replicas", n)),
    );
    await eventually("40 readings held", async () => (await heldIn("q-replicas")) === 40);
    await registry.approve("q-replicas", "Ana");
    await eventually("40 readings at predict", () => deliveredOf("q-replicas").length >= 40);
    await eventually("the stream emptied", async () => (await heldIn("q-replicas")) === 0);
    assert.deepEqual(
      deliveredOf("q-replicas")
        .map((r) => r.rotation)
        .sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, n) => 600 + n),
      "each once",
    );
  });

  it("under a flood of forged ids the registry holds at most REGISTRY_MAX_PENDING of them", async () => {
    await registry.add("f-real", {}, "test");
    const c = await connector("flood", { REGISTRY_MAX_PENDING: "10" });
    const forged = Array.from({ length: 500 }, (_, n) => `forged-${n}`);
    await Promise.all(
      forged.map((id, n) => publisher.publishAsync(`fan/messages/${id}`, JSON.stringify(reading(id, n)), { qos: 1 })),
    );
    await publishInOrder("fan/messages/f-real", [reading("f-real", 1)]);
    await eventually("490 dead letters", () => deadLettersWith("FANWATCH_REGISTRY_FULL").length >= 490);
    assert.equal((await registry.list("pending")).length, 10);
    await eventually("the real fan's reading at predict", () => deliveredOf("f-real").length === 1);
    const health = (await healthOf(c.port)) as unknown as { registry: { fans: Record<string, number> } };
    assert.deepEqual(health.registry.fans, { pending: 10, active: 1, retired: 0 });
    assert.equal(gateway.delivered().length, 1, "no forged reading reached predict");
  });

  it("says in /healthz what the registry holds and the policy", async () => {
    await registry.add("h-1", {}, "test");
    const c = await connector("health", { UNKNOWN_DEVICE_POLICY: "reject" });
    const health = (await healthOf(c.port)) as unknown as {
      registry: { state: string; policy: string; fans: Record<string, number>; allowUnboundFans: boolean };
    };
    assert.equal(health.registry.state, "loaded");
    assert.equal(health.registry.policy, "reject");
    assert.equal(health.registry.allowUnboundFans, false);
    assert.equal(health.registry.fans.active, 1);
  });

  // Last in this suite: it stops the suite's nats-server for a while.
  it("acknowledges a pending fan's reading only once JetStream holds it: with NATS away it stays unacknowledged", async () => {
    await registry.markPending("w-1", 10);
    const c = await connector("nats-away");
    await nats.halt();
    await publishInOrder("fan/messages/w-1", [reading("w-1", 1)]);
    await eventually("received, not acknowledged", () => metric(c, /^connector_messages_pending 1$/m));
    assert.ok(await metric(c, /^connector_readings_quarantined_total 0$/m));
    await nats.restart();
    await eventually("held once NATS is back", () => metric(c, /^connector_readings_quarantined_total 1$/m), 30_000);
    await eventually("then acknowledged", () => metric(c, /^connector_messages_pending 0$/m));
    const again = await connect({ servers: nats.url });
    try {
      const info = await (
        await jetstreamManager(again)
      ).streams.info(QUARANTINE_STREAM, {
        subjects_filter: quarantineSubject("w-1"),
      });
      assert.equal(info.state.subjects?.[quarantineSubject("w-1")], 1);
    } finally {
      await again.close();
    }
  });
});

// `fanwatch connector` as deployed: NATS_URL names the registry (KV bucket fan_registry) and the
// quarantine; a person approves through the registry, as `fanwatch fans approve` does.
describe("fanwatch connector with NATS_URL: the registry in NATS", { timeout: 120_000 }, () => {
  let broker: Broker;
  let nats: TestNats;
  let registry: NatsFanRegistry;
  let secrets: string;
  let gateway: FakeGateway;
  let publisher: MqttClient;
  let collector: Collector;
  let child: ChildProcessWithoutNullStreams | undefined;

  before(async () => {
    broker = await startMosquitto();
    nats = await startNats();
    registry = await openFanRegistry({ url: nats.url });
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
    gateway = new FakeGateway();
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/messages,fan/messages/+" } }];
    publisher = await mqtt.connectAsync(broker.url, { clientId: "registry-process-publisher" });
    collector = await Collector.start(broker.url, ["fan/deadletter"]);
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await publisher?.endAsync();
    await collector?.stop();
    await gateway?.close();
    await registry?.close();
    await nats?.stop();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("lets a registered fan in, holds an unknown one as pending, releases its readings when approved", async () => {
    await registry.add("n-known", {}, "test");
    const port = await freePort();
    child = spawnCli(["connector"], {
      gateway_url: await gateway.listen(),
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      refresh_interval_ms: "200",
      batch_wait_ms: "5",
      port: String(port),
      topic: "fan/messages,fan/messages/+",
      client_id: "registry-process",
      NATS_URL: nats.url,
    });
    await waitForOutput(child, /connector running/);
    await eventually("ready: the registry loaded", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok);
    const publish = (id: string, n: number) =>
      publisher.publishAsync(
        `fan/messages/${id}`,
        JSON.stringify({ deviceID: id, rotation: 600 + n, temperature: 40, vibration: 150, sound: 49 }),
        { qos: 1 },
      );
    await publish("n-known", 0);
    for (let n = 0; n < 5; n++) await publish("n-new", n);
    const of = (id: string) =>
      gateway.delivered().filter((r) => (r as { deviceID: string }).deviceID === id) as Array<{ rotation: number }>;
    await eventually("the known fan's reading at predict", () => of("n-known").length === 1);
    await eventually(
      "the unknown fan pending in the bucket",
      async () => (await registry.get("n-new"))?.state === "pending",
    );
    await eventually("its 5 readings held", async () =>
      /connector_readings_quarantined_total 5/.test(await metricsOf(port)),
    );
    assert.equal(of("n-new").length, 0);
    await registry.approve("n-new", "Ana");
    await eventually("its 5 readings at predict", () => of("n-new").length >= 5);
    assert.deepEqual(
      of("n-new").map((r) => r.rotation),
      [600, 601, 602, 603, 604],
    );
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "n-known", rotation: 1 }), { qos: 1 });
    const [letter] = await collector.waitFor("fan/deadletter", 1);
    assert.match(
      (letter as { error: string }).error,
      /only on fan\/messages\/<deviceID>/,
      "ALLOW_UNBOUND_FANS is off by default",
    );
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });
});

/** A registry whose watchers hear of changes only when told (catchUp), while `lag` is on. */
class LaggingRegistry extends MemoryFanRegistry {
  lag = false;
  readonly #queued: Array<() => void> = [];

  override watch(onChange: Parameters<MemoryFanRegistry["watch"]>[0]): ReturnType<MemoryFanRegistry["watch"]> {
    return super.watch((id, record) => {
      if (this.lag) this.#queued.push(() => onChange(id, record));
      else onChange(id, record);
    });
  }

  catchUp(): void {
    this.lag = false;
    for (const change of this.#queued.splice(0)) change();
  }
}
