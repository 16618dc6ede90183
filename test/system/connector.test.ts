import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { parseStaticFunctions, readConnectorConfig } from "../../connectors/mqtt/config.js";
import { Circuit } from "../../connectors/mqtt/circuit.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { filtersOverlap, topicMatches } from "../../connectors/mqtt/topic-filter.js";
import { pino } from "pino";
import { createLogger, type Logger } from "../../lib/infra/log.js";
import { ConfigError } from "../../lib/errors.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { ManualClock } from "../support/manual-clock.js";
import { Collector } from "../support/mqtt-collector.js";
import { finished, freePort, spawnCli, waitForOutput } from "../support/process.js";
import { eventually as pollUntil } from "../support/eventually.js";

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
    it(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () =>
      assert.equal(topicMatches(filter, topic), expected));
  }
});

describe("topic filters that overlap (a subscription served by a route)", () => {
  const cases: Array<[string, string, boolean]> = [
    ["fan/messages", "fan/messages", true],
    ["fan/#", "fan/messages", true],
    ["fan/#", "fan", true],
    ["fan/+", "+/messages", true],
    ["fan/+", "fan/a/b", false],
    ["fan/messages", "fan/mesages", false],
    ["#", "$SYS/x", false],
    ["$share/g/fan/messages", "fan/+", true],
  ];
  for (const [a, b, expected] of cases) {
    it(`${a} ${expected ? "overlaps" : "does not overlap"} ${b}`, () => {
      assert.equal(filtersOverlap(a, b), expected);
      assert.equal(filtersOverlap(b, a), expected);
    });
  }
});

