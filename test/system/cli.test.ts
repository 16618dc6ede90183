import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { parseStack } from "../../runtime/gateway/stack.js";
import { REPO_ROOT } from "../support/paths.js";
import { finished, freePort, postJson, runCli, spawnCli, waitUntilReady } from "../support/process.js";

describe("fanwatch CLI", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-cli-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("lists every subcommand in --help", async () => {
    const { code, stdout } = await runCli(["--help"]);
    assert.equal(code, 0);
    for (const command of ["start", "simulate", "generate-data", "train", "evaluate", "function", "connector"])
      assert.match(stdout, new RegExp(`^  ${command}\\b`, "m"));
  });

  it("lists stack.yml's functions, and each one's settings, in function --help", async () => {
    const stack = parseStack(await readFile(join(REPO_ROOT, "stack.yml"), "utf8"));
    const names = Object.keys(stack.functions);
    const { code, stdout } = await runCli(["function", "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`^  name +function to run \\(${names.join(", ")}\\)$`, "m"));
    for (const name of names) assert.match(stdout, new RegExp(`^${name}\\b.*:$`, "m"), `${name}'s settings`);
  });

  it("exits 2 on a usage error", async () => {
    assert.equal((await runCli([])).code, 2);
    const unknown = await runCli(["train", "--data", "x.csv", "--out", "m", "--epochs", "many"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--epochs takes a whole number, not "many"/);
    assert.equal((await runCli(["frobnicate"])).code, 2);
  });

  it("fits the default --faulty and --degrading to a small fleet, and refuses given counts that do not fit", async () => {
    const help = await runCli(["start", "--help"]);
    assert.match(help.stdout.replace(/\s+/g, " "), /--fans 3: 1 faulty, 1 degrading, 1 healthy/);
    // Given counts that leave no room: the whole mix is named, nothing starts.
    const tooMany = await runCli(["start", "--fans", "3", "--faulty", "4", "--port", String(await freePort())]);
    assert.equal(tooMany.code, 2);
    assert.match(tooMany.stderr, /--faulty 4, --degrading 2 are more than the 3 fans/);
    assert.doesNotMatch(tooMany.stderr, /starting the broker/);
  });

  it("generates data, trains with progress and --json, and evaluates", async () => {
    const data = join(dir, "d.csv");
    const gen = await runCli(["generate-data", "--out", data, "--fans", "6", "--rows", "900", "--seed", "4"]);
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(gen.stdout, /wrote 900 readings from 6 fans \(450 faulty\)/);

    const train = await runCli(["train", "--data", data, "--out", join(dir, "m"), "--epochs", "2", "--json"]);
    assert.equal(train.code, 0, train.stderr);
    assert.match(train.stderr, /epoch 1\/2 .*loss .*accuracy/);
    assert.match(train.stderr, /epoch 2\/2 /);
    const trained = JSON.parse(train.stdout.trim().split("\n").at(-1) ?? "") as {
      model: string;
      rows: number;
      accuracy: number;
    };
    assert.equal(trained.rows, 297);
    assert.ok(trained.accuracy > 0 && trained.accuracy <= 1);

    const evaluate = await runCli(["evaluate", "--model", join(dir, "m"), "--data", data, "--json"]);
    assert.equal(evaluate.code, 0, evaluate.stderr);
    assert.match(evaluate.stdout, /precision .*fault class/);
    const metrics = JSON.parse(evaluate.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
    assert.equal(metrics.model, trained.model);
    assert.equal(metrics.rows, 900);
    for (const key of ["accuracy", "precision", "recall", "f1", "rocAuc", "confusion"]) assert.ok(key in metrics, key);
  });

  it("rejects a file in another format, naming the line and column", async () => {
    const bad = join(dir, "bad.csv");
    await writeFile(
      bad,
      "DeviceID,Time,Rotation,Temperature,Vibration,Sound,Faulty\n1,2020-10-02 10:00:00,600,40,150,48,0\n1,2020-10-02 10:00:02,600,40,loud,48,0\n",
    );
    const r = await runCli(["train", "--data", bad, "--out", join(dir, "never")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 3, column Vibration: "loud" is not a number/);
    const missing = await runCli(["evaluate", "--model", join(dir, "none"), "--data", bad]);
    assert.equal(missing.code, 1);
  });

  describe("function score", () => {
    let child: ChildProcessWithoutNullStreams;
    let url: string;
    before(async () => {
      const port = await freePort();
      child = spawnCli(["function", "score", "--port", String(port)]);
      url = `http://127.0.0.1:${port}/`;
      await waitUntilReady(url, child);
    });
    after(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });

    it("scores single readings and batches over HTTP with JSON answers", async () => {
      const single = await postJson(url, { params: [420, 53, 240, 58] });
      assert.equal(single.status, 200);
      assert.match(single.type, /^application\/json/);
      assert.equal((single.body as { fault: number }).fault, 1);
      const batch = await postJson(url, {
        instances: [
          [620, 40, 150, 48],
          [420, 53, 240, 58],
        ],
      });
      assert.deepEqual(
        (batch.body as { predictions: Array<{ fault: number }> }).predictions.map((p) => p.fault),
        [0, 1],
      );
      const text = await postJson(url, '{"params":[620,40,150,48]}', { "content-type": "text/plain" });
      assert.equal((text.body as { fault: number }).fault, 0);
    });

    it("answers bad input with 400/413 and a JSON error, and keeps serving", async () => {
      const cases: Array<[string, number, string]> = [
        ['{"params":[1,2,3]}', 400, "params"],
        ['{"params":[1,"2",3,4]}', 400, "params[1]"],
        ["{not json", 400, "body"],
        ["", 400, "body"],
        [JSON.stringify({ instances: Array.from({ length: 80_000 }, () => [600.1, 40.1, 150.1, 48.1]) }), 413, "body"],
      ];
      for (const [body, status, field] of cases) {
        const r = await postJson(url, body);
        assert.equal(r.status, status, body.slice(0, 40));
        assert.equal((r.body as { field: string }).field, field);
        assert.ok((r.body as { error: string }).error.length > 10);
      }
      assert.equal((await postJson(url, { params: [620, 40, 150, 48] })).status, 200);
    });

    it("describes the model on GET and stops cleanly on SIGTERM", async () => {
      const meta = (await (await fetch(url)).json()) as { id: string; backend: string };
      assert.match(meta.id, /^fan-dense-/);
      const done = finished(child);
      child.kill("SIGTERM");
      assert.equal((await done).code, 0);
    });
  });
});
