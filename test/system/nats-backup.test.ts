import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { MessageLine, StreamFile } from "../../lib/nats/backup-format.js";
import { ensureHealthEventsStream, healthEventSubject } from "../../lib/nats/health-events.js";
import { startNats, type TestNats } from "../support/nats.js";
import { runCli } from "../support/process.js";

/** A message as a reader compares it: subject, headers (less the server's orders), data. */
interface Seen {
  subject: string;
  headers: string[];
  data: string;
}

const EVENTS = 2_000;

/** Every message of a stream, oldest first, through an ordered consumer. */
async function readAll(nc: NatsConnection, stream: string): Promise<Seen[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const seen: Seen[] = [];
  const feed = await consumer.consume();
  for await (const m of feed) {
    const h = [...(m.headers ?? [])].flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}`));
    seen.push({ subject: m.subject, headers: h.filter((l) => !/^Nats-Expected-/i.test(l)), data: m.string() });
    if (m.info.pending === 0) break;
  }
  await feed.close();
  return seen;
}

async function fill(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await ensureHealthEventsStream(jsm, { maxAgeMs: 400 * 86_400_000, replicas: 1 });
  const acks = [];
  for (let i = 0; i < EVENTS; i++) {
    const transition = { id: `t-${i}`, deviceID: `fan-${i % 50}`, at: new Date(Date.UTC(2026, 0, 1) + i * 60_000) };
    acks.push(
      js.publish(healthEventSubject("plant-a", `fan-${i % 50}`), JSON.stringify(transition), { msgID: `t-${i}` }),
    );
  }
  await Promise.all(acks);
  // A stream with a header of our own, a binary payload and an empty one.
  await jsm.streams.add({ name: "FAN_NOTIFICATIONS", subjects: ["fanwatch.notify.>"] });
  const h = headers();
  h.append("Fanwatch-Target", "alertmanager");
  h.append("Fanwatch-Target", "webhook-1");
  await js.publish("fanwatch.notify.plant-a.sent.fan-1.alertmanager", new Uint8Array([0, 1, 2, 255]), { headers: h });
  await js.publish("fanwatch.notify.plant-a.targets", new Uint8Array());
  // A KV bucket written as health writes it: creates, compare-and-set updates, a delete.
  const kv = await new Kvm(js).create("fan_health", { history: 1 });
  for (let i = 0; i < 100; i++) await kv.create(`fan-${i}`, JSON.stringify({ level: "ok", i }));
  for (let i = 0; i < 100; i += 3) {
    const entry = await kv.get(`fan-${i}`);
    await kv.update(`fan-${i}`, JSON.stringify({ level: "warning", i }), entry?.revision ?? 0);
  }
  await kv.delete("fan-7");
}

async function kvValues(nc: NatsConnection): Promise<Map<string, string>> {
  const kv = await new Kvm(jetstream(nc)).open("fan_health");
  const values = new Map<string, string>();
  for await (const key of await kv.keys()) {
    const entry = await kv.get(key);
    if (entry !== null && entry.operation === "PUT") values.set(key, entry.string());
  }
  return values;
}

async function streamNames(jsm: JetStreamManager): Promise<string[]> {
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names.sort();
}

describe("fanwatch nats backup and restore, against real nats-servers", { timeout: 180_000 }, () => {
  let source: TestNats;
  let target: TestNats;
  let src: NatsConnection;
  let dst: NatsConnection;
  let dir: string;

  before(async () => {
    [source, target] = await Promise.all([startNats(), startNats()]);
    [src, dst] = await Promise.all([connect({ servers: source.url }), connect({ servers: target.url })]);
    dir = await mkdtemp(join(tmpdir(), "fanwatch-nats-backup-"));
    await fill(src);
  });

  after(async () => {
    await Promise.allSettled([src?.close(), dst?.close()]);
    await Promise.allSettled([source?.stop(), target?.stop()]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("backs up every stream into readable files, then restores each message and KV value into a fresh server", async () => {
    const out = join(dir, "full");
    const backup = await runCli(["nats", "backup", "--out", out], { NATS_URL: source.url });
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stdout, /backed up 3 streams, \d+ messages/);
    assert.match(backup.stderr, /FAN_HEALTH_EVENTS: 2000 messages/);
    assert.deepEqual((await readdir(out)).sort(), [
      "FAN_HEALTH_EVENTS",
      "FAN_NOTIFICATIONS",
      "KV_fan_health",
      "backup.json",
    ]);
    // The format is what docs/backup.md says: config JSON and gzipped JSON lines with the original sequences.
    const stream = StreamFile.parse(JSON.parse(await readFile(join(out, "FAN_HEALTH_EVENTS", "stream.json"), "utf8")));
    assert.deepEqual(stream.config.subjects, ["fanwatch.health.>"]);
    const lines = gunzipSync(await readFile(join(out, "FAN_HEALTH_EVENTS", "messages.jsonl.gz")))
      .toString()
      .trim()
      .split("\n")
      .map((l) => MessageLine.parse(JSON.parse(l)));
    assert.equal(lines.length, EVENTS);
    assert.deepEqual(
      lines.slice(0, 2).map((l) => l.seq),
      [1, 2],
    );
    assert.deepEqual(lines[0]?.headers, [["Nats-Msg-Id", "t-0"]]);
    assert.equal(
      Buffer.from(lines[0]?.data ?? "", "base64").toString(),
      (await readAll(src, "FAN_HEALTH_EVENTS"))[0]?.data,
    );

    const restore = await runCli(["nats", "restore", out], { NATS_URL: target.url });
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /restored 3 streams/);
    const jsm = await jetstreamManager(dst);
    assert.deepEqual(await streamNames(jsm), ["FAN_HEALTH_EVENTS", "FAN_NOTIFICATIONS", "KV_fan_health"]);
    for (const name of ["FAN_HEALTH_EVENTS", "FAN_NOTIFICATIONS", "KV_fan_health"])
      assert.deepEqual(await readAll(dst, name), await readAll(src, name), name);
    const before = await kvValues(src);
    assert.equal(before.size, 99);
    assert.deepEqual(await kvValues(dst), before);
    // The configuration came back: limits and the duplicate window that the kept message ids serve.
    const [was, is] = await Promise.all([
      (await jetstreamManager(src)).streams.info("FAN_HEALTH_EVENTS"),
      jsm.streams.info("FAN_HEALTH_EVENTS"),
    ]);
    assert.equal(is.config.max_age, was.config.max_age);
    assert.equal(is.config.duplicate_window, was.config.duplicate_window);
    const again = await jetstream(dst).publish(healthEventSubject("plant-a", "fan-0"), "{}", { msgID: "t-5" });
    assert.equal(again.duplicate, true, "a transition sent again after the restore is stored once");
    // A restored bucket takes compare-and-set writes from the revision it now has.
    const kv = await new Kvm(jetstream(dst)).open("fan_health");
    const entry = await kv.get("fan-3");
    await kv.update("fan-3", "{}", entry?.revision ?? 0);
  });

  it("refuses to restore onto a stream that holds messages, unless --replace", async () => {
    const out = join(dir, "events-only");
    const backup = await runCli(["nats", "backup", "--out", out, "--stream", "FAN_HEALTH_EVENTS"], {
      NATS_URL: source.url,
    });
    assert.equal(backup.code, 0, backup.stderr);
    assert.deepEqual((await readdir(out)).sort(), ["FAN_HEALTH_EVENTS", "backup.json"]);
    const refused = await runCli(["nats", "restore", out], { NATS_URL: target.url });
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /refusing to restore over streams that hold messages: FAN_HEALTH_EVENTS \(\d+ messages\).*--replace/,
    );
    const replaced = await runCli(["nats", "restore", out, "--replace"], { NATS_URL: target.url });
    assert.equal(replaced.code, 0, replaced.stderr);
    const info = await (await jetstreamManager(dst)).streams.info("FAN_HEALTH_EVENTS");
    assert.equal(info.state.messages, EVENTS);
  });

  it("says clearly what is wrong with a directory that is not a backup", async () => {
    const empty = join(dir, "empty");
    await mkdir(empty);
    const none = await runCli(["nats", "restore", empty], { NATS_URL: target.url });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /is not a finished NATS backup: it has no backup\.json/);

    const damaged = join(dir, "damaged");
    await mkdir(damaged);
    await writeFile(join(damaged, "backup.json"), "{ not json");
    const bad = await runCli(["nats", "restore", damaged], { NATS_URL: target.url });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /backup\.json is not JSON/);

    const out = join(dir, "truncated");
    assert.equal(
      (await runCli(["nats", "backup", "--out", out, "--stream", "FAN_NOTIFICATIONS"], { NATS_URL: source.url })).code,
      0,
    );
    await rm(join(out, "FAN_NOTIFICATIONS", "messages.jsonl.gz"));
    const missing = await runCli(["nats", "restore", out, "--replace"], { NATS_URL: target.url });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /FAN_NOTIFICATIONS's messages are missing/);

    const notEmpty = await runCli(["nats", "backup", "--out", out], { NATS_URL: source.url });
    assert.equal(notEmpty.code, 2);
    assert.match(notEmpty.stderr, /is not empty/);
    const unknown = await runCli(["nats", "backup", "--out", join(dir, "x"), "--stream", "NOPE"], {
      NATS_URL: source.url,
    });
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /no stream NOPE on this server; its streams are FAN_HEALTH_EVENTS, FAN_NOTIFICATIONS, KV_fan_health/,
    );
  });

  it("keeps the newest --keep backups made with --into", async () => {
    const parent = join(dir, "kept");
    for (let i = 0; i < 3; i++) {
      const run = await runCli(["nats", "backup", "--into", parent, "--keep", "2", "--stream", "FAN_NOTIFICATIONS"], {
        NATS_URL: source.url,
      });
      assert.equal(run.code, 0, run.stderr);
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // names are to the second
    }
    const left = await readdir(parent);
    assert.equal(left.length, 2);
    for (const name of left) assert.match(name, /^nats-\d{8}T\d{6}Z$/);
  });
});
