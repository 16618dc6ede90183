import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import { openFanRegistry, type NatsFanRegistry } from "../../lib/registry/nats-registry.js";
import { startNats, type TestNats } from "../support/nats.js";
import { runCli } from "../support/process.js";

describe("fanwatch fans: the real CLI against a real nats-server", () => {
  let nats: TestNats;
  let dir: string;
  let registry: NatsFanRegistry;
  const env = () => ({ NATS_URL: nats.url });
  const fans = (...args: string[]) => runCli(["fans", ...args], env());

  before(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "fanwatch-fans-"));
    registry = await openFanRegistry({ url: nats.url });
  });

  after(async () => {
    await registry.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("without NATS_URL says the registry lives in NATS", async () => {
    const r = await runCli(["fans", "list"], { NATS_URL: "" });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /NATS_URL is not set \(or --nats\): the device registry lives in NATS/);
  });

  it("adds a fan with its details, lists it as a table and as JSON, and keeps who added it", async () => {
    const added = await fans(
      "add",
      "hall-a.7",
      "--name",
      "Hall A supply",
      "--site",
      "plant-b",
      "--location",
      "roof 2",
      "--type",
      "ebm-W3G",
      "--tag",
      "critical",
      "--tag",
      "roof",
      "--limit",
      "temperature=-20:90",
      "--by",
      "alice",
    );
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added fan hall-a\.7: active "Hall A supply", approved by alice/);
    const record = await registry.get("hall-a.7");
    assert.deepEqual(
      [record?.site, record?.location, record?.type, record?.tags, record?.limits],
      ["plant-b", "roof 2", "ebm-W3G", ["critical", "roof"], { temperature: { min: -20, max: 90 } }],
    );

    const again = await fans("add", "hall-a.7", "--by", "bob");
    assert.match(again.stdout, /unchanged fan hall-a\.7: .*approved by alice/);

    const table = await fans("list");
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ID\s+STATE\s+NAME\s+SITE\s+TYPE\s+APPROVED BY\s+CREATED$/);
    assert.match(
      lines[1] ?? "",
      /^hall-a\.7\s+active\s+Hall A supply\s+plant-b\s+ebm-W3G\s+alice\s+\d{4}-\d\d-\d\d \d\d:\d\dZ$/,
    );
    assert.equal(lines.at(-1), "1 fan: 0 pending, 1 active, 0 retired");

    const json = await fans("list", "--json");
    const [one] = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as FanRecord & { hasMqttPassword: boolean });
    assert.equal(one?.id, "hall-a.7");
    assert.equal(one?.approvedBy, "alice");
    assert.equal(one?.hasMqttPassword, false);
  });

  it("refuses an id that cannot be a topic level, naming why", async () => {
    const r = await fans("add", "fan/7");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /never "\/", "\+", "#".*\[FANWATCH_DEVICE_ID_INVALID\]/);
    assert.equal(await registry.get("fan/7"), undefined);
  });

  it("approves pending fans and retires fans, naming those it could not act on", async () => {
    await registry.markPending("p-1", 100);
    await registry.markPending("p-2", 100);
    const pending = await fans("list", "--state", "pending");
    assert.deepEqual(
      pending.stdout
        .split("\n")
        .slice(1, 3)
        .map((l) => l.split(/\s+/)[0]),
      ["p-1", "p-2"],
    );
    const approved = await fans("approve", "p-1", "nobody", "--by", "carol");
    assert.equal(approved.code, 1);
    assert.match(approved.stdout, /approved fan p-1: active, approved by carol/);
    assert.match(approved.stderr, /fan nobody not approved: no fan "nobody" in the registry/);
    assert.match(approved.stderr, /1 of 2 fans not approved \(above\): nobody \[FANWATCH_DEVICE_UNKNOWN\]/);
    assert.equal((await registry.get("p-1"))?.approvedBy, "carol");

    const retired = await fans("retire", "p-2", "--by", "dave");
    assert.equal(retired.code, 0, retired.stderr);
    const p2 = await registry.get("p-2");
    assert.deepEqual([p2?.state, p2?.retiredBy], ["retired", "dave"]);
    assert.match((await fans("list", "--state", "retired")).stdout, /^p-2\s+retired/m);
  });

  it("imports nothing from a file with bad lines, naming each line and why", async () => {
    const file = join(dir, "bad.csv");
    await writeFile(file, "id,name,site\nok-1,Fan one,plant-b\nbad/2,Fan two,plant-b\nok-3\n,nameless,x\n");
    const r = await fans("import", file);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.csv line 3: device id "bad\/2" may hold only/);
    assert.match(r.stderr, /bad\.csv line 4: 1 cell; the header has 3/);
    assert.match(r.stderr, /bad\.csv line 5: no id/);
    assert.match(r.stderr, /3 bad lines in .*bad\.csv \(above\): nothing imported \[FANWATCH_INPUT_INVALID\]/);
    assert.equal(await registry.get("ok-1"), undefined, "the good line was not imported either");
  });

  it("imports CSV and JSON lines, saying how many fans were new, updated and unchanged", async () => {
    await registry.markPending("imp-pending", 100);
    const csv = join(dir, "fans.csv");
    await writeFile(
      csv,
      "id,name,site,location,type,tags\nimp-1,One,plant-b,hall 1,ebm,a;b\nimp-2,Two,plant-b,,,\nimp-pending,Was pending,plant-b,,,\n",
    );
    const check = await fans("import", csv, "--check");
    assert.match(
      check.stdout,
      /would import 3 fans .*: 2 new, 1 updated \(1 of them pending or retired, now active\), 0 unchanged/,
    );
    assert.equal(await registry.get("imp-1"), undefined, "--check writes nothing");

    const first = await fans("import", csv, "--by", "ot-officer");
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /imported 3 fans from .*fans\.csv: 2 new, 1 updated \(1 of them pending or retired, now active\), 0 unchanged/,
    );
    const one = await registry.get("imp-1");
    assert.deepEqual([one?.state, one?.tags, one?.approvedBy], ["active", ["a", "b"], "ot-officer"]);
    assert.equal((await registry.get("imp-pending"))?.approvedBy, "ot-officer");

    const jsonl = join(dir, "fans.jsonl");
    await writeFile(
      jsonl,
      '{"id":"imp-1","name":"One"}\n{"id":"imp-2","name":"Two, renamed"}\n{"id":"imp-3","tags":"x;y"}\n',
    );
    const second = await fans("import", jsonl);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /imported 3 fans .*: 1 new, 1 updated, 1 unchanged/);
    assert.equal((await registry.get("imp-2"))?.name, "Two, renamed");
    assert.equal((await registry.get("imp-1"))?.site, "plant-b", "a field left out keeps its value");
  });

  it("says NATS is unreachable rather than hanging", async () => {
    const r = await runCli(["fans", "list", "--nats", "nats://127.0.0.1:1"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach NATS at nats:\/\/127\.0\.0\.1:1.*\[FANWATCH_STORE_UNAVAILABLE\]/);
  });
});
