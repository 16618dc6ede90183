import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MODEL_DIR } from "../support/paths.js";
import { freePort, runCli, type Finished } from "../support/process.js";

/** commander's refusal of a flag's value: its `error: …` line, then its hint to run --help, and no stack. */
function assertRefusedFlag(result: Finished, message: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.doesNotMatch(result.stderr, STACK_LINE, result.stderr);
  const [line = "", ...rest] = result.stderr.trimEnd().split("\n");
  assert.match(line, /^error: option '--broker <url>' argument /);
  assert.match(line, message);
  assert.deepEqual(rest, ["(run with --help for usage)"]);
}

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
    assertOneLine(
      evaluate,
      /TFJS_BACKEND: must be one of tensorflow, wasm, cpu, not "bogus" \[FANWATCH_CONFIG_INVALID\]$/,
    );
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

  describe("a broker address that cannot work (MQTT_URL, --broker)", () => {
    it("fanwatch start exits 2 on a malformed MQTT_URL, naming it, before anything starts", async () => {
      const result = await runCli(["start", "--fans", "0"], { MQTT_URL: "not-a-url" });
      assert.equal(result.code, 2, result.stderr);
      assertOneLine(
        result,
        /^fanwatch: invalid configuration: MQTT_URL: "not-a-url" is not a URL such as mqtt:\/\/127\.0\.0\.1:1883 \[FANWATCH_CONFIG_INVALID\]$/,
      );
    });

    it("fanwatch start exits 2 on a scheme MQTT.js would silently replace, rather than say running", async () => {
      const result = await runCli(["start", "--fans", "0"], { MQTT_URL: "htp://127.0.0.1:1883" });
      assert.equal(result.code, 2, result.stderr);
      assertOneLine(
        result,
        /MQTT_URL: unsupported scheme "htp" in "htp:\/\/127\.0\.0\.1:1883": use mqtt, mqtts, tcp, ssl, tls, ws, wss/,
      );
    });

    it("fanwatch start exits 1 when nothing answers at MQTT_URL, naming it and the cause", async () => {
      const result = await runCli(["start", "--fans", "0"], { MQTT_URL: "mqtt://127.0.0.1:1" });
      assert.equal(result.code, 1, result.stderr);
      assertOneLine(
        result,
        /^fanwatch: cannot reach the MQTT broker at mqtt:\/\/127\.0\.0\.1:1 \(MQTT_URL\): connect ECONNREFUSED 127\.0\.0\.1:1 \[FANWATCH_BROKER_UNAVAILABLE\]$/,
      );
    });

    it("fanwatch connector exits 2 on --broker with an unsupported scheme instead of retrying forever", async () => {
      assertRefusedFlag(await runCli(["connector", "--broker", "foo://x"]), /unsupported scheme "foo"/);
      const env = await runCli(["connector"], { MQTT_URL: "foo://x" });
      assert.equal(env.code, 2, env.stderr);
      assertOneLine(env, /invalid configuration: MQTT_URL: unsupported scheme "foo"/);
      const official = await runCli(["connector"], { broker: "not a url" });
      assert.equal(official.code, 2, official.stderr);
      assertOneLine(
        official,
        /invalid configuration: broker: "not a url" is neither a URL such as mqtt:\/\/127\.0\.0\.1:1883 nor a host name/,
      );
    });

    it("fanwatch connector, influx-writer and simulate exit 1 when nothing answers at the broker", async () => {
      const port = String(await freePort());
      for (const args of [
        ["connector", "--broker", "mqtt://127.0.0.1:1", "--port", port],
        ["influx-writer", "--influx-url", "http://127.0.0.1:9", "--broker", "mqtt://127.0.0.1:1", "--port", port],
        ["simulate", "--broker", "mqtt://127.0.0.1:1", "--fans", "1", "--duration", "1"],
      ]) {
        const result = await runCli(args);
        assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
        assertOneLine(
          result,
          /^fanwatch: cannot reach the MQTT broker at mqtt:\/\/127\.0\.0\.1:1 \(--broker\): connect ECONNREFUSED .*\[FANWATCH_BROKER_UNAVAILABLE\]$/,
        );
      }
    });
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
