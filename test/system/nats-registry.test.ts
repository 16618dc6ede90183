import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import { NatsFanRegistry, openFanRegistry, REGISTRY_BUCKET } from "../../lib/registry/nats-registry.js";
import { eventually } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";

/** Everything a watch reported, in order; `undefined` is a deletion. */
function recorder(): {
  seen: Array<[string, FanRecord | undefined]>;
  on: (id: string, r: FanRecord | undefined) => void;
} {
  const seen: Array<[string, FanRecord | undefined]> = [];
  return { seen, on: (id, r) => void seen.push([id, r]) };
}

describe("NatsFanRegistry against a real nats-server", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let kv: KV;
  const opened: NatsFanRegistry[] = [];
  let bucket = 0;

  /** A registry on a bucket of the test's own, so that the tests do not see each other's fans. */
  async function open(name: string): Promise<NatsFanRegistry> {
    const registry = await openFanRegistry({ url: nats.url, bucket: name });
    opened.push(registry);
    return registry;
  }

  const freshBucket = () => `reg_${++bucket}`;

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });

  after(async () => {
    for (const r of opened) await r.close();
    await nc.close();
    await nats.stop();
  });

  it("creates the bucket fan_registry by default, holding fans under their ids", async () => {
    const registry = await openFanRegistry({ url: nats.url });
    opened.push(registry);
    await registry.add("fan-1", { name: "Hall A" }, "alice");
    kv = await new Kvm(jetstream(nc)).open(REGISTRY_BUCKET);
    const entry = await kv.get("fan-1");
    assert.equal((entry?.json() as FanRecord).name, "Hall A");
    assert.equal((entry?.json() as FanRecord).approvedBy, "alice");
    // An id with "." (allowed in the registry, not as it is in a key) is escaped.
    await registry.add("plant.b7", {}, "alice");
    assert.equal((await kv.get("plant=2Eb7"))?.operation, "PUT");
    assert.equal((await registry.get("plant.b7"))?.state, "active");
  });

  it("two registries racing on one fan lose neither change: approve against markPending, retire against a password", async () => {
    const name = freshBucket();
    const connector = await open(name);
    const person = await open(name);
    for (let i = 0; i < 20; i++) {
      const id = `race-${i}`;
      const [outcome, record] = await Promise.all([
        connector.markPending(id, 1000),
        person.add(id, { name: `Fan ${i}` }, "alice"),
      ]);
      assert.ok(outcome === "pending" || outcome === "already-known", outcome);
      assert.equal(record.state, "active");
      const stored = await connector.get(id);
      assert.equal(stored?.state, "active", `${id} is active whichever write came first`);
      assert.equal(stored?.name, `Fan ${i}`);
      assert.equal(stored?.approvedBy, "alice");

      await Promise.all([connector.retire(id, "bob"), person.setPasswordHash(id, `$7$hash-${i}`)]);
      const both = await person.get(id);
      assert.equal(both?.state, "retired", `${id}: the retire was kept`);
      assert.equal(both?.retiredBy, "bob");
      assert.equal(both?.mqttPasswordHash, `$7$hash-${i}`, `${id}: the password was kept`);
    }
  });

  it("approve refuses a fan that is not pending, and a person's approve of a pending fan sticks", async () => {
    const name = freshBucket();
    const registry = await open(name);
    await assert.rejects(registry.approve("nobody", "alice"), { code: "FANWATCH_DEVICE_UNKNOWN" });
    assert.equal(await registry.markPending("p-1", 10), "pending");
    assert.equal(await registry.markPending("p-1", 10), "already-known");
    const record = await registry.approve("p-1", "alice");
    assert.equal(record.approvedBy, "alice");
    await assert.rejects(registry.approve("p-1", "alice"), /is active, not pending/);
    await assert.rejects(registry.add("a/b", {}, "alice"), { code: "FANWATCH_DEVICE_ID_INVALID" });
    await assert.rejects(registry.markPending("a+b", 10), { code: "FANWATCH_DEVICE_ID_INVALID" });
  });

  it("watch delivers every record there is, then each change, and a deleted key as undefined", async () => {
    const name = freshBucket();
    const writer = await open(name);
    await writer.add("w-1", { site: "a" }, "alice");
    await writer.markPending("w-2", 10);
    const reader = await open(name);
    const { seen, on } = recorder();
    const watch = await reader.watch(on);
    assert.deepEqual(
      seen.map(([id, r]) => [id, r?.state]),
      [
        ["w-1", "active"],
        ["w-2", "pending"],
      ],
    );
    await writer.approve("w-2", "bob");
    await eventually("the approve reaches the other registry's watch", () =>
      seen.some(([id, r]) => id === "w-2" && r?.state === "active"),
    );
    const rawKv = await new Kvm(jetstream(nc)).open(name);
    await rawKv.delete("w-1");
    await eventually("the deletion reaches the watch", () => seen.some(([id, r]) => id === "w-1" && r === undefined));
    await watch.stop();
    await writer.add("w-3", {}, "alice");
    await eventually("the writer's own add is in the reader's list", async () =>
      (await reader.list()).some((r) => r.id === "w-3"),
    );
    assert.equal(
      seen.some(([id]) => id === "w-3"),
      false,
      "a stopped watch hears nothing",
    );
  });

  it("a deleted key is no fan: get and list leave it out, and it can be marked pending and added again", async () => {
    const name = freshBucket();
    const registry = await open(name);
    await registry.add("d-1", { name: "gone soon" }, "alice");
    const rawKv = await new Kvm(jetstream(nc)).open(name);
    await rawKv.delete("d-1");
    assert.equal(await registry.get("d-1"), undefined);
    await eventually("the deletion reaches the list", async () => (await registry.list()).length === 0);
    await assert.rejects(registry.approve("d-1", "alice"), { code: "FANWATCH_DEVICE_UNKNOWN" });
    assert.equal(await registry.markPending("d-1", 10), "pending");
    const back = await registry.add("d-1", {}, "bob");
    assert.deepEqual([back.state, back.name, back.approvedBy], ["active", "", "bob"]);
  });

  it("keeps pending fans at the bound under a burst of new ids, asking NATS nothing once full", async () => {
    const name = freshBucket();
    const registry = await open(name);
    await registry.add("known", {}, "alice");
    const ids = Array.from({ length: 2_000 }, (_, i) => `forged-${i}`);
    const outcomes = await Promise.all(ids.map((id) => registry.markPending(id, 50)));
    assert.equal(outcomes.filter((o) => o === "pending").length, 50);
    assert.equal(outcomes.filter((o) => o === "full").length, 1_950);
    assert.equal(await registry.markPending("known", 50), "already-known");
    const rawKv = await new Kvm(jetstream(nc)).open(name);
    const keys: string[] = [];
    for await (const key of await rawKv.keys()) keys.push(key);
    assert.equal(keys.length, 51, "the bucket holds the known fan and 50 pending ones");
    // Once full, no write is attempted: the bucket's stream does not grow.
    const before = (await rawKv.status()).values;
    for (let i = 0; i < 10_000; i++) assert.equal(await registry.markPending(`more-${i}`, 50), "full");
    assert.equal((await rawKv.status()).values, before);
    // A decision frees a place.
    const first = (await registry.list("pending"))[0] as FanRecord;
    await registry.retire(first.id, "alice");
    assert.equal(await registry.markPending("after-retire", 50), "pending");
    assert.deepEqual(registry.counts(), { pending: 50, active: 1, retired: 1 });
  });

  it("keeps its records across a server restart: reopened, and the open registry writes again once NATS is back", async () => {
    const name = freshBucket();
    const registry = await open(name);
    await registry.add("r-1", { name: "survivor" }, "alice");
    await registry.markPending("r-2", 10);
    const { seen, on } = recorder();
    await registry.watch(on);
    await nats.restart();
    const reopened = await open(name);
    assert.deepEqual(
      (await reopened.list()).map((r) => [r.id, r.state, r.name]),
      [
        ["r-1", "active", "survivor"],
        ["r-2", "pending", ""],
      ],
    );
    await eventually(
      "the first registry writes again after the restart",
      async () => {
        // A try may fail while NATS is away, or have been written with its answer lost: the record tells.
        await registry.approve("r-2", "bob").catch(() => undefined);
        return (await registry.get("r-2"))?.approvedBy === "bob";
      },
      { timeoutMs: 30_000, paceMs: 200 },
    );
    await reopened.add("r-3", {}, "carol");
    await eventually("the first registry's watch follows the bucket after the restart", () =>
      seen.some(([id]) => id === "r-3"),
    );
    // The reopened registry's own connection is new after the restart: nc, made before it, reconnects too.
    await eventually("the test's own connection is back", async () => {
      kv = await new Kvm(jetstream(nc)).open(name);
      return (await kv.get("r-2"))?.json<FanRecord>().state === "active";
    });
  });
});
