import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  behindWatchdog,
  goDurationMs,
  keepServingMs,
  WATCHDOG_MARGIN_MS,
  watchdogLockFile,
} from "../../templates/node22-ts/watchdog.js";
import { imageEnv } from "../support/image-env.js";
import { eventually } from "../support/eventually.js";
import { startMosquitto } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { OfWatchdogStandIn } from "../support/of-watchdog-stand-in.js";
import { CLI, REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, terminate, waitUntilReady } from "../support/process.js";

// The score function started and stopped behind a stand-in for of-watchdog (named; the Go binary
// is not built here) with the template's own watchdog settings (its Dockerfile's ENV) and the
// stack's, while a router keeps sending: it polls the watchdog's /_/health as OpenFaaS CE's
// Kubernetes probe does until the function is in service, then sends readings without pause until
// the watchdog stops listening.

interface Tally {
  ok: number;
  failed: string[];
  /** Answers that came after SIGTERM. */
  okAfterSigterm: number;
  /** Called at the 50th answer, or at the first failure: the pod is in service (or broken). */
  inService: () => void;
}

/** Two routers' worth of load: each polls /_/health (CE's readiness probe) until 200, then sends until told to stop. */
async function load(
  watchdog: OfWatchdogStandIn,
  body: string,
  stop: { now: boolean; sigterm: boolean },
  tally: Tally,
): Promise<void> {
  const { url } = watchdog;
  let inService = false;
  while (!stop.now) {
    if (!inService) {
      const ready = await fetch(`${url}/_/health`).catch(() => undefined);
      if (ready !== undefined) await ready.arrayBuffer();
      inService = ready?.status === 200;
      continue;
    }
    try {
      const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      const text = await answer.text();
      if (answer.status === 200) {
        if (++tally.ok === 50) tally.inService();
        if (stop.sigterm) tally.okAfterSigterm++;
      } else {
        tally.failed.push(`${answer.status} ${text}`);
        tally.inService();
      }
    } catch (error) {
      // Refused, or a kept-alive connection closed, because the watchdog itself stopped listening:
      // the router would have taken the pod out of service by then. Anything else is a lost request.
      if (watchdog.listening) {
        tally.failed.push(`no answer: ${(error as Error).message}`);
        tally.inService();
      }
    }
  }
}

