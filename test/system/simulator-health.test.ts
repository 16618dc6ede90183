import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { CliProcess } from "../support/cli-process.js";
import { eventually } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { freePort, runCli } from "../support/process.js";

// The simulator's probes (deploy/k3s/simulator): a real `fanwatch simulate` against a real Mosquitto.
describe("fanwatch simulate --health-port: what a pod's probes ask", () => {
  let broker: Broker;
  let simulator: CliProcess;
  let base: string;
  before(async () => {
    broker = await startMosquitto();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    simulator = new CliProcess({
      name: "simulator",
      args: ["simulate", "--broker", broker.url, "--fans", "3", "--interval", "200", "--health-port", String(port)],
      env: { HEALTH_HOST: "127.0.0.1" },
      ready: /\/healthz, \/livez and \/metrics on port \d+/,
    });
    await simulator.start();
  });
  after(async () => {
    await simulator?.close();
    await broker?.stop();
  });

  const status = async (path: string) => (await fetch(`${base}${path}`)).status;

  it("is ready while it publishes, and says how much", async () => {
    await eventually("/healthz says ok with readings sent", async () => {
      const response = await fetch(`${base}/healthz`);
      const body = (await response.json()) as { status: string; published: number; lastSentAt: string | null };
      return response.status === 200 && body.status === "ok" && body.published > 0 && body.lastSentAt !== null;
    });
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^fanwatch_simulator_readings_published [1-9]/m);
  });

  it("is unready but alive while the broker is away, and ready again once it is back", async () => {
    const pid = broker.pid;
    assert.ok(pid !== undefined);
    process.kill(pid, "SIGKILL");
    await eventually("/healthz is 503", async () => (await status("/healthz")) === 503);
    assert.equal(await status("/livez"), 200, "alive: a restart would not bring the broker back");
    await broker.restart();
    await eventually("/healthz is 200 again", async () => (await status("/healthz")) === 200);
  });
});

describe("fanwatch simulate --health-port on a port in use", { timeout: 60_000 }, () => {
  let broker: Broker;
  before(async () => (broker = await startMosquitto()));
  after(async () => broker?.stop());

  it("says which port is taken and exits non-zero, its MQTT client and fans stopped", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as { port: number };
    try {
      // No --duration: only a simulator that cleans up after the failure exits at all.
      const result = await runCli(
        ["simulate", "--broker", broker.url, "--fans", "3", "--interval", "200", "--health-port", String(port)],
        { HEALTH_HOST: "127.0.0.1" },
      );
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`--health-port ${port} is in use.*\\[FANWATCH_PORT_IN_USE\\]`));
      assert.doesNotMatch(result.stderr, /on port \d+/, "never said it serves its probes");
    } finally {
      taken.close();
    }
  });
});
