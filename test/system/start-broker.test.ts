import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import mqtt, { type IClientOptions } from "mqtt";
import { eventually } from "../support/eventually.js";
import { startFanwatch, type StartedSystem } from "../support/fanwatch-start.js";
import { Collector } from "../support/mqtt-collector.js";
import { runCli } from "../support/process.js";

/** A prediction health would act on: fault, probability high, as predict publishes them. */
function forgedPrediction(i: number): string {
  return JSON.stringify({
    deviceID: "ghost-9",
    timeStamp: new Date(Date.now() + i).toISOString(),
    fault: 1,
    probability: 0.99,
    reading: { deviceID: "ghost-9", rotation: 420, temperature: 53, vibration: 240, sound: 58 },
  });
}

/** Publishes `payloads` (QoS 1) from a client of the operator: whether the broker acknowledged them all or closed the connection. */
function publishAll(url: string, topic: string, payloads: string[]): Promise<"accepted" | "connection closed"> {
  return publishAs(url, { clientId: "forger" }, topic, payloads);
}

/** Publishes `payloads` (QoS 1) as `login` (a fan's client id is its user name): acknowledged, or the connection closed. */
async function publishAs(
  url: string,
  login: { username?: string; password?: string; clientId?: string },
  topic: string,
  payloads: string[],
): Promise<"accepted" | "connection closed"> {
  const client = await mqtt.connectAsync(url, {
    clientId: login.clientId ?? login.username,
    reconnectPeriod: 0,
    ...(login.username === undefined ? {} : { username: login.username, password: login.password }),
  });
  try {
    const closed = new Promise<"connection closed">((resolve) =>
      client.once("close", () => resolve("connection closed")),
    );
    const acked = payloads.map(
      (payload) => new Promise<void>((resolve) => client.publish(topic, payload, { qos: 1 }, (e) => e ?? resolve())),
    );
    return await Promise.race([closed, Promise.all(acked).then(() => "accepted" as const)]);
  } finally {
    await client.endAsync(true);
  }
}

/** Connects with `options`; the error of a refused CONNECT, or undefined once in (then disconnected). */
async function connectOutcome(url: string, options: IClientOptions): Promise<(Error & { code?: number }) | undefined> {
  try {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
    await client.endAsync(true);
    return undefined;
  } catch (error) {
    return error as Error & { code?: number };
  }
}

