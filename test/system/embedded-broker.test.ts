import assert from "node:assert/strict";
import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { EmbeddedBroker } from "../../runtime/system/broker.js";
import { pino } from "pino";
import { PacketSizeGuard } from "../../runtime/system/packet-size-guard.js";
import { FanLoginsService, startBrokerUsers, type StartBrokerUsers } from "../../runtime/system/broker-users.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { eventually } from "../support/eventually.js";

describe("the embedded broker's packet size limit", () => {
  let broker: EmbeddedBroker;
  let subscriber: MqttClient;
  const received: string[] = [];
  const logged: string[] = [];

  before(async () => {
    const log = pino({ level: "warn" }, { write: (line: string) => void logged.push(line) });
    broker = new EmbeddedBroker({ port: 0, log });
    await broker.start();
    subscriber = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    subscriber.on("message", (_topic, payload) =>
      received.push(payload.length > 100 ? `${payload.length} bytes` : payload.toString()),
    );
    await subscriber.subscribeAsync("fan/messages", { qos: 1 });
  });
  after(async () => {
    await subscriber?.endAsync(true);
    await broker?.close();
  });

  it("closes the connection of a client that publishes 1 MB, and everyone else carries on", async () => {
    const sender = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => sender.once("close", () => resolve()));
    sender.publish("fan/messages", Buffer.alloc(1024 * 1024, "x"), { qos: 0 });
    await closed;
    const line = logged.find((l) => l.includes("packet_too_large"));
    assert.ok(line, `logged: ${logged.join("")}`);
    assert.match(line, /MQTT packet of 10485\d\d bytes refused: the limit is 16384 bytes/);

    // The broker and the subscriber are still there: the next client's readings go through.
    const next = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    await next.publishAsync("fan/messages", '{"deviceID":"1"}', { qos: 1 });
    await next.publishAsync("fan/messages", Buffer.alloc(16_000, "y"), { qos: 1 });
    await next.endAsync();
    await eventually("both messages at the subscriber", () => received.length >= 2);
    assert.deepEqual(received, ['{"deviceID":"1"}', "16000 bytes"]);
    assert.equal(subscriber.connected, true);
  });
});

describe("PacketSizeGuard", () => {
  it("passes packets up to the limit unchanged, however the bytes are split, and refuses the first one over it", async () => {
    const small = publishPacket(100);
    const big = publishPacket(300); // a 2-byte length: the split can fall inside it
    const bytes = Buffer.concat([small, publishPacket(0), small, big, small]);
    for (let split = 1; split < small.length * 2 + 4; split++) {
      const guard = new PacketSizeGuard(small.length + 10);
      const passed: Buffer[] = [];
      guard.on("data", (chunk: Buffer) => passed.push(chunk));
      const failed = once(guard, "error");
      for (let i = 0; i < bytes.length && !guard.destroyed; i += split) guard.write(bytes.subarray(i, i + split));
      const [error] = (await failed) as [Error];
      assert.match(
        error.message,
        new RegExp(`MQTT packet of ${big.length} bytes refused: the limit is ${small.length + 10} bytes`),
      );
      // Every byte before the big packet went through; of the big packet, at most its header did.
      const through = Buffer.concat(passed);
      const before = small.length * 2 + publishPacket(0).length;
      assert.ok(
        through.length >= before && through.length <= before + 3,
        `split ${split}: ${through.length} bytes passed`,
      );
      assert.deepEqual(through.subarray(0, before), bytes.subarray(0, before));
    }
  });
});

/** A QoS 0 PUBLISH packet on topic "t" with `payload` bytes. */
function publishPacket(payload: number): Buffer {
  const body = Buffer.concat([Buffer.from([0, 1, 0x74]), Buffer.alloc(payload, 0x61)]);
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x30, ...length]), body]);
}