describe("the template behind of-watchdog (stand-in) under continuous load", { timeout: 120_000 }, () => {
  it("reads the watchdog's own settings: behind it only in http mode with fprocess, for its health-check interval plus a margin", () => {
    assert.equal(behindWatchdog({}), false, "the local gateway and `fanwatch function` set neither");
    assert.equal(behindWatchdog({ fprocess: "node index.mjs" }), false, "of-watchdog's default mode forks per request");
    assert.equal(
      keepServingMs({ mode: "http", fprocess: "node index.mjs" }),
      30_000 + WATCHDOG_MARGIN_MS,
      "write_timeout's default",
    );
    assert.equal(
      keepServingMs({ mode: "http", fprocess: "node index.mjs", write_timeout: "13s" }),
      13_000 + WATCHDOG_MARGIN_MS,
    );
    assert.equal(
      keepServingMs({
        mode: "http",
        function_process: "node index.mjs",
        write_timeout: "13",
        healthcheck_interval: "1m30s",
      }),
      90_000 + WATCHDOG_MARGIN_MS,
    );
    assert.equal(
      keepServingMs({ mode: "http", fprocess: "node index.mjs", write_timeout: "6s", healthcheck_interval: "soon" }),
      6_000 + WATCHDOG_MARGIN_MS,
      "unreadable: the watchdog's fallback",
    );
    assert.equal(
      watchdogLockFile({ mode: "http", fprocess: "node index.mjs", suppress_lock: "true", TMPDIR: "/run/t" }),
      "/run/t/.lock",
      "where Go's os.TempDir() is",
    );
    assert.equal(
      watchdogLockFile({ mode: "http", fprocess: "node index.mjs" }),
      undefined,
      "the watchdog writes its own",
    );
    assert.equal(watchdogLockFile({ suppress_lock: "true" }), undefined, "not behind the watchdog");
    assert.equal(goDurationMs("1h2m3.5s"), 3_723_500);
    assert.equal(goDurationMs("300ms"), 300);
    assert.equal(goDurationMs("15"), undefined);
  });

  it("answers every request the watchdog accepts, from start to exit, with no 5xx", async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: await mkdtemp(join(tmpdir(), "fanwatch-watchdog-")), // the lock file's, this test's own
      LOG_LEVEL: "silent",
      ...imageEnv("score"),
      MODEL_DIR: join(REPO_ROOT, "model/artifact"),
      fprocess: `${process.execPath} ${CLI} function score --port ${port} --host 127.0.0.1`,
      upstream_url: `http://127.0.0.1:${port}`,
      port: String(await freePort()),
    };
    assert.equal(env.ready_path, "/_/ready", "the template points the watchdog's readiness at the function's");
    assert.equal(env.suppress_lock, "true", "and its /_/health, through the lock file the function writes once ready");
    let inService: () => void = () => {};
    const served = new Promise<void>((resolve) => (inService = resolve));
    const tally: Tally = { ok: 0, failed: [], okAfterSigterm: 0, inService: () => inService() };
    const stop = { now: false, sigterm: false };
    const watchdog = await OfWatchdogStandIn.start(env, REPO_ROOT);
    const functionExit = once(watchdog.child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    const body = JSON.stringify({ params: [420, 53, 240, 58] });
    const routers = [load(watchdog, body, stop, tally), load(watchdog, body, stop, tally)];

    // The routers stop however the test ends: a failure must not leave them sending.
    try {
      // In service: wait until the routers have had answers, then stop the pod under load.
      await served;
      assert.deepEqual(tally.failed, [], "no 5xx while starting: in service only once the function is ready");
      const okBeforeSigterm = tally.ok;
      stop.sigterm = true;
      watchdog.terminate();
      // faasd signals every process of the container too: once the function has taken the first
      // SIGTERM (its own /_/ready says 503), it gets a second one.
      await eventually(
        "the function to take the first SIGTERM (its /_/ready answers 503)",
        async () => (await fetch(`http://127.0.0.1:${port}/_/ready`)).status === 503,
        { onError: "fail", paceMs: 1 },
      );
      watchdog.child.kill("SIGTERM");
      await watchdog.stoppedListening;
      stop.now = true;
      await Promise.all(routers);
      const reason = await watchdog.exited;
      const [code, signal] = await functionExit;
      assert.deepEqual(tally.failed, [], "no 5xx and no lost request");
      assert.ok(okBeforeSigterm > 0, "served before SIGTERM");
      assert.ok(tally.okAfterSigterm > 0, "went on serving after SIGTERM, while the watchdog still sent");
      assert.match(
        reason,
        /health-check interval over/,
        `the watchdog ended its own way, not because the function died first: ${reason}`,
      );
      assert.deepEqual([code, signal], [0, null], watchdog.output());
    } finally {
      stop.now = true;
      await Promise.all(routers);
      if (watchdog.child.exitCode === null) watchdog.child.kill("SIGKILL");
    }
  });

  it("predict behind the watchdog dead-letters malformed JSON as the official connector sends it (application/json, X-Topic)", async () => {
    const broker = await startMosquitto();
    const collector = await Collector.start(broker.url, ["fan/deadletter"]);
    const scorePort = await freePort();
    const score = spawnCli(["function", "score", "--port", String(scorePort)]);
    let watchdog: OfWatchdogStandIn | undefined;
    try {
      await waitUntilReady(`http://127.0.0.1:${scorePort}`, score);
      const port = await freePort();
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TMPDIR: await mkdtemp(join(tmpdir(), "fanwatch-watchdog-")),
        LOG_LEVEL: "silent",
        ...imageEnv("predict"),
        MQTT_URL: broker.url,
        SCORE_URL: `http://127.0.0.1:${scorePort}/`,
        fprocess: `${process.execPath} ${CLI} function predict --port ${port} --host 127.0.0.1`,
        upstream_url: `http://127.0.0.1:${port}`,
        port: String(await freePort()),
      };
      watchdog = await OfWatchdogStandIn.start(env, REPO_ROOT);
      await waitUntilReady(`http://127.0.0.1:${port}`, watchdog.child);
      const payload = '{"deviceID": "official", "rotation": 600,';
      const answer = await fetch(watchdog.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-topic": "fan/messages" },
        body: payload,
      });
      assert.equal(answer.status, 400);
      const [letter] = (await collector.waitFor("fan/deadletter", 1)) as Array<{
        error: string;
        topic: string;
        payload: string;
      }>;
      assert.match(letter?.error ?? "", /request body is not valid JSON/);
      assert.equal(letter?.topic, "fan/messages");
      assert.equal(letter?.payload, payload);
    } finally {
      watchdog?.child.kill("SIGKILL");
      await watchdog?.exited;
      await terminate(score);
      await collector.stop();
      await broker.stop();
    }
  });
});
