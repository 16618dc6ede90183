import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ModelNotFoundError, ModelPointerMovedError, ModelRefusedError } from "../../lib/errors.js";
import { bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { MODELS_BUCKET } from "../../lib/models/names.js";
import { ModelRegistry, type PointerEntry } from "../../lib/models/registry.js";
import type { ActivePointer, ModelBundle, ReplicaStatus, ShadowComparison } from "../../lib/models/schemas.js";
import { eventually } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { MODEL_DIR } from "../support/paths.js";

const at = () => new Date().toISOString();

function pointerTo(active: string, previous: string | null, reason: ActivePointer["reason"]): ActivePointer {
  return { active, previous, shadow: null, reason, by: "test", at: at(), forced: false, note: null };
}

describe("the model registry against a real nats-server", () => {
  let nats: TestNats;
  const connections: NatsConnection[] = [];
  let registry: ModelRegistry;
  let shipped: ModelBundle;
  let shippedId: string;
  /** The shipped model as trained from it: another version, same weights. */
  let child: ModelBundle;

  async function connection(): Promise<NatsConnection> {
    const nc = await connect({ servers: nats.url });
    connections.push(nc);
    return nc;
  }

  before(async () => {
    nats = await startNats();
    registry = await ModelRegistry.open(await connection());
    shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
    shippedId = bundleId(encodeBundle(shipped));
    child = { ...shipped, parent: shippedId };
  });

  after(async () => {
    for (const nc of connections) await nc.close();
    await nats.stop();
  });

  it("stores a bundle once under its digest, lists it without weights and reads it back verified", async () => {
    assert.deepEqual(await registry.push(shipped, "ana"), { id: shippedId, created: true });
    assert.deepEqual(await registry.push(shipped, "ben"), { id: shippedId, created: false });
    const childId = (await registry.push(child, "ana")).id;
    const listed = await registry.list();
    assert.deepEqual(
      listed.map((v) => [v.id, v.parent, v.by]),
      [
        [shippedId, null, "ana"],
        [childId, shippedId, "ana"],
      ],
    );
    const [first] = listed;
    assert.equal(first?.size, encodeBundle(shipped).length);
    assert.deepEqual(first?.metrics, shipped.metadata.metrics);
    assert.equal(first?.trained, shipped.metadata.createdAt);
    assert.deepEqual(await registry.get(shippedId), shipped);
  });

  it("refuses to store a bundle that fails its golden set, and names it", async () => {
    const bytes = Buffer.from(shipped.weights, "base64");
    const weights = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    weights.fill(0);
    const broken: ModelBundle = {
      ...shipped,
      parent: "fan-broken",
      weights: Buffer.from(weights.buffer).toString("base64"),
    };
    const before = (await registry.list()).length;
    await assert.rejects(registry.push(broken, "ana"), (e: unknown) => {
      assert.ok(e instanceof ModelRefusedError);
      assert.match(e.message, /fails its golden set/);
      return true;
    });
    assert.equal((await registry.list()).length, before);
  });

  it("says an unknown id is not there, and refuses stored bytes that are not the ones their name promises", async () => {
    await assert.rejects(registry.get("fan-0123456789abcdef"), ModelNotFoundError);
    // Someone puts other bytes under a model's name by hand (the registry never does).
    const store = await new Objm(jetstream(await connection())).open(MODELS_BUCKET);
    await store.putBlob({ name: "fan-00000000deadbeef" }, encodeBundle(shipped));
    await assert.rejects(registry.get("fan-00000000deadbeef"), (e: unknown) => {
      assert.ok(e instanceof ModelRefusedError);
      assert.match(e.message, /model fan-00000000deadbeef refused: its stored bytes have the digest/);
      return true;
    });
  });

  it("refuses a version whose stored chunks were changed underneath it", async () => {
    const nc = await connection();
    const store = await new Objm(jetstream(nc)).open(MODELS_BUCKET);
    const bytes = encodeBundle({ ...shipped, parent: "fan-tampered" });
    const id = bundleId(bytes);
    const info = await store.putBlob({ name: id }, bytes);
    // One byte changed in the stream itself, past the name's digest: a disk fault, or a hand.
    const jsm = await jetstreamManager(nc);
    const subject = `$O.${MODELS_BUCKET}.C.${info.nuid}`;
    await jsm.streams.purge(`OBJ_${MODELS_BUCKET}`, { filter: subject });
    const changed = Buffer.from(bytes);
    changed[10] = (changed[10] as number) ^ 1;
    await jetstream(nc).publish(subject, changed);
    await assert.rejects(registry.get(id), (e: unknown) => {
      assert.ok(e instanceof ModelRefusedError, String(e));
      assert.match(
        e.message,
        /refused: its stored chunks are corrupt \(received a corrupt object, digests do not match\)/,
      );
      return true;
    });
  });

  it("never lists or serves a bundle whose upload has not finished", async () => {
    const store = await new Objm(jetstream(await connection())).open(MODELS_BUCKET);
    const bytes = encodeBundle({ ...shipped, parent: "fan-slow-upload" });
    const id = bundleId(bytes);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let sent = 0;
    // An upload in 1 KiB chunks that stops half way until released: a pusher that is slow, or dies there.
    const upload = store.put(
      { name: id, options: { max_chunk_size: 1024 } },
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === Math.floor(bytes.length / 2048) * 1024) await released;
          if (sent >= bytes.length) return controller.close();
          controller.enqueue(bytes.subarray(sent, sent + 1024));
          sent += 1024;
        },
      }),
    );
    await eventually("some chunks on their way", () => sent > 1024 * 4);
    assert.ok(!(await registry.list()).some((v) => v.id === id), "listed half-written");
    await assert.rejects(registry.get(id), ModelNotFoundError);
    release();
    await upload;
    assert.ok((await registry.list()).some((v) => v.id === id));
    assert.equal((await registry.get(id)).parent, "fan-slow-upload");
  });

  it("moves a site's pointer by compare-and-set, refusing a write over one that moved, and keeps its history", async () => {
    const childId = bundleId(encodeBundle(child));
    assert.equal(await registry.pointer("plant-a"), undefined);
    const r1 = await registry.setPointer("plant-a", pointerTo(shippedId, null, "first"), 0);
    const r2 = await registry.setPointer("plant-a", pointerTo(childId, shippedId, "promote"), r1);
    await assert.rejects(
      registry.setPointer("plant-a", pointerTo(shippedId, childId, "rollback"), r1),
      (e: unknown) => {
        assert.ok(e instanceof ModelPointerMovedError);
        assert.equal(e.code, "FANWATCH_MODEL_POINTER_MOVED");
        assert.match(e.message, /site plant-a changed since it was read/);
        return true;
      },
    );
    await assert.rejects(
      registry.setPointer("plant-a", pointerTo(shippedId, null, "first"), 0),
      ModelPointerMovedError,
    );
    const now = await registry.pointer("plant-a");
    assert.equal(now?.revision, r2);
    assert.equal(now?.pointer.active, childId);
    const history = await registry.history("plant-a");
    assert.deepEqual(
      history.map((h) => [h.pointer.reason, h.pointer.active, h.revision]),
      [
        ["first", shippedId, r1],
        ["promote", childId, r2],
      ],
    );
    // Another site is another pointer.
    assert.equal(await registry.pointer("plant-b"), undefined);
  });

  it("bootstraps one version and one pointer when two replicas start together", async () => {
    const replicas = await Promise.all([connection(), connection()]).then((ncs) =>
      Promise.all(ncs.map((nc) => ModelRegistry.open(nc))),
    );
    const fresh: ModelBundle = { ...shipped, parent: "fan-bootstrap" };
    const before = (await registry.list()).length;
    const [a, b] = await Promise.all(replicas.map((r, i) => r.bootstrap("fresh-site", fresh, `replica-${i}`)));
    assert.deepEqual(a, b);
    assert.equal(a?.pointer.active, bundleId(encodeBundle(fresh)));
    assert.equal(a?.pointer.reason, "first");
    assert.equal((await registry.list()).length, before + 1);
    assert.equal((await registry.history("fresh-site")).length, 1);
    // Later starts find it and change nothing.
    assert.deepEqual(await registry.bootstrap("fresh-site", shipped, "replica-3"), a);
  });

  it("watches a site's pointer: the current value first, then each change", async () => {
    const start = await registry.setPointer("watched", pointerTo(shippedId, null, "first"), 0);
    const watch = await registry.watchPointer("watched");
    const seen: PointerEntry[] = [];
    const done = (async () => {
      for await (const entry of watch) seen.push(entry);
    })();
    await eventually("the current pointer", () => seen.length === 1);
    const next = await registry.setPointer(
      "watched",
      { ...pointerTo(shippedId, null, "shadow"), shadow: "fan-x" },
      start,
    );
    await eventually("the changed pointer", () => seen.length === 2);
    watch.stop();
    await done;
    assert.deepEqual(
      seen.map((s) => [s.revision, s.pointer.reason, s.pointer.shadow]),
      [
        [start, "first", null],
        [next, "shadow", "fan-x"],
      ],
    );
  });

  it("keeps each replica's status and each shadow comparison, per site", async () => {
    const status = (replica: string): ReplicaStatus => ({
      replica,
      site: "plant-a",
      active: shippedId,
      shadow: null,
      revision: 3,
      refused: [{ id: "fan-bad", error: "model fan-bad refused: it fails its golden set", at: at() }],
      at: at(),
    });
    await registry.putReplicaStatus(status("score-1"));
    await registry.putReplicaStatus(status("score.2"));
    await registry.putReplicaStatus({ ...status("score-9"), site: "plant-b" });
    assert.deepEqual(
      (await registry.replicaStatuses("plant-a")).map((s) => s.replica),
      ["score-1", "score.2"],
    );
    const comparison: ShadowComparison = {
      site: "plant-a",
      replica: "predict-1",
      active: shippedId,
      shadow: "fan-candidate",
      since: at(),
      at: at(),
      readings: 100,
      agreed: 97,
      alarms: { active: 2, shadow: 1 },
      fans: { opened: [], closed: ["7"] },
      cost: { cpuRatio: 1.2, latencyRatio: 1.1 },
    };
    await registry.putComparison(comparison);
    await registry.putComparison({ ...comparison, shadow: "fan-other" });
    assert.deepEqual(await registry.comparisons("plant-a", "fan-candidate"), [comparison]);
  });
});
