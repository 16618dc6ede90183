import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Command } from "commander";
import { addModelRegistryCommand } from "../../cli/model-registry-command.js";
import type { Io } from "../../cli/parse.js";
import { ModelGateError } from "../../lib/errors.js";
import { freePort } from "../../lib/infra/net.js";
import type { PromotionGates } from "../../lib/models/gates.js";
import { encodeBundle } from "../../lib/models/bundle.js";
import { MODELS_BUCKET } from "../../lib/models/names.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import type { ShadowComparison } from "../../lib/models/schemas.js";
import { startNats, type TestNats } from "../support/nats.js";
import { MODEL_DIR } from "../support/paths.js";
import { runCli } from "../support/process.js";

/** An Io that keeps what a command prints. */
function collectingIo(): Io & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    out: (line) => void lines.push(line),
    err: (line) => void lines.push(line),
    progress: () => undefined,
    progressDone: () => undefined,
    interactive: false,
  };
}

describe("fanwatch model: the real CLI against a real nats-server", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let registry: ModelRegistry;
  let dir: string;
  let shipped: string;
  let child: string;
  const env = () => ({ NATS_URL: nats.url, SITE: "plant-7" });
  const model = (...args: string[]) => runCli(["model", ...args], env());

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    registry = await ModelRegistry.open(nc);
    dir = await mkdtemp(join(tmpdir(), "fanwatch-model-cli-"));
  });

  after(async () => {
    await nc.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("without NATS_URL says there is no registry", async () => {
    const r = await runCli(["model", "list"], { NATS_URL: "" });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /NATS_URL is not set \(or --nats\): the model registry lives in NATS JetStream.*\[FANWATCH_NO_REGISTRY\]/,
    );
    const help = await runCli(["model", "promote", "--help"]);
    assert.match(help.stdout, /NATS_URL/);
    assert.match(help.stdout, /--site <name>/);
  });

  it("says when the registry's NATS is away", async () => {
    const r = await runCli(["model", "list"], { NATS_URL: `nats://127.0.0.1:${await freePort()}` });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ \(NATS_URL\).*\[FANWATCH_REGISTRY_UNAVAILABLE\]/,
    );
  });

  it("pushes a model directory once, and a retrained one with its parent", async () => {
    const first = await model("push", MODEL_DIR, "--json", "--by", "ana");
    assert.equal(first.code, 0, first.stderr);
    const pushed = JSON.parse(first.stdout) as { id: string; created: boolean; parent: string | null };
    assert.equal(pushed.created, true);
    assert.equal(pushed.parent, null);
    shipped = pushed.id;
    const again = await model("push", MODEL_DIR);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`already stored: model ${shipped} from `));
    const second = await model("push", MODEL_DIR, "--parent", shipped, "--json");
    child = (JSON.parse(second.stdout) as { id: string }).id;
    assert.notEqual(child, shipped);
    const orphan = await model("push", MODEL_DIR, "--parent", "fan-0000000000000000");
    assert.equal(orphan.code, 1);
    assert.match(
      orphan.stderr,
      /the parent fan-0000000000000000 is not in the model registry.*\[FANWATCH_MODEL_NOT_FOUND\]/,
    );
  });

  it("refuses to push a directory whose weights are corrupt, and stores nothing", async () => {
    const broken = join(dir, "broken");
    await cp(MODEL_DIR, broken, { recursive: true });
    // The golden set of the good weights, then other weights of the same size: a corrupt copy.
    await writeFile(join(broken, "golden.json"), JSON.stringify((await registry.get(shipped)).golden));
    const weights = await readFile(join(broken, "weights.bin"));
    for (let i = 3; i < weights.length; i += 16) weights[i] = 0x7f; // the exponent byte of every 4th weight
    await writeFile(join(broken, "weights.bin"), weights);
    const r = await model("push", broken);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /refused: it fails its golden set: 200 readings, \d+ mismatches.*\[FANWATCH_MODEL_REFUSED\]/,
    );
    assert.equal((await registry.list()).length, 2);
  });

  it("promotes, shows the pointer in list, and rolls back to the previous model", async () => {
    const first = await model("promote", shipped, "--by", "ana");
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`promoted model ${shipped} at site plant-7 \\(revision \\d+\\); no previous model`),
    );
    // No shadow ran here, so the alarm-change gate is given nothing to need: golden sets and findings decide.
    const second = await runCli(["model", "promote", child, "--note", "trained on plant-7's findings"], {
      ...env(),
      MODEL_GATE_MIN_SHADOW_READINGS: "0",
    });
    assert.match(
      second.stdout,
      /^passed {2}golden-accuracy: .*\npassed {2}confirmed-faults: .*\npassed {2}alarm-change: /,
    );
    assert.match(second.stdout, new RegExp(`promoted model ${child} .*rollback returns to ${shipped}`));
    const list = await model("list");
    assert.match(list.stdout, /^ID\s+ROLE\s+PUSHED \(UTC\)\s+PARENT\s+ACCURACY/);
    assert.match(list.stdout, new RegExp(`${shipped}\\s+previous`));
    assert.match(list.stdout, new RegExp(`${child}\\s+active\\s+\\S+ \\S+\\s+${shipped}\\s+0\\.9511`));
    assert.match(
      list.stdout,
      new RegExp(`2 versions; site plant-7: active ${child}, previous ${shipped}, shadow none`),
    );
    const json = (await model("list", "--json")).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; role: string | null });
    assert.deepEqual(
      json.map((v) => [v.id, v.role]),
      [
        [shipped, "previous"],
        [child, "active"],
      ],
    );
    const back = await model("rollback");
    assert.equal(back.code, 0, back.stderr);
    assert.match(
      back.stdout,
      new RegExp(
        `rolled back site plant-7 to model ${shipped} \\(revision \\d+, in \\d+ ms\\); ${child} is now the previous model`,
      ),
    );
    assert.equal((await registry.pointer("plant-7"))?.pointer.active, shipped);
    assert.equal((await registry.pointer("plant-7"))?.pointer.reason, "rollback");
    const changes = (await model("list")).stdout.split("the pointer's last changes, newest first:\n")[1] ?? "";
    assert.match(changes, new RegExp(`^ +3  \\S+  rollback +active ${shipped}  by `));
    assert.match(
      changes,
      new RegExp(`\n +2  \\S+  promote +active ${child}  by \\S+: trained on plant-7's findings\n`),
    );
    assert.match(changes, new RegExp(`\n +1  \\S+  promote +active ${shipped}  by ana\n$`));
  });

  it("promote refuses a candidate that fails a gate, naming it with its numbers, unless forced", async () => {
    const gates: PromotionGates = async ({ candidate }) => [
      { gate: "golden-accuracy", passed: true, detail: "candidate 0.950 ≥ active 0.940" },
      { gate: "alarm-change", passed: false, detail: `${candidate}: 4 alarms more on fans with no finding, at most 2` },
    ];
    const run = async (...args: string[]) => {
      const io = collectingIo();
      const program = new Command("fanwatch").exitOverride();
      addModelRegistryCommand(program, io, () => ({ gates, dispose: () => undefined }));
      const outcome = await program
        .parseAsync(["model", "promote", child, "--nats", nats.url, "--site", "plant-7", ...args], { from: "user" })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      return { io, outcome };
    };
    const before = await registry.pointer("plant-7");
    const refused = await run();
    assert.ok(refused.outcome instanceof ModelGateError, String(refused.outcome));
    assert.match(
      refused.outcome.message,
      /failed alarm-change \(fan-[0-9a-f]{16}: 4 alarms more on fans with no finding, at most 2\); --force/,
    );
    assert.deepEqual(refused.io.lines.slice(0, 2), [
      "passed  golden-accuracy: candidate 0.950 ≥ active 0.940",
      `FAILED  alarm-change: ${child}: 4 alarms more on fans with no finding, at most 2`,
    ]);
    assert.deepEqual(await registry.pointer("plant-7"), before);
    const forced = await run("--force", "--note", "the extra alarms are the hot fans, checked");
    assert.equal(forced.outcome, undefined);
    const now = await registry.pointer("plant-7");
    assert.equal(now?.pointer.active, child);
    assert.equal(now?.pointer.forced, true);
    assert.equal(now?.pointer.note, "the extra alarms are the hot fans, checked");
  });

  it("sets and clears a shadow, and compares it with the active model over every predict replica", async () => {
    const on = await model("shadow", shipped);
    assert.equal(on.code, 0, on.stderr);
    assert.match(
      on.stdout,
      new RegExp(`model ${shipped} now scores every reading at site plant-7 as a shadow of ${child}`),
    );
    const none = await model("compare");
    assert.match(none.stdout, /no comparison yet/);
    const record = (replica: string, readings: number, agreed: number, opened: string[]): ShadowComparison => ({
      site: "plant-7",
      replica,
      active: child,
      shadow: shipped,
      since: "2026-12-08T00:00:00.000Z",
      at: "2026-12-08T00:10:00.000Z",
      readings,
      agreed,
      alarms: { active: 3, shadow: 2 + opened.length },
      fans: { opened, closed: ["4"] },
      cost: { cpuRatio: 1.2, latencyRatio: readings === 0 ? null : 1.1 },
    });
    await registry.putComparison(record("predict-a", 1000, 990, ["12"]));
    await registry.putComparison(record("predict-b", 3000, 2970, ["9"]));
    await registry.putComparison({ ...record("predict-c", 500, 0, ["99"]), active: "fan-00000000000000aa" });
    const text = await model("compare");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /4,000 readings since 2026-12-08T00:00:00.000Z \(2 predict replicas/);
    assert.match(text.stdout, /agreement {2}99\.00% \(3,960 readings with the same verdict\)/);
    assert.match(text.stdout, /alarms {5}active 6, shadow 6/);
    assert.match(text.stdout, /would open {2}9, 12/);
    assert.match(text.stdout, /would close 4/);
    assert.match(text.stdout, /cost {7}CPU 1\.20×, latency 1\.10× of the active model alone/);
    assert.match(text.stdout, /1 older record against another active model not counted/);
    const json = JSON.parse((await model("compare", "--json")).stdout) as { agreement: number; replicas: number };
    assert.equal(json.agreement, 0.99);
    assert.equal(json.replicas, 2);
    const off = await model("shadow", "--off");
    assert.match(off.stdout, new RegExp(`stopped shadowing ${shipped} at site plant-7`));
    const noShadow = await model("compare");
    assert.equal(noShadow.code, 2);
    assert.match(noShadow.stderr, /site plant-7 has no shadow model/);
  });

  it("shows a version: metadata, golden set, lineage, the replicas serving it and those that refused it", async () => {
    const at = new Date().toISOString();
    await registry.putReplicaStatus({
      replica: "score-1",
      site: "plant-7",
      active: child,
      shadow: null,
      revision: 9,
      refused: [],
      at,
    });
    await registry.putReplicaStatus({
      replica: "score-2",
      site: "plant-7",
      active: shipped,
      shadow: null,
      revision: 8,
      refused: [
        { id: child, error: `model ${child} refused: it fails its golden set: 200 readings, 7 mismatches`, at },
      ],
      at,
    });
    const r = await model("show", child);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^model ${child} \\(active at site plant-7\\)`));
    assert.match(r.stdout, /integrity its stored bytes match its id/);
    assert.match(r.stdout, /held out {2}accuracy 0\.9511/);
    assert.match(
      r.stdout,
      /golden {4}200 readings \(200 labelled, \d+ answered fault\), tolerance 0\.001; accuracy on the labels 0\.\d{4}/,
    );
    assert.match(r.stdout, new RegExp(`lineage   ← ${shipped} \\(accuracy 0\\.9511\\)`));
    assert.match(r.stdout, /served {4}score-1 \(active, reported /);
    assert.match(r.stdout, new RegExp(`refused   by score-2 at .*: model ${child} refused: it fails its golden set`));
    const json = JSON.parse((await model("show", shipped, "--json")).stdout) as { children: string[]; role: string };
    assert.deepEqual(json.children, [child]);
    assert.equal(json.role, "previous");
    // Bytes put under a name they do not hash to (by hand): shown, and said to be refused.
    const store = await new Objm(jetstream(nc)).open(MODELS_BUCKET);
    await store.putBlob({ name: "fan-00000000deadbeef" }, encodeBundle(await registry.get(shipped)));
    const tampered = await model("show", "fan-00000000deadbeef");
    assert.equal(tampered.code, 0, tampered.stderr);
    assert.match(
      tampered.stdout,
      /REFUSED {3}model fan-00000000deadbeef refused: its stored bytes have the digest fan-[0-9a-f]{16}, not its id/,
    );
    const missing = await model("show", "fan-0123456789abcdef");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\[FANWATCH_MODEL_NOT_FOUND\]/);
    const bad = await model("show", "not-an-id");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /a model id is fan- and 16 hex digits/);
  });

  it("rolls back to a model that was shadowing: the pointer keeps no shadow of its own active model", async () => {
    const site = { NATS_URL: nats.url, SITE: "plant-rb" };
    const at = new Date().toISOString();
    // The previous model brought back as a shadow (fanwatch model shadow <previous>) after a promote.
    await registry.setPointer(
      "plant-rb",
      { active: child, previous: shipped, shadow: shipped, reason: "shadow", by: "ana", at, forced: false, note: null },
      0,
    );
    const back = await runCli(["model", "rollback"], site);
    assert.equal(back.code, 0, back.stderr);
    const after = (await registry.pointer("plant-rb"))?.pointer;
    assert.deepEqual([after?.active, after?.previous, after?.shadow], [shipped, child, null]);
    const compare = await runCli(["model", "compare"], site);
    assert.match(compare.stderr, /site plant-rb has no shadow model/);
  });

  it("pulls a version to a bundle file that another site's registry stores under the same id and lineage", async () => {
    const file = join(dir, "moved.json");
    const pulled = await model("pull", child, "--out", file);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(
      pulled.stdout,
      new RegExp(`wrote model ${child} \\([\\d,]+ bytes\\) to ${file}; at another site: fanwatch model push ${file}`),
    );
    const site = await startNats();
    try {
      const pushed = await runCli(["model", "push", file, "--json"], { NATS_URL: site.url });
      assert.equal(pushed.code, 0, pushed.stderr);
      // Its parent is not at that site: the lineage still names it.
      assert.deepEqual(JSON.parse(pushed.stdout), { id: child, created: true, parent: shipped });
      const withParent = await runCli(["model", "push", file, "--parent", shipped], { NATS_URL: site.url });
      assert.equal(withParent.code, 2);
      assert.match(withParent.stderr, /is a bundle file: its parent is inside it/);
      const edited = join(dir, "edited.json");
      await writeFile(edited, (await readFile(file, "utf8")).replace('"architecture":"Dense', '"architecture":"dense'));
      const other = await runCli(["model", "push", edited, "--json"], { NATS_URL: site.url });
      assert.equal(other.code, 0, other.stderr);
      assert.notEqual((JSON.parse(other.stdout) as { id: string }).id, child, "other bytes, another id");
    } finally {
      await site.stop();
    }
  });
});
