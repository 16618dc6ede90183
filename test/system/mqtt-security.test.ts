import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { eventually } from "../support/eventually.js";
import { Collector } from "../support/mqtt-collector.js";
import { freePort, postJson, spawnCli, waitForOutput, waitUntilReady } from "../support/process.js";

// A broker that requires passwords, as deploy/mosquitto/mosquitto.conf does in production; the
// functions and the connector read theirs from secret files.
describe("MQTT credentials", { timeout: 60_000 }, () => {
  let broker: Broker;
  let secrets: string;
  const children: ChildProcessWithoutNullStreams[] = [];

  before(async () => {
    broker = await startMosquitto({
      users: { predict: "predict-pass", connector: "connector-pass", observer: "observer-pass" },
    });
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-secrets-"));
    await writeFile(join(secrets, "mqtt-password"), "predict-pass\n");
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("refuses anonymous clients", async () => {
    await assert.rejects(mqtt.connectAsync(broker.url, { reconnectPeriod: 0 }), /Not authorized|Connection refused/);
  });

  it("predict logs in with the password from its secret file and publishes", async () => {
    const collector = await Collector.start(`mqtt://observer:observer-pass@127.0.0.1:${broker.port}`, ["fan/anomaly"]);
    const scorePort = await freePort();
    const score = spawnCli(["function", "score", "--port", String(scorePort)]);
    children.push(score);
    await waitUntilReady(`http://127.0.0.1:${scorePort}`, score);
    const port = await freePort();
    const predict = spawnCli(["function", "predict", "--port", String(port)], {
      MQTT_URL: broker.url,
      MQTT_USERNAME: "predict",
      SECRET_MOUNT_PATH: secrets,
      SCORE_URL: `http://127.0.0.1:${scorePort}/`,
    });
    children.push(predict);
    await waitUntilReady(`http://127.0.0.1:${port}`, predict);
    const answer = await postJson(`http://127.0.0.1:${port}/`, {
      deviceID: "auth",
      rotation: 600,
      temperature: 40,
      vibration: 150,
      sound: 48,
    });
    assert.equal(answer.status, 200);
    const [message] = await collector.waitFor("fan/anomaly", 1);
    assert.equal((message as { deviceID: string }).deviceID, "auth");
    await collector.stop();
  });

  it("the connector reports itself unavailable with a wrong password, and works with the right one", async () => {
    const base = {
      broker: broker.url,
      MQTT_USERNAME: "connector",
      functions: "fan/messages=predict",
      gateway_url: "http://127.0.0.1:9",
    };
    const wrongPort = await freePort();
    const wrong = spawnCli(["connector"], {
      ...base,
      MQTT_PASSWORD: "nope",
      port: String(wrongPort),
      client_id: "wrong",
    });
    children.push(wrong);
    // Until the broker has refused it: its health then names the error.
    type Health = { code: number; broker: string; problems: string[] };
    const healthOf = async (): Promise<Health> => {
      const answer = await fetch(`http://127.0.0.1:${wrongPort}/healthz`);
      return { ...((await answer.json()) as Omit<Health, "code">), code: answer.status };
    };
    await eventually("the broker's refusal", async () =>
      (await healthOf()).problems.some((p) => /^not connected to the broker: ./.test(p)),
    );
    const health = await healthOf();
    assert.equal(health.code, 503);
    assert.equal(health.broker, "disconnected");
    const right = spawnCli(["connector"], {
      ...base,
      MQTT_PASSWORD: "connector-pass",
      port: String(await freePort()),
      client_id: "right",
    });
    children.push(right);
    await waitForOutput(right, /connector running/);
  });
});

describe("MQTT over TLS", { timeout: 60_000 }, () => {
  let broker: Broker & { caFile?: string };
  const children: ChildProcessWithoutNullStreams[] = [];
  before(async () => {
    broker = await startMosquitto({ tls: true });
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await broker?.stop();
  });

  it("the connector connects with mqtts:// and the broker's CA from MQTT_CA_FILE", async () => {
    assert.match(broker.url, /^mqtts:/);
    const port = await freePort();
    const connector = spawnCli(["connector"], {
      broker: broker.url,
      MQTT_CA_FILE: broker.caFile ?? "",
      functions: "fan/messages=predict",
      gateway_url: "http://127.0.0.1:9",
      port: String(port),
      client_id: "tls",
    });
    children.push(connector);
    await waitForOutput(connector, /connector running/);
    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { broker: string };
    assert.equal(health.broker, "connected");
  });

  it("a client without the CA is refused", async () => {
    await assert.rejects(mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 3_000 }), /certificate/i);
  });
});