describe("the embedded broker's users and topic rules (fanwatch start's)", () => {
  let broker: EmbeddedBroker;
  let users: StartBrokerUsers;
  let dir: string;
  let operator: MqttClient;
  const heard: Array<[string, string]> = [];
  const logged: Array<Record<string, unknown>> = [];
  const clientIds = {
    connector: "fanwatch-start-connector",
    view: "fanwatch-view-",
    writer: "fanwatch-influx-writer",
    simulator: "fanwatch-fleet-",
  };

  /** A client of `login` (none: anonymous) that gives up at the first refusal. */
  const connect = (login: { username: string; password: string } | undefined, clientId: string) =>
    mqtt.connectAsync(broker.url, { clientId, reconnectPeriod: 0, ...login });
  /** A function's login, as the local gateway asks for it: the function's replicas' ids `<name>-…` are its own. */
  const loginOf = (name: string) => users.functionLogin(name, name) as { username: string; password: string };
  const refusal = async (attempt: Promise<unknown>) => {
    try {
      await attempt;
    } catch (error) {
      return error as Error & { code?: number; packet?: { granted?: number[] } };
    }
    assert.fail("the broker let the client in");
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "embedded-broker-users-"));
    const log = pino(
      { level: "warn" },
      { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
    );
    users = await startBrokerUsers({
      env: { BROKER_OPERATOR_FILE: join(dir, "operator") },
      telemetryTopic: "fan/messages",
      clientIds,
      log,
    });
    broker = new EmbeddedBroker({ port: 0, log, auth: users.auth });
    await broker.start();
    const password = (await readFile(users.operatorFile, "utf8")).trim();
    operator = await connect({ username: "operator", password }, "operator-test");
    operator.on("message", (topic, payload) => heard.push([topic, payload.toString()]));
    await operator.subscribeAsync("#", { qos: 1 });
  });
  after(async () => {
    await operator?.endAsync(true);
    await broker?.close();
    await users?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the operator's password to a file only this OS user can read", async () => {
    assert.equal((await stat(users.operatorFile)).mode & 0o777, 0o600);
  });

  it("refuses an anonymous client with 'not authorized', logging its client id and address", async () => {
    const error = await refusal(connect(undefined, "nobody-1"));
    assert.equal(error.code, 5);
    assert.match(error.message, /Not authorized/);
    const line = logged.find((l) => l.event === "mqtt_login_refused" && l.clientId === "nobody-1");
    assert.match(String(line?.address), /^127\.0\.0\.1:\d+$/);
    assert.match(String(line?.msg), /anonymous clients are not allowed/);
    // A wrong password, a user of the production ACL that this run has no password for.
    assert.equal((await refusal(connect({ username: "simulator", password: "guess" }, "nobody-2"))).code, 4);
    assert.equal((await refusal(connect({ username: "telegraf", password: "" }, "nobody-3"))).code, 4);
  });

  it("lets the simulator publish readings, never predictions or transitions, and read nothing", async () => {
    const simulator = users.settingsOf("simulator", { url: broker.url });
    const login = { username: simulator.username as string, password: simulator.password as string };
    const fleet = await connect(login, "fanwatch-fleet-1");
    await fleet.publishAsync("fan/messages", '{"deviceID":"1"}', { qos: 1 });
    await eventually("the reading at the operator's subscriber", () => heard.some(([t]) => t === "fan/messages"));
    const subscribed = await refusal(fleet.subscribeAsync("#"));
    assert.match(subscribed.message, /Subscribe error/);
    assert.deepEqual(subscribed.packet?.granted, [0x80]);
    assert.equal(fleet.connected, true, "a refused subscription leaves the connection");
    for (const topic of ["fan/anomaly", "fan/alarm"]) {
      const forger = await connect(login, "fanwatch-fleet-2");
      const closed = new Promise<void>((resolve) => forger.once("close", () => resolve()));
      forger.publish(topic, JSON.stringify({ deviceID: "ghost-9", fault: 1 }), { qos: 1 });
      await closed;
      await forger.endAsync(true);
      const line = logged.find((l) => l.event === "mqtt_publish_refused" && l.topic === topic);
      assert.match(String(line?.msg), new RegExp(`refused simulator's publish to ${topic} .*connection closed`));
    }
    assert.ok(
      logged.some((l) => l.event === "mqtt_subscribe_refused" && l.topic === "#" && l.username === "simulator"),
    );
    // What the operator hears after a marker of predict's: the forged messages never got through.
    const predict = await connect(loginOf("predict"), "predict-1");
    await predict.publishAsync("fan/anomaly", '{"deviceID":"1","fault":0}', { qos: 1 });
    await eventually("predict's prediction at the operator", () => heard.some(([t]) => t === "fan/anomaly"));
    assert.deepEqual(
      heard.filter(([, payload]) => payload.includes("ghost-9")),
      [],
    );
    await Promise.all([predict.endAsync(), fleet.endAsync()]);
  });

  it("lets only health publish transitions and only the connector read the readings it routes", async () => {
    const health = await connect(loginOf("health"), "health-1");
    await health.publishAsync("fan/alarm", '{"deviceID":"1","event":"alarm"}', { qos: 1 });
    await eventually("health's transition at the operator", () => heard.some(([t]) => t === "fan/alarm"));
    await health.endAsync();
    const connector = await connect(
      users.settingsOf("connector", { url: broker.url }) as { username: string; password: string },
      "fanwatch-start-connector",
    );
    await connector.subscribeAsync(["fan/messages", "fan/anomaly"], { qos: 1 });
    assert.deepEqual((await refusal(connector.subscribeAsync("fan/alarm"))).packet?.granted, [0x80]);
    await connector.endAsync();
  });

  it("refuses a client that takes another user's client id: the connector stays connected", async () => {
    const connectorLogin = users.settingsOf("connector", { url: broker.url }) as { username: string; password: string };
    const connector = await connect(connectorLogin, "fanwatch-start-connector");
    const kicked = new Promise<string>((resolve) => connector.once("close", () => resolve("closed")));
    const password = (await readFile(users.operatorFile, "utf8")).trim();
    for (const id of ["fanwatch-start-connector", "fanwatch-start-connector.fan%2Fanomaly", "predict-1"]) {
      const error = await refusal(connect({ username: "operator", password }, id));
      assert.equal(error.code, 2, id);
      assert.match(error.message, /Identifier rejected/);
    }
    const line = logged.find((l) => l.event === "mqtt_login_refused" && l.clientId === "fanwatch-start-connector");
    assert.match(String(line?.msg), /client id fanwatch-start-connector belongs to user connector/);
    // The connector is still there: it gets a reading published now.
    await connector.subscribeAsync("fan/messages", { qos: 1 });
    const got = new Promise((resolve) => connector.once("message", resolve));
    await operator.publishAsync("fan/messages", '{"deviceID":"2"}', { qos: 1 });
    await got;
    assert.equal(await Promise.race([kicked, Promise.resolve("connected")]), "connected");
    // Any other id is its first user's while connected, then free again (a clean session).
    const simulator = users.settingsOf("simulator", { url: broker.url }) as { username: string; password: string };
    const tool = await connect({ username: "operator", password }, "my-tool");
    assert.equal((await refusal(connect(simulator, "my-tool"))).code, 2);
    await tool.endAsync();
    await eventually("my-tool free again", async () => {
      const client = await connect(simulator, "my-tool").catch(() => undefined);
      await client?.endAsync();
      return client !== undefined;
    });
    // An id that held a persistent session stays its user's for the run: its queued messages are theirs.
    const persistent = await connect({ username: "operator", password }, "my-session");
    await persistent.endAsync();
    const reconnected = await mqtt.connectAsync(broker.url, {
      clientId: "my-session",
      clean: false,
      reconnectPeriod: 0,
      username: "operator",
      password,
    });
    await reconnected.endAsync();
    assert.equal((await refusal(connect(simulator, "my-session"))).code, 2);
    await connector.endAsync(true);
  });

  it("lets a registered fan log in as fan-<id> and publish as itself only", async () => {
    // The registry as fanwatch start hands it to the broker: a watched cache.
    const registry = new MemoryFanRegistry();
    await registry.add("7", {}, "test");
    await registry.setPasswordHash("7", pbkdf2Hash("fan-seven-password"));
    await registry.add("8", {}, "test");
    await registry.setPasswordHash("8", pbkdf2Hash("fan-eight"));
    await registry.retire("8", "test");
    const logins = new FanLoginsService({
      auth: users.auth,
      registry,
      verify: verifyPbkdf2,
      telemetryTopic: "fan/messages",
      allowUnbound: true,
    });
    await logins.start();
    after(() => logins.close());
    const seven = { username: "fan-7", password: "fan-seven-password" };
    assert.equal((await refusal(connect({ ...seven, password: "wrong" }, "fan-7"))).code, 4);
    assert.equal((await refusal(connect(seven, "some-id"))).code, 2, "a fan's client id is its user name");
    assert.equal((await refusal(connect({ username: "fan-8", password: "fan-eight" }, "fan-8"))).code, 4, "retired");
    const fan = await connect(seven, "fan-7");
    await fan.publishAsync("fan/messages/7", '{"deviceID":"7"}', { qos: 1 });
    await fan.publishAsync("fan/messages", '{"deviceID":"7","unbound":true}', { qos: 1 });
    await eventually("fan 7's readings at the operator", () => heard.filter(([, p]) => p.includes('"7"')).length >= 2);
    const closed = new Promise<void>((resolve) => fan.once("close", () => resolve()));
    fan.publish("fan/messages/8", '{"deviceID":"8"}', { qos: 1 });
    await closed;
    await fan.endAsync(true);
    assert.ok(logged.some((l) => l.event === "mqtt_publish_refused" && l.topic === "fan/messages/8"));
    assert.deepEqual(
      heard.filter(([topic]) => topic === "fan/messages/8"),
      [],
    );
    // Retired while connected: its connection publishes nothing more.
    const again = await connect(seven, "fan-7");
    await registry.retire("7", "test");
    const cut = new Promise<void>((resolve) => again.once("close", () => resolve()));
    again.publish("fan/messages/7", '{"deviceID":"7","after":"retired"}', { qos: 1 });
    await cut;
    await again.endAsync(true);
    assert.equal(heard.filter(([, p]) => p.includes('"after":"retired"')).length, 0);
  });
});

/** A Mosquitto `$7$` hash (PBKDF2-SHA512, 101 rounds, 12-byte salt), as mosquitto_passwd makes it. */
function pbkdf2Hash(password: string): string {
  const salt = randomBytes(12);
  return `$7$101$${salt.toString("base64")}$${pbkdf2Sync(password, salt, 101, 64, "sha512").toString("base64")}`;
}

function verifyPbkdf2(password: string, hash: string): boolean {
  const [, , rounds, salt, digest] = hash.split("$");
  const expected = Buffer.from(digest ?? "", "base64");
  const actual = pbkdf2Sync(password, Buffer.from(salt ?? "", "base64"), Number(rounds), 64, "sha512");
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