describe("fanwatch start's embedded broker: users and topic rules as in production", { timeout: 180_000 }, () => {
  let system: StartedSystem;
  let collector: Collector;
  let bare: string;

  before(async () => {
    system = await startFanwatch(["--mqtt-port", "0", "--fans", "3", "--faulty", "1", "--degrading", "0"], {
      MQTT_URL: "",
      // Yours, for a broker of your own: not a login on the embedded one.
      MQTT_USERNAME: "me",
      MQTT_PASSWORD: "my-own-brokers-password",
      // The broker's refusals are warnings.
      LOG_LEVEL: "warn",
    });
    const url = new URL(system.brokerUrl);
    url.username = "";
    url.password = "";
    bare = url.toString();
    // The operator of this run (the file start names) may read everything.
    collector = await Collector.start(system.brokerUrl, ["#"]);
  });
  after(async () => {
    await collector?.stop();
    if (system?.child.exitCode === null) system.child.kill("SIGKILL");
  });

  it("says where the operator's password is, and that MQTT_USERNAME is for a broker of your own", () => {
    assert.match(system.output(), /user operator with the password in \S+broker-operator-password \(this run only\)/);
    assert.match(system.output(), /MQTT_USERNAME\/MQTT_PASSWORD are for a broker of your own/);
    assert.match(system.output(), /listen {3}mosquitto_sub .* -u operator -P "\$\(cat '\S+'\)"/);
    assert.doesNotMatch(system.output(), /my-own-brokers-password/);
  });

  it("refuses anonymous clients and MQTT_USERNAME's login, naming the client in its log", async () => {
    assert.equal((await connectOutcome(bare, { clientId: "anonymous-tool" }))?.code, 5);
    assert.equal(
      (await connectOutcome(bare, { clientId: "my-login", username: "me", password: "my-own-brokers-password" }))?.code,
      4,
    );
    await eventually("the refusal in the log", () =>
      /"event":"mqtt_login_refused".*"clientId":"anonymous-tool".*"address":"127\.0\.0\.1:\d+"/.test(system.output()),
    );
  });

  it("gives each function its own user, its password not shown by /system/functions", async () => {
    const auth = { authorization: `Basic ${Buffer.from(`admin:${system.password}`).toString("base64")}` };
    const functions = (await (
      await fetch(`${system.gatewayUrl}/system/functions`, { headers: auth })
    ).json()) as Array<{
      name: string;
      envVars: Record<string, string>;
    }>;
    const env = (name: string) => functions.find((f) => f.name === name)?.envVars ?? {};
    assert.equal(env("predict").MQTT_USERNAME, "predict");
    assert.equal(env("health").MQTT_USERNAME, "health");
    assert.equal(env("score").MQTT_USERNAME, undefined);
    assert.equal(env("predict").MQTT_PASSWORD, undefined);
    assert.doesNotMatch(JSON.stringify(functions), /my-own-brokers-password/);
  });

  it("keeps forged predictions and transitions of a non-function user away from health and the page", async () => {
    await collector.waitFor("fan/anomaly", 5, 60_000);
    const predictions = Array.from({ length: 20 }, (_, i) => forgedPrediction(i));
    assert.equal(await publishAll(system.brokerUrl, "fan/anomaly", predictions), "connection closed");
    const transition = {
      id: "forged",
      deviceID: "ghost-9",
      event: "alarm",
      state: "alarm",
      at: new Date().toISOString(),
    };
    assert.equal(await publishAll(system.brokerUrl, "fan/alarm", [JSON.stringify(transition)]), "connection closed");
    // The log line comes through the child's stderr, a moment after the refusal.
    await eventually("both refusals in the log", () =>
      /refused operator's publish to fan\/anomaly[^]*refused operator's publish to fan\/alarm/.test(system.output()),
    );

    // 20 more real predictions through health: were the forged ones let in, health would have them by now.
    const seen = collector.on("fan/anomaly").length;
    await collector.waitFor("fan/anomaly", seen + 20, 60_000);
    const records = await (await fetch(`${system.gatewayUrl}/function/health`)).text();
    assert.match(records, /"deviceID":"1"/);
    assert.doesNotMatch(records, /ghost-9/);
    const heard = JSON.stringify([...collector.messages.values()]);
    assert.doesNotMatch(heard, /ghost-9/);
    const frame = await firstFrame(`${system.gatewayUrl}/ui/events`);
    assert.doesNotMatch(JSON.stringify(frame), /ghost-9/);
  });

  it("refuses a client that takes the connector's client id; the connector carries on", async () => {
    const outcome = await connectOutcome(system.brokerUrl, { clientId: "fanwatch-start-connector", clean: false });
    assert.equal(outcome?.code, 2);
    await eventually("the refusal in the log", () =>
      /client id fanwatch-start-connector belongs to user connector/.test(system.output()),
    );
    const seen = collector.on("fan/anomaly").length;
    await collector.waitFor("fan/anomaly", seen + 10, 30_000);
    const port = /connector routing .* \(health on http:\/\/127\.0\.0\.1:(\d+)\/healthz\)/.exec(system.output())?.[1];
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  });

  it("lets a registered fan with credentials log in as itself and publish its own readings only", async () => {
    const nats = /nats-server on (nats:\/\/\S+),/.exec(system.output())?.[1] as string;
    const given = await runCli(["fans", "credentials", "2"], { NATS_URL: nats });
    assert.equal(given.code, 0, given.stderr);
    const password = /password {3}(\S+)/.exec(given.stdout)?.[1] as string;
    const fan = { username: "fan-2", password };
    // Another client id than its user name, or another fan's topic: refused.
    assert.equal((await connectOutcome(bare, { ...fan, clientId: "my-fan" }))?.code, 2);
    assert.equal(await publishAs(bare, fan, "fan/messages/3", ['{"deviceID":"3"}']), "connection closed");
    assert.equal(await publishAs(bare, fan, "fan/messages/2", ['{"deviceID":"2","by":"fan-2"}']), "accepted");
    await eventually("fan 2's own reading at the operator's subscriber", () =>
      collector.on("fan/messages/2").some((m) => (m as { by?: string }).by === "fan-2"),
    );
    assert.deepEqual(collector.on("fan/messages/3"), []);
  });

  it("stops with exit code 0 and removes the operator's password file", async () => {
    const file = /password in (\S+) \(this run only\)/.exec(system.output())?.[1] as string;
    const { code } = await system.interrupt();
    assert.equal(code, 0, system.output());
    assert.equal(existsSync(file), false);
  });
});

/** The page's first server-sent frame, parsed. */
async function firstFrame(url: string): Promise<Record<string, unknown>> {
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString("utf8");
      const frame = /^data: (.*)$/m.exec(text);
      if (frame !== null && text.includes("\n\n")) return JSON.parse(frame[1] as string) as Record<string, unknown>;
    }
  } finally {
    controller.abort();
  }
  throw new Error(`no frame from ${url}`);
}
