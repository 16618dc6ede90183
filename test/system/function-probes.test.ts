import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { imageEnv } from "../support/image-env.js";
import { startMosquitto } from "../support/mosquitto.js";
import { startNats } from "../support/nats.js";
import { OfWatchdogStandIn } from "../support/of-watchdog-stand-in.js";
import { CLI, REPO_ROOT } from "../support/paths.js";
import { freePort, postJson } from "../support/process.js";

// health started behind a stand-in for of-watchdog (named; the Go binary is not built here) with
// the image's settings, polled as OpenFaaS polls a function: the watchdog's /_/health for liveness
// (and, in Community Edition, readiness), its /_/ready for readiness (OpenFaaS Standard, with the
// stack's com.openfaas.ready.http.path). NATS is down when health starts, comes up, and goes away.

interface Probe {
  status: number;
  body: string;
}

async function probe(url: string): Promise<Probe> {
  const answer = await fetch(url).catch(() => undefined);
  return answer === undefined ? { status: 0, body: "refused" } : { status: answer.status, body: await answer.text() };
}

/** What a liveness probe saw from its first 200 on: every answer that was not 200. */
function livenessProbe(url: string): { alive: Promise<void>; failures: Probe[]; stop: () => Promise<void> } {
  const failures: Probe[] = [];
  let running = true;
  let alive!: () => void;
  const first = new Promise<void>((resolve) => (alive = resolve));
  let seenAlive = false;
  const loop = (async () => {
    while (running) {
      const answer = await probe(`${url}/_/health`);
      if (answer.status === 200 && !seenAlive) {
        seenAlive = true;
        alive();
      } else if (answer.status !== 200 && seenAlive) failures.push(answer);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the probe's pace
    }
  })();
  return {
    alive: first,
    failures,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const prediction = () => [{ deviceID: "p1", fault: 0, probability: 0.02, timeStamp: Date.now() }];

describe(
  "a function's liveness and readiness while a dependency is away (health, real NATS and Mosquitto)",
  { timeout: 120_000 },
  () => {
    it("is alive at once with NATS down and stays alive through an outage; only its readiness and its calls say NATS is away", async () => {
      const [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      await nats.halt(); // down before health starts: its address known, nothing listening
      const port = await freePort();
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TMPDIR: await mkdtemp(join(tmpdir(), "fanwatch-watchdog-")),
        LOG_LEVEL: "warn",
        ...imageEnv("health"),
        NATS_URL: nats.url,
        MQTT_URL: broker.url,
        fprocess: `${process.execPath} ${CLI} function health --port ${port} --host 127.0.0.1`,
        upstream_url: `http://127.0.0.1:${port}`,
        port: String(await freePort()),
      };
      delete env.MQTT_USERNAME; // the test broker is anonymous
      delete env.MQTT_PASSWORD_FILE;
      const watchdog = await OfWatchdogStandIn.start(env, REPO_ROOT);
      const liveness = livenessProbe(watchdog.url);
      try {
        await liveness.alive;
        // Alive while NATS is still down: init() did not wait for it.
        const starting = await probe(`${watchdog.url}/_/ready`);
        assert.equal(starting.status, 503, starting.body);
        assert.equal((JSON.parse(starting.body) as { status: string }).status, "waiting");
        assert.match(starting.body, /NATS/, "readiness names what is missing");
        const refused = await postJson(watchdog.url, prediction());
        assert.equal(refused.status, 503, JSON.stringify(refused.body));
        assert.equal((refused.body as { code: string }).code, "FANWATCH_STORE_UNAVAILABLE");

        await nats.restart();
        await eventually(
          "ready once NATS is there",
          async () => (await probe(`${watchdog.url}/_/ready`)).status === 200,
        );
        assert.equal((await postJson(watchdog.url, prediction())).status, 200);

        await nats.halt();
        const away = await eventuallyValue(
          "not ready while NATS is away",
          () => probe(`${watchdog.url}/_/ready`),
          (answer) => answer.status === 503,
        );
        assert.match(away.body, /NATS/);
        const during = await postJson(watchdog.url, prediction());
        assert.equal(during.status, 503, JSON.stringify(during.body));
        assert.equal((during.body as { code: string }).code, "FANWATCH_STORE_UNAVAILABLE");

        await nats.restart();
        await eventually("ready again", async () => (await probe(`${watchdog.url}/_/ready`)).status === 200);
        assert.equal((await postJson(watchdog.url, prediction())).status, 200);
        await liveness.stop();
        assert.deepEqual(liveness.failures, [], "the liveness probe never failed: nothing would have restarted it");
        assert.equal(watchdog.child.exitCode, null, `health never exited:\n${watchdog.output()}`);
      } finally {
        await liveness.stop();
        watchdog.child.kill("SIGKILL");
        await watchdog.exited;
        await Promise.all([nats.stop(), broker.stop()]);
      }
    });
  },
);
