import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { HEALTH_HOST_SETTING, startHealthServer } from "../../lib/infra/health-server.js";
import { readSettings } from "../../lib/infra/settings.js";

/** Status of GET /healthz at `host`, or the connection error's code. */
async function probe(host: string, port: number): Promise<number | string> {
  try {
    return (await fetch(`http://${host}:${port}/healthz`)).status;
  } catch (error) {
    return String((error as { cause?: { code?: string } }).cause?.code);
  }
}

describe("health server", () => {
  it("listens only on the host it is given", async () => {
    // Two addresses of this machine (all of 127.0.0.0/8 is loopback), each server on one of them.
    const first = await startHealthServer(
      { port: 0, host: "127.0.0.1" },
      () => ({ healthy: true, details: {} }),
      new Registry(),
    );
    const second = await startHealthServer(
      { port: 0, host: "127.0.0.2" },
      () => ({ healthy: false, details: { why: "test" } }),
      new Registry(),
    );
    try {
      assert.deepEqual(
        [await probe("127.0.0.1", first.port), await probe("127.0.0.2", first.port)],
        [200, "ECONNREFUSED"],
      );
      assert.deepEqual(
        [await probe("127.0.0.1", second.port), await probe("127.0.0.2", second.port)],
        ["ECONNREFUSED", 503],
      );
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("answers /livez while unhealthy, so that a liveness probe does not restart a service that is waiting out an outage", async () => {
    const server = await startHealthServer(
      { port: 0, host: "127.0.0.1" },
      () => ({ healthy: false, details: { problems: ["predict is failing"] } }),
      new Registry(),
    );
    try {
      assert.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status, 503);
      assert.equal((await fetch(`http://127.0.0.1:${server.port}/livez`)).status, 200);
    } finally {
      await server.close();
    }
  });

  // The timeout only detects a hang: close() used to wait for the browser, forever.
  it(
    "closes at once with connections open: one kept alive after an answer, one that has sent nothing yet (a browser's spare connection)",
    { timeout: 20_000 },
    async () => {
      const server = await startHealthServer(
        { port: 0, host: "127.0.0.1" },
        () => ({ healthy: true, details: {} }),
        new Registry(),
      );
      const keptAlive = connect(server.port, "127.0.0.1");
      keptAlive.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await once(keptAlive, "data");
      const spare = connect(server.port, "127.0.0.1");
      await once(spare, "connect");
      const closed = [once(keptAlive, "close"), once(spare, "close")];
      await server.close();
      // Both were closed by the server: neither client closed its side.
      await Promise.all(closed);
    },
  );

  it("reads HEALTH_HOST, 0.0.0.0 by default for probes from outside a pod", () => {
    const host = (env: NodeJS.ProcessEnv) => readSettings({ HEALTH_HOST: HEALTH_HOST_SETTING }, env).HEALTH_HOST;
    assert.equal(host({}), "0.0.0.0");
    assert.equal(host({ HEALTH_HOST: "127.0.0.1" }), "127.0.0.1");
  });
});
