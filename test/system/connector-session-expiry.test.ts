import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { startAedes } from "../support/aedes-broker.js";
import { eventually } from "../support/eventually.js";
import { payloads, recordingConsumer } from "../support/mqtt-consumer.js";
import { FAKE_GATEWAY_PASSWORD, FAKE_GATEWAY_USER, FakeGateway } from "../support/fake-gateway.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { freePort, spawnCli, waitForOutput } from "../support/process.js";

// Two connector replicas in one shared subscription group on the shipped Mosquitto (2.0, Debian),
// as the StatefulSet runs them (deploy/k3s/base/connector.yaml); one is killed as a node loss kills
// it, without a DISCONNECT. What Mosquitto does with the dead replica's share, and what the
// connector's session expiry (session_expiry_s, MQTT 5) changes: docs/pipeline.md, "A replica that dies".

/** Messages the gateway stand-in's echo function took (every message of every batch). */
function delivered(gateway: FakeGateway): Set<string> {
  return new Set(gateway.delivered().map((m) => (m as { id: string }).id));
}

describe("a dead connector replica's share of a shared subscription (real Mosquitto)", { timeout: 90_000 }, () => {
  let broker: Broker;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let secrets: string;
  let publisher: MqttClient;
  const children: ChildProcessWithoutNullStreams[] = [];

  async function replica(name: string, sessionExpiryS: number): Promise<ChildProcessWithoutNullStreams> {
    const child = spawnCli(["connector"], {
      gateway_url: gatewayUrl,
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      topic: "fan/messages",
      shared_group: "fanwatch",
      client_id: name,
      session_expiry_s: String(sessionExpiryS),
      batch_wait_ms: "0",
      port: String(await freePort()),
      LOG_LEVEL: "info",
    });
    children.push(child);
    await waitForOutput(child, /connector running/);
    return child;
  }

  async function publish(prefix: string, count: number): Promise<string[]> {
    const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
    for (const id of ids) await publisher.publishAsync("fan/messages", JSON.stringify({ id }), { qos: 1 });
    return ids;
  }

  /** Kills a replica as a lost node does: no DISCONNECT, its socket just ends. */
  async function kill(child: ChildProcessWithoutNullStreams): Promise<void> {
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
  }

  beforeEach(async () => {
    broker = await startMosquitto();
    gateway = new FakeGateway();
    gatewayUrl = await gateway.listen();
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
    publisher = await mqtt.connectAsync(broker.url, { clientId: "session-expiry-publisher" });
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
    await publisher.endAsync();
    await gateway.close();
    await broker.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("queues the dead replica's share for it; back within its session expiry, it gets all of it: nothing lost", async () => {
    const survivor = await replica("replica-0", 300);
    let dead = await replica("replica-1", 300);
    await kill(dead);
    const whileAway = await publish("away", 20);
    await eventually("the survivor's share", () => delivered(gateway).size > 0);
    assert.ok(delivered(gateway).size < whileAway.length, "the survivor did not get the dead replica's share");
    dead = await replica("replica-1", 300); // the pod back, same name: its session resumes
    await eventually("every message, the queued share included", () =>
      whileAway.every((id) => delivered(gateway).has(id)),
    );
    assert.ok(survivor.exitCode === null && dead.exitCode === null);
  });

  it("after the dead replica's session expired, the survivor gets every new message; what was queued for it is dropped", async () => {
    await replica("replica-0", 2);
    const dead = await replica("replica-1", 2);
    await kill(dead);
    const beforeExpiry = await publish("queued", 20);
    await eventually("the survivor's share", () => beforeExpiry.some((id) => delivered(gateway).has(id)));
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // past the 2 s session expiry
    const afterExpiry = await publish("after", 20);
    await eventually("every message published after the expiry, through the survivor", () =>
      afterExpiry.every((id) => delivered(gateway).has(id)),
    );
    // The replica comes back under its name: a new session, with nothing of the old one's queue.
    const back = await replica("replica-1", 2);
    const markers = await publish("marker", 10);
    await eventually("the markers, through both", () => markers.every((id) => delivered(gateway).has(id)));
    const lost = beforeExpiry.filter((id) => !delivered(gateway).has(id));
    assert.ok(lost.length > 0, "the dead replica's share was dropped at expiry");
    assert.ok(lost.length < beforeExpiry.length, "the survivor's share was delivered");
    assert.equal(back.exitCode, null);
  });
});

describe("session expiry with a broker without MQTT 5 (aedes, as fanwatch start embeds)", () => {
  it("falls back to MQTT 3.1.1: the consumer connects, subscribes and receives", async () => {
    const broker = await startAedes();
    const { consumer, received } = recordingConsumer(broker.url, "expiry-on-aedes", ["fan/messages"], {
      sessionExpirySeconds: 300,
    });
    const publisher = await mqtt.connectAsync(broker.url, { clientId: "aedes-publisher" });
    try {
      await consumer.start();
      await publisher.publishAsync("fan/messages", "reading", { qos: 1 });
      await eventually("the reading", () => received.length === 1);
      assert.deepEqual(payloads(received), ["reading"]);
      received[0]?.ack();
    } finally {
      await consumer.close();
      await publisher.endAsync();
      await broker.close();
    }
  });
});