describe("a function's circuit breaker, on a clock the test moves", () => {
  function circuit(threshold: number) {
    const clock = new ManualClock();
    const changes: string[] = [];
    const stop = new AbortController();
    const c = new Circuit({
      threshold,
      backoff: { baseMs: 100, capMs: 400 },
      clock,
      signal: stop.signal,
      onChange: (open, reason) => changes.push(open ? `open: ${reason}` : "closed"),
    });
    return { c, clock, changes, stop };
  }

  it("opens after `threshold` failures in a row, not before, and a success in between starts the count again", async () => {
    const { c, changes } = circuit(3);
    c.failed("503");
    c.failed("503");
    c.succeeded();
    c.failed("503");
    c.failed("503");
    assert.deepEqual([c.open, changes], [false, []]);
    c.failed("refused");
    assert.deepEqual([c.open, changes], [true, ["open: refused"]]);
  });

  it("while open lets no one through until the backoff passed, then exactly one probe; its success lets everyone through", async () => {
    const { c, clock, changes } = circuit(1);
    c.failed("503");
    const through: number[] = [];
    const callers = [1, 2, 3].map((n) => c.admit().then(() => through.push(n)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(through, []);
    clock.advance();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(through, [1], "one probe");
    c.succeeded();
    await Promise.all(callers);
    assert.deepEqual(through, [1, 2, 3]);
    assert.deepEqual(changes, ["open: 503", "closed"]);
  });

  it("a failed probe opens it again for longer, up to the cap", async () => {
    const { c, clock } = circuit(1);
    const waits: number[] = [];
    const sleep = clock.sleep.bind(clock);
    clock.sleep = (ms, signal) => (waits.push(ms), sleep(ms, signal));
    c.failed("503");
    for (let probe = 0; probe < 4; probe++) {
      const admitted = c.admit();
      clock.advance();
      await admitted;
      c.failed("503");
    }
    assert.equal(waits.length, 5);
    // Doubling from 100 ms with ±50% jitter, capped at 400 ms (600 with jitter).
    assert.ok((waits[0] as number) >= 50 && (waits[0] as number) < 150, `first wait ${waits[0]}`);
    assert.ok(
      waits.slice(2).every((w) => w >= 200 && w < 600),
      `capped waits ${waits.join(", ")}`,
    );
  });

  it("stays closed when an attempt sent before it opened succeeds, whatever its probe timer says later", async () => {
    const { c, clock, changes } = circuit(1);
    c.failed("503");
    c.succeeded(); // an answer to an attempt that was already on its way
    clock.advance(); // the probe's time comes
    await c.admit();
    c.failed("503");
    assert.deepEqual(
      changes,
      ["open: 503", "closed", "open: 503"],
      "a failure after closing opens it again, as from closed",
    );
  });

  it("stops every waiter when the connector stops", async () => {
    const { c, stop } = circuit(1);
    c.failed("503");
    const waiting = c.admit();
    stop.abort(new Error("stopping"));
    await assert.rejects(waiting, /stopping/);
  });
});

describe("connector configuration", () => {
  it("reads the official connector's names in lower or upper case", () => {
    const config = readConnectorConfig({
      gateway_url: "http://gw:8080/",
      TOPIC: "a,b/+",
      qos: "0",
      BATCH_SIZE: "50",
      broker: "mqtt://broker:1883",
      MQTT_USERNAME: "u",
      MQTT_PASSWORD: "p",
    });
    assert.equal(config.gatewayUrl, "http://gw:8080");
    assert.deepEqual(config.topics, ["a", "b/+"]);
    assert.equal(config.qos, 0);
    assert.equal(config.batchSize, 50);
    assert.deepEqual(config.mqtt, { url: "mqtt://broker:1883", username: "u", password: "p" });
    assert.equal(config.staticFunctions, undefined);
  });

  it("bounds memory and time by default: 16 KiB messages, 8 MiB held, 10 s per attempt", () => {
    const config = readConnectorConfig({});
    assert.deepEqual(
      [config.maxMessageBytes, config.maxInflightBytes, config.timeoutMs, config.retries, config.retryMaxMs],
      [16 * 1024, 8 * 1024 * 1024, 10_000, 5, 5_000],
    );
    assert.equal(readConnectorConfig({ MAX_INFLIGHT_BYTES: "1048576" }).maxInflightBytes, 1024 * 1024);
  });

  it("parses static routes", () => {
    assert.deepEqual(
      [...parseStaticFunctions("fan/messages=predict, audit; x/+=y")],
      [
        ["fan/messages", ["predict", "audit"]],
        ["x/+", ["y"]],
      ],
    );
    assert.throws(() => parseStaticFunctions("fan/messages"), ConfigError);
  });

  it("names the setting that is wrong", () => {
    assert.throws(
      () => readConnectorConfig({ qos: "2" }),
      (e: unknown) => e instanceof ConfigError && /qos/.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ batch_size: "many" }),
      (e: unknown) => e instanceof ConfigError && /batch_size/.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ basic_auth: "true", secret_mount_path: "/nonexistent" }),
      /basic-auth-user/,
    );
  });
});

interface Invocation {
  path: string;
  body: string;
  headers: IncomingHttpHeaders;
  /** What the stand-in answered. */
  status: number;
}

/**
 * A stand-in for the OpenFaaS gateway (none runs here): /system/functions behind basic auth,
 * listing `functions`, and /function/<name> and /async-function/<name> that record what they
 * receive and answer what `answer` says (200 with a summary unless told otherwise).
 */
