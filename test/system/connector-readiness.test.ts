import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { rm } from "node:fs/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import mqtt from "mqtt";
import { eventuallyValue } from "../support/eventually.js";
import { FAKE_GATEWAY_PASSWORD, FAKE_GATEWAY_USER, FakeGateway } from "../support/fake-gateway.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { freePort, spawnCli } from "../support/process.js";

// The connector's three answers as Kubernetes and an operator read them (deploy/k3s/base/connector.yaml):
// /readyz (readiness) says whether this replica does its part: connected and subscribed, the
// functions known; /healthz says whether messages move; /livez whether the process answers.

interface Answer {
  code: number;
  status: string;
  problems: string[];
  unready: string[];
  discoveryError: string | null;
}

async function get(port: number, path: "/readyz" | "/healthz" | "/livez"): Promise<Answer> {
  const answer = await fetch(`http://127.0.0.1:${port}${path}`);
  return { code: answer.status, ...((await answer.json()) as Omit<Answer, "code">) };
}

/** The answer at `path` once it has `code`. */
function until(port: number, path: "/readyz" | "/healthz", code: number): Promise<Answer> {
  return eventuallyValue(
    `${path} ${code}`,
    () => get(port, path),
    (answer) => answer.code === code,
  );
}

describe("connector readiness against a real Mosquitto", { timeout: 60_000 }, () => {
  let broker: Broker;
  let gateway: FakeGateway;
  let gatewayUrl: string;
  let secrets: string;
  let child: ChildProcessWithoutNullStreams | undefined;

  async function connector(brokerUrl = broker.url, env: Record<string, string> = {}): Promise<number> {
    const port = await freePort();
    child = spawnCli(["connector"], {
      gateway_url: gatewayUrl,
      broker: brokerUrl,
      basic_auth: "true",
      secret_mount_path: secrets,
      refresh_interval_ms: "200",
      retries: "0",
      topic: "fan/messages",
      client_id: "readiness",
      port: String(port),
      LOG_LEVEL: "warn",
      ...env,
    });
    return port;
  }

  beforeEach(async () => {
    broker = await startMosquitto();
    gateway = new FakeGateway();
    gatewayUrl = await gateway.listen();
    secrets = await writeGatewaySecrets("fanwatch-secrets-", FAKE_GATEWAY_USER, FAKE_GATEWAY_PASSWORD);
  });
  afterEach(async () => {
    if (child?.exitCode === null) child.kill("SIGKILL");
    await gateway.close();
    await broker.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("is ready before any function carries its topic (deploy step 6) and while its function fails; /healthz says why messages are held", async () => {
    gateway.functions = []; // the functions are not deployed yet
    const port = await connector();
    const ready = await until(port, "/readyz", 200);
    assert.deepEqual(ready.unready, []);
    const held = await get(port, "/healthz");
    assert.equal(held.code, 503);
    assert.ok(held.problems.includes("no function has the topic annotation for fan/messages"), JSON.stringify(held));

    // The function arrives, then fails: its messages are held at the broker, the replica stays ready.
    gateway.functions = [{ name: "predict", annotations: { topic: "fan/messages" } }];
    gateway.answer = () => ({ status: 503, body: JSON.stringify({ error: "NATS is away" }) });
    const publisher = await mqtt.connectAsync(broker.url, { clientId: "readiness-publisher" });
    await publisher.publishAsync("fan/messages", JSON.stringify({ deviceID: "1" }), { qos: 1 });
    await publisher.endAsync();
    const failing = await eventuallyValue(
      "/healthz naming the failing function",
      () => get(port, "/healthz"),
      (answer) => answer.problems.some((p) => p.startsWith("predict is failing")),
    );
    assert.equal(failing.code, 503, JSON.stringify(failing));
    const stillReady = await get(port, "/readyz");
    assert.equal(stillReady.code, 200, JSON.stringify(stillReady));
    assert.equal((await get(port, "/livez")).code, 200);
  });

  it("is not ready until the gateway has answered once, nor while it cannot reach the broker; alive throughout", async () => {
    gateway.systemDown = true;
    const port = await connector();
    const asking = await until(port, "/readyz", 503);
    assert.ok(
      asking.unready.some((p) => p.startsWith("the functions are not known yet")),
      JSON.stringify(asking.unready),
    );
    gateway.systemDown = false;
    await until(port, "/readyz", 200);
    // The routes once known are kept through a gateway outage: still ready.
    gateway.systemDown = true;
    await eventuallyValue(
      "a refresh that failed",
      () => get(port, "/healthz"),
      (answer) => /502/.test(answer.discoveryError ?? ""),
    );
    assert.equal((await get(port, "/readyz")).code, 200);
    child?.kill("SIGKILL");

    // A broker that refuses its login (a wrong password): running, but not connected.
    const guarded = await startMosquitto({ users: { connector: "right" } });
    gateway.systemDown = false;
    const lonely = await connector(guarded.url, { MQTT_USERNAME: "connector", MQTT_PASSWORD: "wrong" });
    const away = await until(lonely, "/readyz", 503);
    assert.equal((await get(lonely, "/livez")).code, 200, "alive");
    child?.kill("SIGKILL");
    await guarded.stop();
    assert.ok(
      away.unready.some((p) => p.startsWith("not connected to the broker")),
      JSON.stringify(away.unready),
    );
  });
});
