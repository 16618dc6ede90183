import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { ModelFollower } from "../../functions/score/model-follower.js";
import { ModelHolder } from "../../functions/score/model-holder.js";
import { registry as scoreMetrics } from "../../functions/score/metrics.js";
import { scoreBatch } from "../../functions/score/scoring.js";
import { freePort } from "../../lib/infra/net.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { bundleArtifacts, bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { MODELS_BUCKET } from "../../lib/models/names.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import type { ActivePointer, ModelBundle, ReplicaStatus } from "../../lib/models/schemas.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson, spawnCli, waitUntilReady } from "../support/process.js";

const SHIPPED_DIR = "model/artifact";
const READINGS = [
  [620, 40, 150, 48],
  [420, 53, 240, 58],
];
const silent = pino({ level: "silent" });

/** One score replica as the handler assembles it: the models it serves and what makes it follow the site. */
interface Replica {
  name: string;
  holder: ModelHolder;
  follower: ModelFollower;
}

describe("score follows its site's active model (a real nats-server)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let registry: ModelRegistry;
  let dir: string;
  let shipped: ModelBundle;
  let shippedId: string;
  /** The shipped model with a far lower threshold (0.05): a real other version, answering healthy readings "fault". */
  let eager: ModelBundle;
  let eagerId: string;
  const replicas: Replica[] = [];

  async function startReplica(site: string, name: string, url = nats.url): Promise<Replica> {
    const model = await ScoringModel.fromArtifacts(bundleArtifacts(shipped, shippedId), SHIPPED_DIR);
    const holder = new ModelHolder(model);
    const follower = new ModelFollower({ url, site, replica: name, shipped, holder, log: silent, statusEveryMs: 200 });
    await follower.start();
    const replica = { name, holder, follower };
    replicas.push(replica);
    return replica;
  }

  async function movePointer(site: string, change: Partial<ActivePointer>): Promise<void> {
    const current = await registry.pointer(site);
    assert.ok(current !== undefined, `site ${site} has a pointer`);
    await registry.setPointer(
      site,
      { ...current.pointer, reason: "promote", by: "test", at: new Date().toISOString(), ...change },
      current.revision,
    );
  }

  function serving(replica: Replica): { active: string; shadow: string | null } {
    return { active: replica.holder.active.metadata.id, shadow: replica.holder.shadow?.metadata.id ?? null };
  }

  async function statusOf(site: string, name: string): Promise<ReplicaStatus | undefined> {
    return (await registry.replicaStatuses(site)).find((s) => s.replica === name);
  }

  /** Stores bytes under a name as they are, as a broken upload or a bad actor could: push() would refuse them. */
  async function putRaw(id: string, bytes: Uint8Array): Promise<void> {
    const store = await new Objm(jetstream(nc)).open(MODELS_BUCKET);
    await store.putBlob({ name: id }, bytes);
  }

  async function refusals(reason: string): Promise<number> {
    const text = await scoreMetrics.metrics();
    return Number(new RegExp(`^score_model_refusals_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  }

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    registry = await ModelRegistry.open(nc);
    dir = await mkdtemp(join(tmpdir(), "fanwatch-swap-"));
    shipped = await bundleFromDirectory(SHIPPED_DIR, { parent: null });
    shippedId = bundleId(encodeBundle(shipped));
    const eagerDir = join(dir, "eager");
    await cp(SHIPPED_DIR, eagerDir, { recursive: true });
    const metadata = JSON.parse(await readFile(join(eagerDir, "metadata.json"), "utf8")) as Record<string, unknown>;
    await writeFile(join(eagerDir, "metadata.json"), JSON.stringify({ ...metadata, threshold: 0.05 }));
    // Its own golden set, made from its own answers: the shipped one's says "healthy" where it says "fault".
    await rm(join(eagerDir, "golden.json"), { force: true });
    eager = await bundleFromDirectory(eagerDir, { parent: shippedId });
    eagerId = bundleId(encodeBundle(eager));
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.follower.close()));
    for (const r of replicas) r.holder.close();
    await nc?.close();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("two replicas starting together on a fresh site store one version and make one pointer", async () => {
    const [a, b] = await Promise.all([startReplica("twin", "a"), startReplica("twin", "b")]);
    await Promise.all([a.follower.synced, b.follower.synced]);
    assert.deepEqual(
      (await registry.list()).map((v) => v.id),
      [shippedId],
    );
    const history = await registry.history("twin");
    assert.deepEqual(
      history.map((h) => [h.pointer.active, h.pointer.reason]),
      [[shippedId, "first"]],
    );
    assert.deepEqual(serving(a), { active: shippedId, shadow: null });
    assert.deepEqual(serving(b), { active: shippedId, shadow: null });
  });

  it("moves every replica to a promoted model, and back on a rollback", async () => {
    const [a, b] = await Promise.all([startReplica("plant", "a"), startReplica("plant", "b")]);
    await Promise.all([a.follower.synced, b.follower.synced]);
    assert.equal((await registry.push(eager, "test")).id, eagerId);
    await movePointer("plant", { active: eagerId, previous: shippedId });
    await eventually("both replicas serve the promoted model", () =>
      [a, b].every((r) => serving(r).active === eagerId),
    );
    const answer = a.holder.use((lease) => scoreBatch(lease, READINGS, silent));
    assert.equal(answer.model, eagerId, "answers name the version");
    assert.deepEqual(
      answer.predictions.map((p) => p.fault),
      [1, 1],
      "the promoted model's answers",
    );
    await eventuallyValue(
      "both replicas' statuses name the promoted model",
      async () => [await statusOf("plant", "a"), await statusOf("plant", "b")].map((s) => s?.active),
      (ids) => ids.every((id) => id === eagerId),
    );
    await movePointer("plant", { active: shippedId, previous: null, reason: "rollback" });
    await eventually("both replicas serve the model rolled back to", () =>
      [a, b].every((r) => serving(r).active === shippedId),
    );
  });

  it("lets calls in flight finish on the model they took, with no failed call over repeated swaps", async () => {
    const r = await startReplica("busy", "a");
    await r.follower.synced;
    await registry.push(eager, "test");
    const inFlight = r.holder.acquire();
    await movePointer("busy", { active: eagerId, previous: shippedId });
    await eventually("the replica serves the promoted model", () => serving(r).active === eagerId);
    assert.equal(inFlight.active.metadata.id, shippedId);
    assert.equal(inFlight.active.predict(READINGS).length, 2, "the call that started before the swap still scores");
    inFlight.release();

    // Batches back to back while the pointer moves four times: each is answered, by one model.
    let stop = false;
    let answered = 0;
    const failures: unknown[] = [];
    const seen = new Set<string>();
    const load = (async () => {
      while (!stop) {
        try {
          const answer = r.holder.use((lease) => scoreBatch(lease, READINGS, silent));
          seen.add(answer.model);
          answered++;
        } catch (error) {
          failures.push(error);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (const [active, previous] of [
      [shippedId, eagerId],
      [eagerId, shippedId],
      [shippedId, eagerId],
      [eagerId, shippedId],
    ] as const) {
      await movePointer("busy", { active, previous });
      await eventually(`the replica serves ${active}`, () => serving(r).active === active);
    }
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok(answered > 0);
    assert.deepEqual([...seen].sort(), [shippedId, eagerId].sort());
  });

  it("scores a shadow next to the active model, and stops when the shadow is turned off", async () => {
    const r = await startReplica("shadowed", "a");
    await r.follower.synced;
    await registry.push(eager, "test");
    await movePointer("shadowed", { shadow: eagerId, reason: "shadow" });
    await eventually("the replica scores the shadow", () => serving(r).shadow === eagerId);
    const answer = r.holder.use((lease) => scoreBatch(lease, READINGS, silent));
    assert.equal(answer.model, shippedId);
    assert.equal(answer.shadow?.model, eagerId);
    assert.deepEqual(
      answer.predictions.map((p) => p.fault),
      [0, 1],
    );
    assert.deepEqual(
      answer.shadow?.predictions.map((p) => p.fault),
      [1, 1],
    );
    assert.ok(answer.timing !== undefined && answer.timing.activeMs >= 0 && answer.timing.shadowMs >= 0);
    await movePointer("shadowed", { shadow: null, reason: "shadow-off" });
    await eventually("the replica has no shadow", () => serving(r).shadow === null);
    assert.equal(r.holder.use((lease) => scoreBatch(lease, READINGS, silent)).shadow, undefined);
  });

  /** Broken versions, each stored as it is (push() refuses them): what a replica must never serve. */
  const broken: Array<[string, string, RegExp, () => Promise<string>]> = [
    [
      "bytes that do not match their id",
      "bundle",
      /its stored bytes have the digest fan-[0-9a-f]{16}, not its id/,
      async () => {
        const id = "fan-0123456789abcdef";
        await putRaw(id, encodeBundle(eager));
        return id;
      },
    ],
    [
      "corrupt weights",
      "load",
      /model fan-[0-9a-f]{16} cannot be loaded: /,
      async () => {
        const weights = Buffer.from(eager.weights, "base64");
        return putBundle({ ...eager, weights: weights.subarray(0, weights.length - 100).toString("base64") });
      },
    ],
    ["a model for five inputs", "load", /takes 5 inputs/, async () => putBundle(withFiveInputs(eager))],
    [
      "a model that fails its golden set",
      "golden",
      /fails its golden set: \d+ readings, [1-9]\d* mismatches/,
      // The eager model with the shipped model's golden set: it calls the healthy golden readings faults.
      async () => putBundle({ ...eager, golden: shipped.golden }),
    ],
    [
      "a version the registry does not have",
      "missing",
      /has no model fan-fedcba9876543210/,
      async () => "fan-fedcba9876543210",
    ],
  ];

  async function putBundle(bundle: ModelBundle): Promise<string> {
    const bytes = encodeBundle(bundle);
    const id = bundleId(bytes);
    await putRaw(id, bytes);
    return id;
  }

  for (const [what, reason, message, make] of broken) {
    it(`refuses ${what} as active model or as shadow, and keeps serving (reason ${reason})`, async () => {
      const site = `broken-${reason}-${broken.findIndex(([w]) => w === what)}`;
      const r = await startReplica(site, "a");
      await r.follower.synced;
      const before = await refusals(reason);
      const id = await make();
      await movePointer(site, { active: id, previous: shippedId });
      const refused = await eventuallyValue(
        "the replica's status lists the refusal",
        () => statusOf(site, "a"),
        (s) => s?.refused.some((x) => x.id === id) === true,
      );
      assert.match(refused?.refused.find((x) => x.id === id)?.error ?? "", message, "the refusal says why");
      assert.equal(refused?.active, shippedId, "the status says what is served instead");
      assert.deepEqual(serving(r), { active: shippedId, shadow: null });
      assert.equal(r.holder.use((lease) => scoreBatch(lease, READINGS, silent)).predictions.length, 2);
      assert.equal(await refusals(reason), before + 1, "counted once");
      await movePointer(site, { active: shippedId, previous: null, shadow: id, reason: "shadow" });
      await eventuallyValue(
        "the replica acted on the shadow pointer",
        () => statusOf(site, "a"),
        (s) => s?.shadow === null && s.revision >= 3,
      );
      assert.deepEqual(serving(r), { active: shippedId, shadow: null });
      assert.equal(await refusals(reason), before + 1, "a version refused once is not tried again");
    });
  }

  it("keeps serving through a NATS restart, and follows a promote made after it", async () => {
    const r = await startReplica("restarted", "a");
    await r.follower.synced;
    await registry.push(eager, "test");
    await nats.halt();
    assert.equal(r.holder.use((lease) => scoreBatch(lease, READINGS, silent)).model, shippedId);
    await nats.restart();
    await eventually(
      "the test's own connection is back",
      async () => (await registry.pointer("restarted")) !== undefined,
    );
    await movePointer("restarted", { active: eagerId, previous: shippedId });
    await eventually("the replica serves the promoted model", () => serving(r).active === eagerId);
  });

  it("serves the shipped model while NATS is away, and follows the site once it is back", async () => {
    await nats.halt();
    const r = await startReplica("late", "a");
    assert.deepEqual(serving(r), { active: shippedId, shadow: null });
    assert.equal(r.holder.use((lease) => scoreBatch(lease, READINGS, silent)).model, shippedId);
    await nats.restart();
    await r.follower.synced;
    // The test's own connection reconnects on its own schedule: its reads are retried until it has.
    const status = await eventuallyValue(
      "its status is written",
      () => statusOf("late", "a"),
      (s) => s !== undefined,
    );
    assert.equal(status?.active, shippedId);
    assert.equal((await registry.pointer("late"))?.pointer.active, shippedId, "it made the site's first pointer");
  });

  // Last: it deletes the shipped version from the store.
  it("rolls back to the model it kept loaded, without reading the registry", async () => {
    const r = await startReplica("standby", "a");
    await r.follower.synced;
    await registry.push(eager, "test");
    await movePointer("standby", { active: eagerId, previous: shippedId });
    await eventually("the replica serves the promoted model", () => serving(r).active === eagerId);
    const store = await new Objm(jetstream(nc)).open(MODELS_BUCKET);
    await store.delete(shippedId);
    await movePointer("standby", { active: shippedId, previous: null, reason: "rollback" });
    await eventually("the replica serves the model rolled back to", () => serving(r).active === shippedId);
    assert.deepEqual((await statusOf("standby", "a"))?.refused, [], "nothing had to be read");
  });
});

describe("the score function with NATS_URL (a real nats-server, two function processes)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let registry: ModelRegistry;
  const children: ChildProcessWithoutNullStreams[] = [];
  const urls: string[] = [];

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    registry = await ModelRegistry.open(nc);
    for (const name of ["one", "two"]) {
      const port = await freePort();
      const child = spawnCli(["function", "score", "--port", String(port), "--host", "127.0.0.1"], {
        NATS_URL: nats.url,
        SITE: "mill",
        SCORE_REPLICA: name,
      });
      children.push(child);
      urls.push(`http://127.0.0.1:${port}/`);
    }
    await Promise.all(urls.map((url, i) => waitUntilReady(url, children[i] as ChildProcessWithoutNullStreams)));
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await nc?.close();
    await nats?.stop();
  });

  it("serves the site's model under its registry id, says so on GET, and answers a batch with the shadow's predictions", async () => {
    const pointer = await eventuallyValue(
      "the site has its first model",
      () => registry.pointer("mill"),
      (p) => p !== undefined,
    );
    const active = pointer?.pointer.active as string;
    assert.match(active, /^fan-[0-9a-f]{16}$/);
    assert.equal((await registry.list()).length, 1, "one version for two replicas");
    for (const url of urls) {
      const meta = (await (await fetch(url)).json()) as {
        id: string;
        shadow: unknown;
        registry: { site: string; replica: string; revision: number; refused: unknown[] };
      };
      assert.equal(meta.id, active);
      assert.equal(meta.shadow, null);
      assert.equal(meta.registry.site, "mill");
      assert.deepEqual(meta.registry.refused, []);
    }
    // The shipped model as its own shadow would be the same id: a shadow needs another version.
    const bundle = await registry.get(active);
    const other = {
      ...bundle,
      parent: active,
      metadata: { ...bundle.metadata, createdAt: "2026-12-08T00:00:00.000Z" },
    };
    const { id: shadow } = await registry.push(other, "test");
    const current = await registry.pointer("mill");
    await registry.setPointer(
      "mill",
      { ...(current?.pointer as ActivePointer), shadow, reason: "shadow", by: "test", at: new Date().toISOString() },
      current?.revision as number,
    );
    for (const url of urls) {
      const answer = await eventuallyValue(
        `${url} answers with the shadow`,
        async () =>
          (await postJson(url, { instances: READINGS })).body as {
            model: string;
            shadow?: { model: string; predictions: unknown[] };
            timing?: { activeMs: number; shadowMs: number };
          },
        (a) => a.shadow !== undefined,
      );
      assert.equal(answer.model, active);
      assert.equal(answer.shadow?.model, shadow);
      assert.equal(answer.shadow?.predictions.length, 2);
      assert.ok(answer.timing !== undefined);
      const explained = (await postJson(url, { instances: READINGS, explain: true })).body as Record<string, unknown>;
      assert.equal(explained.shadow, undefined, "explanations are the active model's only");
      const metrics = await (await fetch(`${url}_/metrics`)).text();
      assert.match(metrics, new RegExp(`^score_model_info\\{role="shadow",model="${shadow}"\\} 1$`, "m"));
      assert.match(metrics, new RegExp(`^score_model_info\\{role="active",model="${active}"\\} 1$`, "m"));
    }
    const statuses = await registry.replicaStatuses("mill");
    assert.deepEqual(statuses.map((s) => [s.replica, s.active, s.shadow]).sort(), [
      ["one", active, shadow],
      ["two", active, shadow],
    ]);
  });
});

/** The same weights for a model taking five inputs: the first kernel gains a row of zeros. */
function withFiveInputs(bundle: ModelBundle): ModelBundle {
  const json = JSON.parse(JSON.stringify(bundle.modelJson)) as {
    modelTopology: { config: { layers: Array<{ config: { batch_input_shape?: Array<number | null> } }> } };
    weightsManifest: Array<{ weights: Array<{ shape: number[] }> }>;
  };
  const first = json.modelTopology.config.layers[0]?.config;
  const kernel = json.weightsManifest[0]?.weights[0];
  assert.ok(first?.batch_input_shape !== undefined && kernel !== undefined);
  const [inputs = 0, units = 0] = kernel.shape;
  first.batch_input_shape = [null, inputs + 1];
  kernel.shape = [inputs + 1, units];
  const weights = Buffer.from(bundle.weights, "base64");
  const at = inputs * units * 4;
  const grown = Buffer.concat([weights.subarray(0, at), Buffer.alloc(units * 4), weights.subarray(at)]);
  return { ...bundle, modelJson: json, weights: grown.toString("base64") };
}