class FakeGateway {
  readonly invocations: Invocation[] = [];
  systemDown = false;
  functions: Array<{ name: string; annotations?: Record<string, string> }> = [
    { name: "echo", annotations: { topic: "sensors/+/temp, fan/#", "reply-topic": "replies" } },
    { name: "other", annotations: { topic: "elsewhere" } },
    { name: "plain" },
  ];
  /** The answer to an invocation: undefined for the default, "hang" for none at all. */
  answer: (call: Invocation) => { status: number; body: string } | "hang" | undefined = () => undefined;
  /** While set, invocations are answered only once it resolves. */
  hold: Promise<void> | undefined;
  server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const url = req.url ?? "/";
      if (url === "/system/functions") {
        if (req.headers.authorization !== `Basic ${Buffer.from("admin:s3cret").toString("base64")}`)
          return void res.writeHead(401).end("unauthorized");
        if (this.systemDown) return void res.writeHead(502).end("bad gateway");
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify(this.functions));
      }
      const call: Invocation = { path: url, body, headers: req.headers, status: 0 };
      this.invocations.push(call);
      void (this.hold ?? Promise.resolve()).then(() => this.#answer(call, res));
    });
  });

  #answer(call: Invocation, res: ServerResponse): void {
    const given = this.answer(call);
    if (given === "hang") return;
    const answer = given ?? {
      status: call.path.startsWith("/async-function/") ? 202 : 200,
      body: JSON.stringify({ ok: true, bytes: call.body.length }),
    };
    call.status = answer.status;
    res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
  }

  async listen(port = 0): Promise<string> {
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** The messages of every invocation that was answered 2xx, in order. */
  delivered(): unknown[] {
    return this.invocations
      .filter((c) => c.status >= 200 && c.status < 300)
      .flatMap((c) => JSON.parse(c.body) as unknown[]);
  }
}

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

  const until = (predicate: () => boolean, what: string, timeoutMs = 10_000) => pollUntil(what, predicate, timeoutMs);

  beforeEach(async () => {
    children = [];
    broker = await startMosquitto();
    gateway = new FakeGateway();
    gatewayUrl = await gateway.listen();
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-secrets-"));
    await writeFile(join(secrets, "basic-auth-user"), "admin\n");
    await writeFile(join(secrets, "basic-auth-password"), "s3cret\n");
    publisher = await mqtt.connectAsync(broker.url, { clientId: "connector-test-publisher" });
    collector = await Collector.start(broker.url, ["replies", "fan/deadletter"]);
  });
  afterEach(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await publisher?.endAsync();
    await collector?.stop();
    gateway?.server.close();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("with batch size 1 forwards the raw payload like the official connector, by wildcard topic, and publishes the reply", async () => {
    const { child, port } = await connector({ batch_size: "1", topic: "sensors/#,fan/#", client_id: "raw" });
    await publisher.publishAsync("sensors/a/temp", "not even json", { qos: 1 });
    await publisher.publishAsync("sensors/a/humidity", "{}", { qos: 1 }); // no function subscribes to it: held
    await until(() => gateway.invocations.length >= 1, "the invocation");
    const [call] = gateway.invocations;
    assert.equal(call?.path, "/function/echo");
    assert.equal(call?.body, "not even json");
    assert.equal(call?.headers["x-topic"], "sensors/a/temp");
    assert.equal(call?.headers["content-type"], "application/json");
    assert.equal(call?.headers["x-timeout-ms"], "10000", "the function's budget is the connector's timeout");
    const [reply] = await collector.waitFor("replies", 1);
    assert.deepEqual(reply, { ok: true, bytes: 13 });
    await eventually(
      async () => /^connector_messages_held 1$/m.test(await metricsOf(port)),
      "sensors/a/humidity received and held",
    );
    assert.equal(gateway.invocations.length, 1, "sensors/a/humidity matches no function");
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });

  it("keeps its routes while the gateway's /system API is down", async () => {
    const { child, port } = await connector({ topic: "fan/#", client_id: "outage" });
    gateway.systemDown = true;
    await eventually(async () => /502/.test((await healthOf(port)).discoveryError ?? ""), "a refresh that failed");
    assert.equal((await healthOf(port)).status, "ok");
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "1" }), { qos: 1 });
    await until(() => gateway.invocations.length >= 1, "an invocation during the outage");
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
    await until(
      () => gateway.invocations.reduce((n, c) => n + (JSON.parse(c.body) as unknown[]).length, 0) >= 40,
      "40 messages",
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
    await until(() => gateway.invocations.length >= 1, "the async invocation");
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
    await until(() => gateway.invocations.length >= 200, "200 invocations");
    // Nothing more to come: both replicas idle, having received 200 messages between them.
    const received = async (port: number) =>
      Number(/connector_messages_received_total\{filter="fan\/#"\} (\d+)/.exec(await metricsOf(port))?.[1] ?? 0);
    await eventually(async () => {
      const metrics = await Promise.all(replicas.map((r) => metricsOf(r.port)));
      return metrics.every(
        (m) => /^connector_messages_pending 0$/m.test(m) && /^connector_invocations_in_flight 0$/m.test(m),
      );
    }, "both replicas idle");
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
    await eventually(async () => /^connector_messages_held 1$/m.test(await metricsOf(first.port)), "the message held");
    assert.equal(
      (await healthOf(first.port)).paused,
      "no function has the topic annotation for fan/held",
      "intake paused",
    );
    first.child.kill("SIGTERM");
    assert.equal((await finished(first.child)).code, 0);

    const second = await connector({ topic: "fan/held", client_id: "no-route" });
    await eventually(
      async () => /^connector_messages_held 1$/m.test(await metricsOf(second.port)),
      "the message redelivered to the restarted connector and held again",
    );
    assert.equal(gateway.invocations.length, 0);
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/held" } }];
    await until(() => gateway.invocations.length >= 1, "the invocation once a route appeared");
    assert.equal(gateway.invocations[0]?.path, "/function/predict");
    assert.deepEqual(JSON.parse(gateway.invocations[0]?.body ?? ""), [reading]);
    await eventually(async () => (await healthOf(second.port)).status === "ok", "healthy again");
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
    await until(() => gateway.delivered().length >= 9, "the nine good messages");
    const delivered = (gateway.delivered() as Array<{ n: number }>).map((m) => m.n).sort((a, b) => a - b);
    assert.deepEqual(delivered, [0, 1, 2, 3, 4, 5, 7, 8, 9]);
    child.kill("SIGTERM");
    assert.equal((await finished(child)).code, 0);
  });

  describe("in-process, on a clock the test moves", () => {
    const silent = createLogger("connector-test", "silent");
    let running: Connector[] = [];
    afterEach(async () => {
      for (const c of running) await c.drain(); // before the broker stops
      running = [];
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
      const letters = collector.on("fan/deadletter").length;
      await Promise.all(
        Array.from({ length: 100 }, (_, n) =>
          publisher.publishAsync("fan/outage", JSON.stringify({ deviceID: "1", n }), { qos: 1 }),
        ),
      );
      await eventually(async () => {
        clock.advance(); // each failed attempt waits for its backoff on the clock
        return (await healthOf(connector.port)).status === "unavailable";
      }, "the circuit to open");
      const { code, problems, paused } = await healthOf(connector.port);
      assert.equal(code, 503);
      assert.ok(
        problems.some((p) => /^predict is failing, intake paused until it answers: .*ECONNREFUSED/.test(p)),
        JSON.stringify(problems),
      );
      assert.match(paused ?? "", /^predict is failing/, "intake paused");
      // About 40 bytes a message: no more than 2 KiB of them held, the rest wait in the broker.
      const held = await healthOf(connector.port);
      assert.ok(
        held.bytesInFlight <= 2048 + 64 && held.pending < 100,
        `holding ${held.pending} messages, ${held.bytesInFlight} bytes`,
      );
      assert.match(await metricsOf(connector.port), /^connector_circuit_open\{function="predict"\} 1$/m);

      const back = new FakeGateway();
      await back.listen(port);
      after(() => back.server.close());
      const numbers = () => (back.delivered() as Array<{ n: number }>).map((m) => m.n);
      await eventually(async () => {
        clock.advance(); // the probe
        return new Set(numbers()).size >= 100;
      }, "every message delivered");
      assert.deepEqual(
        [...new Set(numbers())].sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, n) => n),
      );
      // The session was parked (disconnected) while the circuit was open, so the batch that probed
      // it came on a closed connection: it cannot be acknowledged and comes again. At most that one
      // batch twice; nothing else.
      await eventually(
        async () => /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "every message acknowledged",
      );
      assert.ok(numbers().length - 100 <= 20, `${numbers().length - 100} duplicates, more than the probe's batch`);
      const healthy = await healthOf(connector.port);
      assert.deepEqual([healthy.status, healthy.paused], ["ok", null]);
      const metrics = await metricsOf(connector.port);
      assert.match(metrics, /^connector_circuit_open\{function="predict"\} 0$/m);
      assert.doesNotMatch(metrics, /^connector_dead_lettered_total/m, "nothing dead-lettered");
      assert.equal(collector.on("fan/deadletter").length, letters);
      await eventually(
        async () => /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "every message acknowledged",
      );
    });

    it("keeps every message through a broker restart during a gateway outage, and delivers them once the gateway is back", async () => {
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
      await Promise.all(
        Array.from({ length: 50 }, (_, n) => publisher.publishAsync("fan/restart", JSON.stringify({ n }), { qos: 1 })),
      );
      await eventually(async () => {
        clock.advance();
        return /^predict is failing/.test((await healthOf(connector.port)).paused ?? "");
      }, "the circuit to open");
      await broker.restart(); // what the connector held is void now; the broker redelivers it
      await eventually(
        async () => !(await healthOf(connector.port)).problems.some((p) => p.startsWith("not connected")),
        "connected again",
      );
      const back = new FakeGateway();
      await back.listen(port);
      after(() => back.server.close());
      await eventually(async () => {
        clock.advance();
        return new Set((back.delivered() as Array<{ n: number }>).map((m) => m.n)).size >= 50;
      }, "every message delivered");
      await eventually(
        async () => /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "every message acknowledged",
      );
      assert.equal((await healthOf(connector.port)).status, "ok");
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
      await eventually(async () => {
        clock.advance();
        return /^connector_intake_parked\{filter="iso\/predictions"\} 1$/m.test(await metricsOf(connector.port));
      }, "alarms' circuit open and its session parked");
      // Readings published while alarms is down all arrive, with alarms still down.
      await publish("iso/readings", 0, 100);
      await eventually(async () => {
        clock.advance(); // each alarms probe fails again on the clock; readings need no clock
        return of("readings").size === 100;
      }, "every reading delivered while alarms is down");
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
      await eventually(async () => {
        clock.advance(); // the probe, then the session reconnects and the broker delivers the rest
        return of("alarms").size === 60;
      }, "every prediction delivered once alarms answers");
      await eventually(
        async () => /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "every message acknowledged",
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
        async () =>
          gateway.delivered().length >= 2 && /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "both delivered and every copy acknowledged",
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
      await until(() => events.includes("unsubscribed"), "the old session dropping up/b");
      await publisher.publishAsync("up/b", JSON.stringify({ n: "new" }), { qos: 1 });
      await eventually(
        async () =>
          gateway.delivered().length >= 2 && /^connector_messages_pending 0$/m.test(await metricsOf(connector.port)),
        "both delivered",
      );
      assert.deepEqual(
        (gateway.delivered() as Array<{ n: string }>).map((m) => m.n).sort(),
        ["kept by the old session", "new"],
        "the kept message once, the new one once (not once per session)",
      );
    });

    it("retries 503, 429, 404 and timeouts (the function's budget) without limit and dead-letters none of them", async () => {
      const failures = [
        { status: 503, body: "no endpoints" },
        { status: 429, body: "busy" },
        { status: 404, body: "no such function" },
        "hang" as const,
        { status: 502, body: "bad gateway" },
      ];
      const gatewayFor = new FakeGateway();
      gatewayFor.answer = () => failures.shift(); // then the default, 200
      const url = await gatewayFor.listen();
      after(() => gatewayFor.server.closeAllConnections());
      after(() => gatewayFor.server.close());
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
      await eventually(async () => {
        clock.advance();
        return gatewayFor.delivered().length >= 1;
      }, "the message delivered after five failed attempts");
      assert.deepEqual(
        gatewayFor.invocations.map((c) => c.headers["x-timeout-ms"]),
        ["300", "300", "300", "300", "300", "300"],
      );
      assert.deepEqual(
        gatewayFor.invocations.map((c) => c.status),
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
      const replies = collector.on("replies").length;
      let release = (): void => {};
      gateway.hold = new Promise<void>((resolve) => (release = resolve));
      await publisher.publishAsync("fan/reply", JSON.stringify({ n: "reply" }), { qos: 1 });
      await until(() => gateway.invocations.length >= 1, "the invocation");
      process.kill(broker.pid as number, "SIGSTOP"); // a frozen broker: publishes get no PUBACK
      try {
        release();
        await eventually(async () => {
          clock.advance(); // the publish times out, then waits its backoff
          return /connector_reply_failures_total\{function="echo"\} [1-9]/.test(await metricsOf(connector.port));
        }, "a failed reply publish");
        const health = await healthOf(connector.port);
        assert.ok(
          health.problems.some((p) => /^cannot publish echo's answer to replies: /.test(p)),
          JSON.stringify(health.problems),
        );
        assert.match(await metricsOf(connector.port), /^connector_messages_pending 1$/m, "not acknowledged");
      } finally {
        process.kill(broker.pid as number, "SIGCONT");
      }
      await eventually(async () => {
        clock.advance();
        return (
          collector.on("replies").length > replies &&
          /^connector_messages_pending 0$/m.test(await metricsOf(connector.port))
        );
      }, "the reply published and the message acknowledged");
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
      const letters = collector.on("fan/deadletter").length;
      let release = (): void => {};
      gateway.hold = new Promise<void>((resolve) => (release = resolve));
      const invocations = gateway.invocations.length;
      await publisher.publishAsync("fan/drain", JSON.stringify({ n: "drain" }), { qos: 1 });
      await until(() => gateway.invocations.length > invocations, "the invocation");
      process.kill(broker.pid as number, "SIGSTOP");
      let drained = false;
      try {
        release();
        await eventually(
          async () => (await healthOf(connector.port)).deadLettersPending === 1,
          "the dead letter's publish under way",
        );
        void connector.drain().then(() => (drained = true));
        await until(() => events.includes("draining_dead_letters"), "drain waiting for the dead letter");
        assert.equal(drained, false, "drain waits for the dead letter");
        assert.equal((await healthOf(connector.port)).deadLettersPending, 1, "still unpublished");
      } finally {
        process.kill(broker.pid as number, "SIGCONT");
      }
      await connector.drain();
      const [letter] = (await collector.waitFor("fan/deadletter", letters + 1)).slice(letters) as Array<{
        error: string;
        topic: string;
      }>;
      assert.match(letter?.error ?? "", /echo answered 422: unprocessable/);
      assert.equal(letter?.topic, "fan/drain");
    });
  });
});

interface HealthAnswer {
  /** The HTTP status code. */
  code: number;
  status: string;
  problems: string[];
  deadLettersPending: number;
  /** Why the last refresh of the gateway's function list failed, or null. */
  discoveryError: string | null;
  pending: number;
  bytesInFlight: number;
  /** Why the consumer reads nothing from the broker, or null. */
  paused: string | null;
  /** Each subscribed filter's session. */
  sessions: Array<{ filter: string; clientId: string; state: string; pending: number; bytesInFlight: number }>;
}

async function healthOf(port: number): Promise<HealthAnswer> {
  const answer = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { code: answer.status, ...((await answer.json()) as Omit<HealthAnswer, "code">) };
}

async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** support/eventually's poll, with this file's order of arguments. */
function eventually(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  return pollUntil(what, condition, timeoutMs);
}
