import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { freePort } from "../../lib/infra/net.js";
import { createLogger, type Logger } from "../../lib/infra/log.js";
import { startAedes, type InProcessBroker } from "../support/aedes-broker.js";
import { healthOf, metricsOf } from "../support/connector-health.js";
import { eventually } from "../support/eventually.js";
import { FAKE_GATEWAY_PASSWORD, FAKE_GATEWAY_USER, FakeGateway } from "../support/fake-gateway.js";
import { ManualClock } from "../support/manual-clock.js";
import { Collector } from "../support/mqtt-collector.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";

// The whole connector in this process, against the in-process broker and a gateway stand-in, on a
// clock the test moves: retries, backoffs, circuit probes and publish timeouts come when the test
// says. Every test has its own broker, gateway, publisher and collector.
describe("the connector in-process, on a clock the test moves", () => {
  const silent = createLogger("connector-test", "silent");
  let broker: InProcessBroker;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let secrets: string;
  let publisher: MqttClient;
  let collector: Collector;
  let running: Connector[];
  let gateways: FakeGateway[];

  beforeEach(async () => {
    running = [];
    broker = await startAedes();
    gateway = new FakeGateway();
    gateways = [gateway];
    gatewayUrl = await gateway.listen();
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
    publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-test-publisher" });
    collector = await Collector.start(broker.url, ["replies", "fan/deadletter"]);
  });
  afterEach(async () => {
    broker.release();
    for (const c of running) await c.drain(); // before the broker stops
    await publisher.endAsync();
    await collector.stop();
    for (const g of gateways) await g.close();
    await broker.close();
    await rm(secrets, { recursive: true, force: true });
  });

  function inProcess(env: Record<string, string>, clock: ManualClock, log: Logger = silent): Connector {
    const config = readConnectorConfig({
      gateway_url: gatewayUrl,
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      refresh_interval_ms: "200",
      port: "0",
      HEALTH_HOST: "127.0.0.1",
      ...env,
    });
    const connector = new Connector(config, log, { clock });
    running.push(connector);
    return connector;
  }

  /** A gateway stand-in of the test's own, on `port` if given (where the connector already sends). */
  async function anotherGateway(port?: number): Promise<{ gateway: FakeGateway; url: string }> {
    const other = new FakeGateway();
    gateways.push(other);
    return { gateway: other, url: await other.listen(port) };
  }

  const publishAll = (topic: string, messages: readonly object[]) =>
    Promise.all(messages.map((m) => publisher.publishAsync(topic, JSON.stringify(m), { qos: 1 })));

  it("holds every message through a gateway that refuses connections, pauses intake while the circuit is open, delivers all when it is back", async () => {
    const port = await freePort(); // nothing listens there yet: connection refused
    const clock = new ManualClock();
    const connector = inProcess(
      {
        gateway_url: `http://127.0.0.1:${port}`,
        functions: "fan/outage=predict",
        topic: "fan/outage",
        client_id: "outage-circuit",
        retries: "2",
        batch_size: "20",
        max_inflight_bytes: "2048",
      },
      clock,
    );
    await connector.start();
    await publishAll(
      "fan/outage",
      Array.from({ length: 100 }, (_, n) => ({ deviceID: "1", n })),
    );
    await eventually("the circuit to open", async () => {
      clock.advance(); // each failed attempt waits for its backoff on the clock
      return (await healthOf(connector.port)).status === "unavailable";
    });
    const { code, problems, paused } = await healthOf(connector.port);
    assert.equal(code, 503);
    assert.ok(
      problems.some((p) => /^predict is failing, intake paused until it answers: .*ECONNREFUSED/.test(p)),
      JSON.stringify(problems),
    );
    assert.match(paused ?? "", /^predict is failing/, "intake paused");
    // About 40 bytes a message: no more than 2 KiB of them held, the rest wait in the broker (aedes
    // pushes them all at once: the consumer's byte bound is what stops it).
    const held = await healthOf(connector.port);
    assert.ok(
      held.bytesInFlight <= 2048 + 64 && held.pending < 100,
      `holding ${held.pending} messages, ${held.bytesInFlight} bytes`,
    );
    assert.match(await metricsOf(connector.port), /^connector_circuit_open\{function="predict"\} 1$/m);

    const { gateway: back } = await anotherGateway(port);
    const numbers = () => (back.delivered() as Array<{ n: number }>).map((m) => m.n);
    await eventually("every message delivered", () => {
      clock.advance(); // the probe
      return new Set(numbers()).size >= 100;
    });
    assert.deepEqual(
      [...new Set(numbers())].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, n) => n),
    );
    // The session was parked (disconnected) while the circuit was open, so the batch that probed
    // it came on a closed connection: it cannot be acknowledged and comes again. At most that one
    // batch twice; nothing else.
    await eventually("every message acknowledged", async () =>
      /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
    assert.ok(numbers().length - 100 <= 20, `${numbers().length - 100} duplicates, more than the probe's batch`);
    const healthy = await healthOf(connector.port);
    assert.deepEqual([healthy.status, healthy.paused], ["ok", null]);
    const metrics = await metricsOf(connector.port);
    assert.match(metrics, /^connector_circuit_open\{function="predict"\} 0$/m);
    assert.doesNotMatch(metrics, /^connector_dead_lettered_total/m, "nothing dead-lettered");
    assert.deepEqual(collector.on("fan/deadletter"), []);
    await eventually("every message acknowledged", async () =>
      /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
  });

  it("keeps every message through a lost broker connection during a gateway outage, and delivers them once the gateway is back", async () => {
    const port = await freePort();
    const clock = new ManualClock();
    const connector = inProcess(
      {
        gateway_url: `http://127.0.0.1:${port}`,
        functions: "fan/restart=predict",
        topic: "fan/restart",
        client_id: "outage-restart",
        retries: "1",
        batch_size: "10",
      },
      clock,
    );
    await connector.start();
    await publishAll(
      "fan/restart",
      Array.from({ length: 50 }, (_, n) => ({ n })),
    );
    await eventually("the circuit to open", async () => {
      clock.advance();
      return /^predict is failing/.test((await healthOf(connector.port)).paused ?? "");
    });
    await broker.dropConnections(); // what the connector held is void now; the broker redelivers it
    await eventually("connected again", async () => {
      const { problems } = await healthOf(connector.port);
      return !problems.some((p) => p.startsWith("not connected"));
    });
    const { gateway: back } = await anotherGateway(port);
    await eventually("every message delivered", () => {
      clock.advance();
      return new Set((back.delivered() as Array<{ n: number }>).map((m) => m.n)).size >= 50;
    });
    await eventually("every message acknowledged", async () =>
      /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
    assert.equal((await healthOf(connector.port)).status, "ok");
  });

  it("retries 503, 429, 404 and timeouts (the function's budget) without limit and dead-letters none of them", async () => {
    const failures = [
      { status: 503, body: "no endpoints" },
      { status: 429, body: "busy" },
      { status: 404, body: "no such function" },
      "hang" as const,
      { status: 502, body: "bad gateway" },
    ];
    const { gateway: failing, url } = await anotherGateway();
    failing.answer = () => failures.shift(); // then the default, 200
    const clock = new ManualClock();
    const connector = inProcess(
      {
        gateway_url: url,
        functions: "fan/retry=predict",
        topic: "fan/retry",
        client_id: "retry-statuses",
        retries: "20",
        timeout_ms: "300",
      },
      clock,
    );
    await connector.start();
    await publisher.publishAsync("fan/retry", JSON.stringify({ n: "retry" }), { qos: 1 });
    await eventually("the message delivered after five failed attempts", () => {
      clock.advance();
      return failing.delivered().length >= 1;
    });
    assert.deepEqual(
      failing.invocations.map((c) => c.headers["x-timeout-ms"]),
      ["300", "300", "300", "300", "300", "300"],
    );
    assert.deepEqual(
      failing.invocations.map((c) => c.status),
      [503, 429, 404, 0, 502, 200],
    );
    const metrics = await metricsOf(connector.port);
    assert.match(metrics, /^connector_retries_total\{function="predict"\} 5$/m);
    assert.doesNotMatch(metrics, /^connector_dead_lettered_total/m);
  });

  it("keeps the messages unacknowledged while their function's answer cannot be published, and retries the publish", async () => {
    const clock = new ManualClock();
    const connector = inProcess({ topic: "fan/reply", client_id: "reply-retry" }, clock);
    await connector.start();
    let release = (): void => {};
    gateway.hold = new Promise<void>((resolve) => (release = resolve));
    await publisher.publishAsync("fan/reply", JSON.stringify({ n: "reply" }), { qos: 1 });
    await eventually("the invocation", () => gateway.invocations.length >= 1);
    broker.hold("replies"); // the broker takes the reply and does not answer
    release();
    await eventually("a failed reply publish", async () => {
      clock.advance(); // the publish times out, then waits its backoff
      return /connector_reply_failures_total\{function="echo"\} [1-9]/.test(await metricsOf(connector.port));
    });
    const health = await healthOf(connector.port);
    assert.ok(
      health.problems.some((p) => /^cannot publish echo's answer to replies: /.test(p)),
      JSON.stringify(health.problems),
    );
    assert.match(await metricsOf(connector.port), /^connector_messages_pending 1$/m, "not acknowledged");
    assert.deepEqual(collector.on("replies"), [], "no reply went out");

    broker.release();
    await eventually("the reply published and the message acknowledged", async () => {
      clock.advance();
      return (
        collector.on("replies").length > 0 && /^connector_messages_pending 0$/m.test(await metricsOf(connector.port))
      );
    });
    // The function answered the batch (a JSON array of one) with its summary.
    assert.deepEqual(collector.on("replies")[0], { ok: true, bytes: JSON.stringify([{ n: "reply" }]).length });
    assert.equal((await healthOf(connector.port)).status, "ok");
  });

  it("drains only after the dead letters in flight are published", async () => {
    gateway.answer = () => ({ status: 422, body: "unprocessable" });
    const clock = new ManualClock();
    // The connector's own log says when drain has reached the wait for the dead letters.
    const events: string[] = [];
    const log = pino(
      { level: "info" },
      { write: (line: string) => void events.push((JSON.parse(line) as { event?: string }).event ?? "") },
    );
    const connector = inProcess({ topic: "fan/drain", client_id: "drain-letters", batch_size: "1" }, clock, log);
    await connector.start();
    broker.hold("fan/deadletter"); // the broker takes the dead letter and does not answer
    await publisher.publishAsync("fan/drain", JSON.stringify({ n: "drain" }), { qos: 1 });
    await eventually(
      "the dead letter's publish under way",
      async () => (await healthOf(connector.port)).deadLettersPending === 1,
    );
    let drained = false;
    const draining = connector.drain().then(() => (drained = true));
    await eventually("drain waiting for the dead letter", () => events.includes("draining_dead_letters"));
    assert.equal(drained, false, "drain waits for the dead letter");
    assert.deepEqual(collector.on("fan/deadletter"), [], "still unpublished");

    broker.release();
    await draining;
    const [letter] = (await collector.waitFor("fan/deadletter", 1)) as Array<{ error: string; topic: string }>;
    assert.match(letter?.error ?? "", /echo answered 422: unprocessable/);
    assert.equal(letter?.topic, "fan/drain");
  });

  it("parks only the session of the failing function's filter: the other filter's messages keep flowing, and the parked ones all come after", async () => {
    // Two functions, a filter each, as predict and health: "alarms" fails, "readings" must not notice.
    gateway.functions = [
      { name: "readings", annotations: { topic: "iso/readings" } },
      { name: "alarms", annotations: { topic: "iso/predictions" } },
    ];
    let alarmsDown = true;
    gateway.answer = (call) =>
      call.path === "/function/alarms" && alarmsDown ? { status: 503, body: "NATS is unreachable" } : undefined;
    const clock = new ManualClock();
    const connector = inProcess(
      { topic: "iso/readings,iso/predictions", client_id: "isolation", retries: "2", batch_size: "10" },
      clock,
    );
    await connector.start();
    const publish = (topic: string, from: number, count: number) =>
      Promise.all(
        Array.from({ length: count }, (_, i) =>
          publisher.publishAsync(topic, JSON.stringify({ n: from + i }), { qos: 1 }),
        ),
      );
    const of = (name: string) =>
      new Set(
        gateway.invocations
          .filter((c) => c.path === `/function/${name}` && c.status === 200)
          .flatMap((c) => (JSON.parse(c.body) as Array<{ n: number }>).map((m) => m.n)),
      );
    await publish("iso/predictions", 0, 30);
    await eventually("alarms' circuit open and its session parked", async () => {
      clock.advance();
      return /^connector_intake_parked\{filter="iso\/predictions"\} 1$/m.test(await metricsOf(connector.port));
    });
    // Readings published while alarms is down all arrive, with alarms still down.
    await publish("iso/readings", 0, 100);
    await eventually("every reading delivered while alarms is down", async () => {
      clock.advance(); // each alarms probe fails again on the clock; readings need no clock
      return of("readings").size === 100;
    });
    await publish("iso/predictions", 30, 30); // kept by the broker for the parked session
    const health = await healthOf(connector.port);
    assert.equal(health.code, 503, "unhealthy while alarms' messages wait");
    assert.deepEqual(
      health.sessions.map(({ filter, clientId, state }) => ({ filter, clientId, state })),
      [
        { filter: "iso/readings", clientId: "isolation", state: "reading" },
        { filter: "iso/predictions", clientId: "isolation.iso%2Fpredictions", state: "parked" },
      ],
    );
    assert.ok(
      health.problems.some((p) => /^alarms is failing, intake of iso\/predictions paused until it answers: /.test(p)),
      JSON.stringify(health.problems),
    );
    assert.equal(of("alarms").size, 0);

    alarmsDown = false;
    await eventually("every prediction delivered once alarms answers", async () => {
      clock.advance(); // the probe, then the session reconnects and the broker delivers the rest
      return of("alarms").size === 60;
    });
    await eventually("every message acknowledged", async () =>
      /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
    assert.equal((await healthOf(connector.port)).status, "ok");
    assert.match(await metricsOf(connector.port), /^connector_intake_parked\{filter="iso\/predictions"\} 0$/m);
    assert.equal(collector.on("fan/deadletter").length, 0, "nothing dead-lettered");
  });

  it("with overlapping filters, routes a message once: the session of the first filter that matches owns it", async () => {
    const clock = new ManualClock();
    const connector = inProcess({ topic: "fan/#,fan/overlap", client_id: "overlap" }, clock);
    await connector.start();
    const invocations = gateway.invocations.length;
    await publisher.publishAsync("fan/overlap", JSON.stringify({ n: "both filters" }), { qos: 1 });
    await publisher.publishAsync("fan/other", JSON.stringify({ n: "one filter" }), { qos: 1 });
    await eventually(
      "both delivered and every copy acknowledged",
      async () =>
        gateway.delivered().length >= 2 && /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
    assert.deepEqual(
      gateway.invocations
        .slice(invocations)
        .flatMap((c) => JSON.parse(c.body) as Array<{ n: string }>)
        .map((m) => m.n)
        .sort(),
      ["both filters", "one filter"],
      "each once",
    );
  });

  it("taking over a single session of both filters, delivers what it kept and drops the filter another session now has", async () => {
    // What an earlier connector left: one session ("upgrade") subscribed to both filters, with a
    // message waiting for it.
    const old = await mqtt.connectAsync(broker.url, { clientId: "upgrade", clean: false });
    await old.subscribeAsync(["up/a", "up/b"], { qos: 1 });
    await old.endAsync();
    await publisher.publishAsync("up/b", JSON.stringify({ n: "kept by the old session" }), { qos: 1 });
    gateway.functions = [{ name: "up", annotations: { topic: "up/#" } }];
    const events: string[] = [];
    const log = pino(
      { level: "info" },
      { write: (line: string) => void events.push((JSON.parse(line) as { event?: string }).event ?? "") },
    );
    const connector = inProcess({ topic: "up/a,up/b", client_id: "upgrade" }, new ManualClock(), log);
    await connector.start();
    await eventually("the old session dropping up/b", () => events.includes("unsubscribed"));
    await publisher.publishAsync("up/b", JSON.stringify({ n: "new" }), { qos: 1 });
    await eventually(
      "both delivered",
      async () =>
        gateway.delivered().length >= 2 && /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
    );
    assert.deepEqual(
      (gateway.delivered() as Array<{ n: string }>).map((m) => m.n).sort(),
      ["kept by the old session", "new"],
      "the kept message once, the new one once (not once per session)",
    );
  });
});
