import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { createLogger } from "../../lib/infra/log.js";
import { readServiceUsers } from "../../lib/mqtt/broker-auth-files.js";
import { BrokerAuthWatcher } from "../../lib/mqtt/broker-auth-watch.js";
import { mosquittoHash, verifyMosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { eventually } from "../support/eventually.js";
import { startMosquitto } from "../support/mosquitto.js";

describe("Mosquitto's $7$ password hashes, made with node:crypto", () => {
  it("verifies what mosquitto_passwd makes, and refuses a wrong password", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-passwd-"));
    try {
      const file = join(dir, "passwd");
      const result = spawnSync("mosquitto_passwd", ["-c", "-b", file, "u", "the password"]);
      assert.equal(result.status, 0, result.stderr.toString());
      const hash = (await readFile(file, "utf8")).trim().slice("u:".length);
      assert.match(hash, /^\$7\$/);
      assert.equal(verifyMosquittoHash("the password", hash), true);
      assert.equal(verifyMosquittoHash("the passwore", hash), false);
      assert.equal(verifyMosquittoHash("the password", mosquittoHash("the password")), true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// The shipped broker with fan a; broker-auth --watch's code keeps it in step with a registry while
// it runs: no restart (its pid stays), a retired fan is cut off, a new one logs in bound.
describe("broker-auth --watch against the shipped broker", { timeout: 60_000 }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  let ca: Buffer;
  let watcher: BrokerAuthWatcher;
  const registry = new MemoryFanRegistry();
  const users = { connector: "connector-pass", "broker-auth": "control-pass" };
  const clients: MqttClient[] = [];
  const connect = async (url: string, options: IClientOptions) => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ca, ...options });
    clients.push(c);
    return c;
  };
  const asFan = (id: string, password: string, clientId = `fan-${id}`, url = broker.fansUrl ?? "") =>
    connect(url, { username: `fan-${id}`, password, clientId });

  before(async () => {
    broker = await startMosquitto({ shipped: { users, fans: { a: "a-pass" } } });
    ca = await readFile(broker.caFile ?? "");
    await registry.add("a", {}, "test");
    // The same password, hashed again: what the registry holds for fan a.
    await registry.setPasswordHash("a", mosquittoHash("a-pass"));
    watcher = new BrokerAuthWatcher({
      registry,
      // The service users as the CLI reads them: the Secret's files, one per user.
      services: await readServiceUsers(join(broker.authDir ?? "", "users")),
      servicesAcl: await readFile(new URL("../../../deploy/mosquitto/acl", import.meta.url), "utf8"),
      topic: "fan/messages",
      allowUnboundFans: false,
      outDir: broker.authDir ?? "",
      pidFile: broker.pidFile ?? "",
      control: { url: broker.url, username: "broker-auth", password: "control-pass" },
      log: createLogger("broker-auth", "silent"),
    });
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await watcher?.close();
    await broker?.stop();
  });

  it("starts from the registry and keeps the service users: the connector still logs in after a rewrite", async () => {
    await watcher.start();
    await watcher.settled();
    await connect(broker.url, { username: "connector", password: users.connector, clientId: "c-after" });
    await asFan("a", "a-pass");
  });

  it("cuts off a retired fan at once and lets a new one in, without restarting the broker", async () => {
    const pid = broker.pid;
    const fanA = await asFan("a", "a-pass");
    let closed = false;
    fanA.on("close", () => (closed = true));
    await registry.retire("a", "test");
    await eventually(
      "the watcher applied the retirement",
      async () => (await watcher.settled(), watcher.revision >= 2),
    );
    await eventually("fan a disconnected", () => closed, 10_000);
    await assert.rejects(asFan("a", "a-pass"), /Not authorized|Bad username or password/);
    assert.doesNotMatch(await readFile(join(broker.authDir ?? "", "passwd"), "utf8"), /^fan-a:/m);

    await registry.add("c", {}, "test");
    await registry.setPasswordHash("c", mosquittoHash("c-pass"));
    await eventually("the watcher applied fan c", async () => {
      await watcher.settled();
      return (await readFile(join(broker.authDir ?? "", "passwd"), "utf8")).includes("fan-c:");
    });
    const connector = await connect(broker.url, {
      username: "connector",
      password: users.connector,
      clientId: "mqtt-connector-0",
    });
    await connector.subscribeAsync("fan/messages/+", { qos: 1 });
    const received: string[] = [];
    connector.on("message", (topic) => received.push(topic));
    // Bound from its first login: not even on the services' listener may it take the connector's id.
    await assert.rejects(asFan("c", "c-pass", "mqtt-connector-0", broker.url), /Not authorized|not authorised/i);
    const fanC = await asFan("c", "c-pass");
    await fanC.publishAsync("fan/messages/c", "c's first reading", { qos: 1 });
    await eventually("fan c's reading", () => received.includes("fan/messages/c"), 10_000);
    assert.equal(connector.connected, true);
    assert.equal(broker.pid, pid, "the broker was not restarted");
  });

  it("new credentials for a fan close the old password's connection, and only the new one logs in", async () => {
    const old = await asFan("c", "c-pass");
    let closed = false;
    old.on("close", () => (closed = true));
    const before = watcher.revision;
    await registry.setPasswordHash("c", mosquittoHash("c-new-pass"));
    await eventually(
      "the watcher applied the new hash",
      async () => (await watcher.settled(), watcher.revision > before),
    );
    await eventually("the old connection closed", () => closed, 10_000);
    await assert.rejects(asFan("c", "c-pass"), /Not authorized|Bad username or password/);
    await assert.rejects(asFan("c", "c-new-pass", "mqtt-connector-0", broker.url), /Not authorized|not authorised/i);
    await asFan("c", "c-new-pass");
  });
});
