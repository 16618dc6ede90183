import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { startMosquitto, type Broker } from "./support/mosquitto.js";
import { Collector } from "./support/mqtt-collector.js";
import { freePort, postJson, spawnCli, waitForOutput } from "./support/process.js";

// A broker that requires passwords, as deploy/mosquitto/mosquitto.conf does in production; the
// functions and the connector read theirs from secret files.
describe("MQTT credentials", { timeout: 60_000 }, () => {
  let broker: Broker;
  let secrets: string;
  const children: ChildProcessWithoutNullStreams[] = [];

  before(async () => {
    broker = await startMosquitto({ users: { predict: "predict-pass", connector: "connector-pass", observer: "observer-pass" } });
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
    await waitForOutput(score, /listening on/);
    const port = await freePort();
    const predict = spawnCli(["function", "predict", "--port", String(port)], { MQTT_URL: broker.url, MQTT_USERNAME: "predict", SECRET_MOUNT_PATH: secrets, SCORE_URL: `http://127.0.0.1:${scorePort}/` });
    children.push(predict);
    await waitForOutput(predict, /listening on/);
    const answer = await postJson(`http://127.0.0.1:${port}/`, { deviceID: "auth", rotation: 600, temperature: 40, vibration: 150, sound: 48 });
    assert.equal(answer.status, 200);
    const [message] = await collector.waitFor("fan/anomaly", 1);
    assert.equal((message as { deviceID: string }).deviceID, "auth");
    await collector.stop();
  });

  it("the connector reports itself unavailable with a wrong password, and works with the right one", async () => {
    const base = { broker: broker.url, MQTT_USERNAME: "connector", functions: "fan/messages=predict", gateway_url: "http://127.0.0.1:9" };
    const wrongPort = await freePort();
    const wrong = spawnCli(["connector"], { ...base, MQTT_PASSWORD: "nope", port: String(wrongPort), client_id: "wrong" });
    children.push(wrong);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const health = await fetch(`http://127.0.0.1:${wrongPort}/healthz`);
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as { broker: string }).broker, "disconnected");
    const right = spawnCli(["connector"], { ...base, MQTT_PASSWORD: "connector-pass", port: String(await freePort()), client_id: "right" });
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
    const connector = spawnCli(["connector"], { broker: broker.url, MQTT_CA_FILE: broker.caFile ?? "", functions: "fan/messages=predict", gateway_url: "http://127.0.0.1:9", port: String(port), client_id: "tls" });
    children.push(connector);
    await waitForOutput(connector, /connector running/);
    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { broker: string };
    assert.equal(health.broker, "connected");
  });

  it("a client without the CA is refused", async () => {
    await assert.rejects(mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 3_000 }), /certificate/i);
  });
});
