import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openFanRegistry, type NatsFanRegistry } from "../../lib/registry/nats-registry.js";
import { eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { freePort, postJson, spawnCli, terminate, waitForOutput } from "../support/process.js";

// `fanwatch page` as a process with NATS_URL: it opens the registry in the real nats-server, and a
// fan approved on the page is approved in the bucket everyone else reads.

async function healthz(url: string): Promise<{ registry: string }> {
  return (await (await fetch(`${url}/healthz`)).json()) as { registry: string };
}

describe("fanwatch page with NATS_URL: the Fans panel's API on the NATS registry", { timeout: 90_000 }, () => {
  let nats: TestNats;
  let registry: NatsFanRegistry;

  before(async () => {
    nats = await startNats();
    registry = await openFanRegistry({ url: nats.url });
    await registry.add("1", { name: "supply fan", site: "hall A" }, "test");
    assert.equal(await registry.markPending("9", 10), "pending");
  });

  after(async () => {
    await registry?.close();
    await nats?.stop();
  });

  it("lists the registry's fans and approves a pending one in the name typed (sign-in off, loopback)", async () => {
    const port = await freePort();
    const child = spawnCli(["page", "--port", String(port), "--host", "127.0.0.1", "--sign-in", "off"], {
      NATS_URL: nats.url,
      HEALTH_URL: "http://127.0.0.1:1/function/health",
      MQTT_URL: "mqtt://127.0.0.1:1",
      LOG_LEVEL: "warn",
    });
    try {
      await waitForOutput(child, /page running/);
      const url = `http://127.0.0.1:${port}`;
      await eventuallyValue(
        "the page watching the registry",
        () => healthz(url),
        (h) => h.registry === "watched",
      );
      const session = (await (await fetch(`${url}/ui/api/session`)).json()) as {
        canManageFans: boolean;
        registry: boolean;
        csrf: string;
      };
      assert.equal(session.canManageFans, true);
      assert.equal(session.registry, true);
      const listed = (await (await fetch(`${url}/ui/api/fans`)).json()) as {
        fans: Array<{ id: string; state: string; mqttPasswordHash?: string }>;
      };
      assert.deepEqual(
        listed.fans.map((f) => [f.id, f.state]),
        [
          ["1", "active"],
          ["9", "pending"],
        ],
      );
      const headers = { "x-csrf-token": session.csrf };
      const nameless = await postJson(`${url}/ui/api/fans`, { action: "approve", id: "9" }, headers);
      assert.equal(nameless.status, 400, "sign-in off: the person types their name");
      const answer = await postJson(`${url}/ui/api/fans`, { action: "approve", id: "9", by: "olga" }, headers);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const approved = await eventuallyValue(
        "fan 9 active in the bucket",
        () => registry.get("9"),
        (r) => r?.state === "active",
      );
      assert.equal(approved?.approvedBy, "olga");
    } finally {
      await terminate(child);
    }
  });

  it("serves while NATS is away at start, counting fans as seen, and uses the registry once NATS is back", async () => {
    await nats.halt();
    const port = await freePort();
    const child = spawnCli(["page", "--port", String(port), "--host", "127.0.0.1", "--sign-in", "off"], {
      NATS_URL: nats.url,
      HEALTH_URL: "http://127.0.0.1:1/function/health",
      MQTT_URL: "mqtt://127.0.0.1:1",
      LOG_LEVEL: "warn",
    });
    try {
      await waitForOutput(child, /page running/);
      const url = `http://127.0.0.1:${port}`;
      assert.equal((await healthz(url)).registry, "waiting");
      const early = await fetch(`${url}/ui/api/fans`);
      assert.equal(early.status, 503);
      assert.equal(((await early.json()) as { code: string }).code, "FANWATCH_STORE_UNAVAILABLE");
      await nats.restart();
      await eventuallyValue(
        "the page watching the registry",
        () => healthz(url),
        (h) => h.registry === "watched",
      );
      const listed = (await (await fetch(`${url}/ui/api/fans`)).json()) as { fans: Array<{ id: string }> };
      assert.deepEqual(
        listed.fans.map((f) => f.id),
        ["1", "9"],
      );
    } finally {
      await terminate(child);
    }
  });
});
