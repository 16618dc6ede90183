import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MODEL_DIR } from "../support/paths.js";
import { runCli, type Finished } from "../support/process.js";

/** A line of a stack trace, as Node prints it: what a user must not see for an error we foresaw. */
const STACK_LINE = /^\s+at /m;

/** Exactly one line on stderr, `fanwatch: …`, matching `message`. */
function assertOneLine(result: Finished, message: RegExp): void {
  assert.doesNotMatch(result.stderr, STACK_LINE, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? "", /^fanwatch: /);
  assert.match(lines[0] ?? "", message);
}

describe("fanwatch exit codes and error messages (docs/errors.md)", () => {
  let dir: string;
  let readings: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-cli-errors-"));
    readings = join(dir, "readings.csv");
    await writeFile(
      readings,
      "DeviceID,Time,Rotation,Temperature,Vibration,Sound,Faulty\n1,2020-10-02 10:00:00,600,40,150,48,0\n",
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("exits 2 on an unknown flag and on a flag value that is not a number", async () => {
    const unknown = await runCli(["generate-data", "--out", join(dir, "x.csv"), "--frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option '--frobnicate'/);
    const port = await runCli(["function", "score", "--port", "abc"]);
    assert.equal(port.code, 2);
    assert.match(port.stderr, /--port takes a whole number, not "abc"/);
  });

  it("exits 2 on a flag out of range, naming it, without a stack", async () => {
    const fans = await runCli(["generate-data", "--out", join(dir, "x.csv"), "--fans", "0"]);
    assert.equal(fans.code, 2);
    assertOneLine(fans, /--fans must be a whole number >= 1, not 0/);
  });

  it("exits 2 on TFJS_BACKEND=bogus, in one line without a stack, for the function and the model tools", async () => {
    const fn = await runCli(["function", "score", "--port", "0", "--host", "127.0.0.1"], { TFJS_BACKEND: "bogus" });
    assert.equal(fn.code, 2);
    assertOneLine(fn, /TFJS_BACKEND/);
    const evaluate = await runCli(["evaluate", "--model", MODEL_DIR, "--data", readings], { TFJS_BACKEND: "bogus" });
    assert.equal(evaluate.code, 2);
    assertOneLine(evaluate, /TFJS_BACKEND: must be one of tensorflow, wasm, cpu, not "bogus"/);
  });

  it("exits 2 on an unknown function and a simulator flag out of range", async () => {
    const fn = await runCli(["function", "nope"]);
    assert.equal(fn.code, 2);
    assertOneLine(fn, /unknown function "nope"; the functions are score, predict, health/);
    const interval = await runCli(["simulate", "--interval", "5"]);
    assert.equal(interval.code, 2);
    assertOneLine(interval, /--interval is in milliseconds and at least 10/);
  });

  it("exits 2 on a bad setting of the function server", async () => {
    const result = await runCli(["function", "score"], { http_port: "eighty" });
    assert.equal(result.code, 2);
    assertOneLine(result, /http_port must be a whole number, not "eighty"/);
  });

  it("exits 1 on a missing data file or model, in one line without a stack", async () => {
    const data = await runCli(["train", "--data", join(dir, "missing.csv"), "--out", join(dir, "never")]);
    assert.equal(data.code, 1);
    assertOneLine(data, /cannot read .*missing\.csv/);
    const model = await runCli(["evaluate", "--model", join(dir, "no-model"), "--data", readings]);
    assert.equal(model.code, 1);
    assertOneLine(model, /no-model/);
  });
});
