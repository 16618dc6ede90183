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

// deploy/mosquitto as shipped: the services' listener, the fans' TLS listener with client ids bound
// to usernames, the 16 KiB packet cap, the password file and ACL built by build-auth.sh.
describe("the shipped broker security", { timeout: 60_000 }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  let ca: Buffer;
  const clients: MqttClient[] = [];
  const users = { connector: "connector-pass", predict: "predict-pass", telegraf: "telegraf-pass" };
  const fans = { "fan-a": "a-pass", "fan-b": "b-pass" };

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
  const asFan = (user: keyof typeof fans, clientId = "any") =>
    client(broker.fansUrl ?? "", { username: user, password: fans[user], clientId });
  const until = (check: () => boolean, what: string) => eventually(what, check, 10_000);

  before(async () => {
    broker = await startMosquitto({ shipped: { users, fans } });
    ca = await readFile(broker.caFile ?? "");
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await broker?.stop();
  });

  it("refuses a publish over the 16 KiB cap, disconnecting its sender, and keeps serving the others", async () => {
    const telegraf = await asService("telegraf", "cap-telegraf");
    await telegraf.subscribeAsync("fan/messages", { qos: 1 });
    const fanA = await asFan("fan-a");
    await fanA.publishAsync("fan/messages", "small before", { qos: 1 });
    const closed = new Promise<void>((resolve) => fanA.once("close", () => resolve()));
    const accepted = fanA
      .publishAsync("fan/messages", "x".repeat(17 * 1024), { qos: 1 })
      .then(() => assert.fail("the broker acknowledged a 17 KiB message"));
    await Promise.race([closed, accepted]);
    const fanB = await asFan("fan-b");
    await fanB.publishAsync("fan/messages", "small after", { qos: 1 });
    await until(() => telegraf.received.length >= 2, "the small messages");
    assert.deepEqual(
      telegraf.received.map(([, m]) => m),
      ["small before", "small after"],
    );
    assert.match(await readFile(broker.logFile ?? "", "utf8"), /fan-a disconnected due to oversize packet/);
  });

  it("binds a fan's client id to its username: asking for the connector's does not kick the connector off", async () => {
    const connector = await asService("connector", "mqtt-connector-0");
    await connector.subscribeAsync("$share/fanwatch/fan/messages", { qos: 1 });
    let kicked = false;
    connector.on("close", () => (kicked = true));
    const forger = await asFan("fan-a", "mqtt-connector-0");
    await forger.publishAsync("fan/messages", "from a fan posing as the connector", { qos: 1 });
    await until(() => connector.received.length >= 1, "the fan's reading at the connector");
    assert.equal(kicked, false, "the connector kept its connection");
    assert.equal(connector.connected, true);
    assert.match(await readFile(broker.logFile ?? "", "utf8"), /New client connected from \S+ as fan-a \(.*u'fan-a'\)/);
  });

  it("lets fans publish readings only: a forged prediction is dropped", async () => {
    const telegraf = await asService("telegraf", "acl-telegraf");
    await telegraf.subscribeAsync(["fan/anomaly", "fan/messages"], { qos: 1 });
    const fan = await asFan("fan-b");
    await fan.publishAsync("fan/anomaly", JSON.stringify({ deviceID: "forged", fault: 0, probability: 0 }), { qos: 1 });
    await fan.publishAsync("fan/messages", "after the forgery", { qos: 1 });
    await until(() => telegraf.received.some(([, m]) => m === "after the forgery"), "the reading");
    assert.deepEqual(telegraf.received, [["fan/messages", "after the forgery"]]);
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
        password: fans["fan-a"],
      }),
    );
    await assert.rejects(
      client(broker.fansUrl ?? "", { username: "fan-unknown", password: "guess" }),
      /Not authorized|Bad username or password/,
    );
  });

  it("refuses to build credentials for a fan whose name could collide with a service's client id", async () => {
    await assert.rejects(
      startMosquitto({ shipped: { users, fans: { "mqtt-connector-0": "x" } } }),
      /must start with fan-/,
    );
  });
});