// deploy/mosquitto as shipped: the services' listener, the fans' TLS listener, client ids bound to
// fans by the dynamic security plugin on both, the 16 KiB packet cap, the password file, ACL and
// plugin file as fanwatch broker-auth makes them from the registry's fans (fans a and b).
describe("the shipped broker security", { timeout: 60_000 }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  let ca: Buffer;
  const clients: MqttClient[] = [];
  const users = { connector: "connector-pass", predict: "predict-pass", telegraf: "telegraf-pass" };
  const fans = { a: "a-pass", b: "b-pass" };

  /** Connects and keeps every message received, by topic. */
  async function client(
    url: string,
    options: IClientOptions,
  ): Promise<MqttClient & { received: Array<[string, string]> }> {
    const c = await mqtt.connectAsync(url, {
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...(url.startsWith("mqtts:") ? { ca } : {}),
      ...options,
    });
    clients.push(c);
    const received: Array<[string, string]> = [];
    c.on("message", (topic, payload) => received.push([topic, payload.toString()]));
    return Object.assign(c, { received });
  }
  const asService = (user: keyof typeof users, clientId: string) =>
    client(broker.url, { username: user, password: users[user], clientId, clean: false });
  /** A fan as its device is configured (docs/deploy.md): username and client id fan-<id>, TLS. */
  const asFan = (id: keyof typeof fans, options: IClientOptions = {}, url = broker.fansUrl ?? "") =>
    client(url, { username: `fan-${id}`, password: fans[id], clientId: `fan-${id}`, ...options });
  const until = (check: () => boolean, what: string) => eventually(what, check, 10_000);
  const log = () => readFile(broker.logFile ?? "", "utf8");

  before(async () => {
    broker = await startMosquitto({ shipped: { users, fans }, debugLog: true });
    ca = await readFile(broker.caFile ?? "");
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await broker?.stop();
  });

  it("refuses a publish over the 16 KiB cap, disconnecting its sender, and keeps serving the others", async () => {
    const connector = await asService("connector", "cap-connector");
    await connector.subscribeAsync("fan/messages/+", { qos: 1 });
    const fanA = await asFan("a");
    await fanA.publishAsync("fan/messages/a", "small before", { qos: 1 });
    const closed = new Promise<void>((resolve) => fanA.once("close", () => resolve()));
    const accepted = fanA
      .publishAsync("fan/messages/a", "x".repeat(17 * 1024), { qos: 1 })
      .then(() => assert.fail("the broker acknowledged a 17 KiB message"));
    await Promise.race([closed, accepted]);
    const fanB = await asFan("b");
    await fanB.publishAsync("fan/messages/b", "small after", { qos: 1 });
    await until(() => connector.received.length >= 2, "the small messages");
    assert.deepEqual(
      connector.received.map(([, m]) => m),
      ["small before", "small after"],
    );
    assert.match(await log(), /fan-a disconnected due to oversize packet/);
  });

  it("fan a's credentials cannot publish as fan b: the broker refuses (PUBACK 135), logs it, and the connector never sees it", async () => {
    const connector = await asService("connector", "forgery-connector");
    await connector.subscribeAsync(["$share/fanwatch/fan/messages", "$share/fanwatch/fan/messages/+"], { qos: 1 });
    for (const [url, listener] of [
      [broker.fansUrl ?? "", "fans' TLS listener"],
      [broker.url, "services' listener"],
    ] as const) {
      const fanA = await asFan("a", { protocolVersion: 5 }, url);
      const refused = await fanA.publishAsync("fan/messages/b", `forged on the ${listener}`, { qos: 1 }).then(
        () => undefined,
        (error: Error & { code?: number }) => error.code,
      );
      assert.equal(refused, 135, `PUBACK reason code on the ${listener}: 135, not authorized`);
      // Unbound readings (the reference topic) are refused too while ALLOW_UNBOUND_FANS is false.
      await fanA.publishAsync("fan/messages", "unbound", { qos: 1 }).catch(() => {});
      await fanA.publishAsync("fan/messages/a", `own on the ${listener}`, { qos: 1 });
      await fanA.endAsync();
    }
    await until(() => connector.received.length >= 2, "fan a's own readings");
    assert.deepEqual(connector.received, [
      ["fan/messages/a", "own on the fans' TLS listener"],
      ["fan/messages/a", "own on the services' listener"],
    ]);
    const text = await log();
    assert.match(text, /Denied PUBLISH from fan-a \(d0, q1, r0, m\d+, 'fan\/messages\/b'/);
    assert.match(text, /Denied PUBLISH from fan-a \(d0, q1, r0, m\d+, 'fan\/messages'/);
  });

  for (const listener of ["fans' TLS listener", "services' listener"] as const)
    it(`an authenticated fan cannot take the connector's client id on the ${listener}`, async () => {
      const url = listener === "services' listener" ? broker.url : (broker.fansUrl ?? "");
      const id = listener === "services' listener" ? "mqtt-connector-0" : "mqtt-connector-1";
      const connector = await asService("connector", id);
      await connector.subscribeAsync("fan/messages/+", { qos: 1 });
      let kicked = false;
      connector.on("close", () => (kicked = true));
      const forger = await asFan("a", { clientId: id }, url).then(
        (c) => c,
        (error: Error) => error,
      );
      if (listener === "services' listener")
        // The dynamic security plugin: fan-a may use no client id but fan-a.
        assert.match(forger instanceof Error ? forger.message : "connected", /Not authorized|not authorised/i);
      else {
        // use_username_as_clientid: let in, as fan-a.
        assert.ok(!(forger instanceof Error), forger instanceof Error ? forger.message : "");
        assert.match(await log(), /New client connected from \S+ as fan-a \(.*u'fan-a'\)/);
      }
      // Whatever the forger did, a fan's reading still reaches the connector on its connection.
      const fanB = await asFan("b");
      await fanB.publishAsync("fan/messages/b", `after the attempt on the ${listener}`, { qos: 1 });
      await until(() => connector.received.length >= 1, "fan b's reading at the connector");
      assert.equal(kicked, false, "the connector kept its connection");
      assert.equal(connector.connected, true);
    });

  it("the services' sessions keep their own client ids: the connector's several sessions and replicas", async () => {
    const ids = ["mqtt-connector-0", "mqtt-connector-0.fan%2Fanomaly", "mqtt-connector-0-replies", "mqtt-connector-1"];
    const sessions = await Promise.all(ids.map((id) => asService("connector", `${id}-own`)));
    let closed = 0;
    for (const s of sessions) s.on("close", () => closed++);
    await sessions[0]?.subscribeAsync("fan/messages/+", { qos: 1 });
    const fanA = await asFan("a");
    await fanA.publishAsync("fan/messages/a", "to all sessions", { qos: 1 });
    await until(() => (sessions[0]?.received.length ?? 0) >= 1, "the reading");
    assert.equal(closed, 0);
    assert.ok(sessions.every((s) => s.connected));
  });

  it("lets fans publish readings only: a forged prediction is dropped", async () => {
    const telegraf = await asService("telegraf", "acl-telegraf");
    await telegraf.subscribeAsync(["fan/anomaly"], { qos: 1 });
    const connector = await asService("connector", "acl-connector");
    await connector.subscribeAsync(["fan/messages/+"], { qos: 1 });
    const fan = await asFan("b");
    await fan.publishAsync("fan/anomaly", JSON.stringify({ deviceID: "forged", fault: 0, probability: 0 }), { qos: 1 });
    await fan.publishAsync("fan/messages/b", "after the forgery", { qos: 1 });
    await until(() => connector.received.some(([, m]) => m === "after the forgery"), "the reading");
    assert.deepEqual(telegraf.received, []);
  });

  it("Telegraf reads no readings: it stores them from predictions", async () => {
    // Mosquitto 2.0 grants the subscription and checks the ACL on each delivery.
    const telegraf = await asService("telegraf", "acl-telegraf-readings");
    await telegraf.subscribeAsync(["fan/messages/+", "fan/deadletter"], { qos: 1 });
    const fan = await asFan("a");
    await fan.publishAsync("fan/messages/a", "a reading", { qos: 1 });
    const predict = await asService("predict", "acl-predict-after");
    await predict.publishAsync("fan/deadletter", "after the reading", { qos: 1 });
    await until(() => telegraf.received.length >= 1, "the dead letter published after the reading");
    assert.deepEqual(telegraf.received, [["fan/deadletter", "after the reading"]]);
  });

  it("delivers dead letters to Telegraf, which stores them", async () => {
    const telegraf = await asService("telegraf", "acl-telegraf-deadletter");
    await telegraf.subscribeAsync("fan/deadletter", { qos: 1 });
    const predict = await asService("predict", "acl-predict");
    const letter = JSON.stringify({
      error: "temperature: missing",
      topic: "fan/messages",
      payload: "{}",
      at: new Date().toISOString(),
    });
    await predict.publishAsync("fan/deadletter", letter, { qos: 1 });
    await until(() => telegraf.received.length >= 1, "the dead letter");
    assert.deepEqual(telegraf.received, [["fan/deadletter", letter]]);
  });

  it("speaks only TLS to fans, and only to registered ones", async () => {
    const plain = broker.fansUrl?.replace("mqtts:", "mqtt:") ?? "";
    await assert.rejects(
      mqtt.connectAsync(plain, {
        reconnectPeriod: 0,
        connectTimeout: 3_000,
        username: "fan-a",
        password: fans.a,
      }),
    );
    await assert.rejects(
      client(broker.fansUrl ?? "", { username: "fan-unknown", password: "guess", clientId: "fan-unknown" }),
      /Not authorized|Bad username or password/,
    );
  });

  it("refuses a service user whose name is a fan's", async () => {
    await assert.rejects(
      startMosquitto({ shipped: { users: { "fan-x": "x" }, fans } }),
      /names starting with fan- are for fans/,
    );
  });
});
