import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { eventuallyValue } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET with exactly these headers (fetch would not let a test set Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const code = (answer: Answer) => (JSON.parse(answer.body) as { code?: string }).code;

describe("the local gateway's guards: the Host it answers and failed /system logins", { timeout: 120_000 }, () => {
  let broker: Broker;
  let child: ChildProcessWithoutNullStreams;
  let dir: string;
  let gateway: string;
  let port: number;
  let output = "";
  let right: Record<string, string>;
  const wrong = { authorization: `Basic ${Buffer.from("admin:not-the-password").toString("base64")}` };

  before(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), "fanwatch-guards-"));
    // health alone: the guards are the gateway's, and one function keeps the start short.
    const stack = parse(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8")) as { functions: Record<string, unknown> };
    stack.functions = { health: stack.functions.health };
    writeFileSync(join(dir, "stack.yml"), stringify(stack));
    port = await freePort();
    gateway = `http://127.0.0.1:${port}`;
    child = spawnCli(["gateway", "--port", String(port), "--stack", join(dir, "stack.yml")], {
      MQTT_URL: broker.url,
      GATEWAY_PASSWORD: "the-right-password",
      GATEWAY_HOSTS: "fanwatch.plant.example",
      GATEWAY_LOGIN_FAILURES: "3",
      // Short, so that the test sees the wait end; it only polls for that, it measures nothing.
      GATEWAY_LOGIN_WAIT: "1s",
      GATEWAY_LOGIN_MAX_WAIT: "2s",
      LOG_LEVEL: "warn",
    });
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    await waitForOutput(child, /gateway running on/, 60_000);
    right = { authorization: `Basic ${Buffer.from("admin:the-right-password").toString("base64")}` };
  });
  after(async () => {
    if (child !== undefined) await terminate(child);
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("answers a Host naming another site 421, for the fleet's health and the metrics alike", async () => {
    for (const path of ["/function/health", "/metrics", "/healthz", "/system/functions", "/ui/"])
      for (const host of ["evil.example", `evil.example:${port}`, `127.0.0.1.evil.example:${port}`]) {
        const refused = await get(`${gateway}${path}`, { host, ...right });
        assert.equal(refused.status, 421, `${path} Host ${host}: ${refused.body}`);
        assert.equal(code(refused), "FANWATCH_HOST_REFUSED");
        assert.match(refused.body, /list the name in GATEWAY_HOSTS/);
        assert.doesNotMatch(refused.body, /fault|gateway_function/, "nothing of the fleet or the metrics");
      }
    assert.match(output, /"event":"host_refused"|not a name this server answers for/);
  });

  it("answers loopback names, IP addresses, this machine's name and the names in GATEWAY_HOSTS", async () => {
    const hosts = [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      `192.0.2.10:${port}`, // any address: rebinding needs a name
      `${hostname()}:${port}`,
      `fanwatch.plant.example:${port}`,
      "FANWATCH.plant.example",
    ];
    for (const host of hosts) {
      const health = await get(`${gateway}/function/health`, { host });
      assert.equal(health.status, 200, `Host ${host}: ${health.body}`);
      const metrics = await get(`${gateway}/metrics`, { host });
      assert.equal(metrics.status, 200, `Host ${host}`);
      assert.match(metrics.body, /gateway_service_count/);
    }
  });

  it("lets the page opened by a listed name act: its own origin is not cross-site", async () => {
    const host = `fanwatch.plant.example:${port}`;
    const post = await new Promise<Answer>((resolve, reject) => {
      const body = JSON.stringify({ deviceID: "1", action: "acknowledge", by: "ana" });
      const req = request(
        `${gateway}/function/health`,
        {
          method: "POST",
          headers: {
            host,
            origin: `http://${host}`,
            "sec-fetch-site": "same-origin",
            "content-type": "application/json",
          },
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    // health's own answer (it knows no fan 1), not the gateway's cross-site refusal.
    assert.equal(code(post), "FANWATCH_HEALTH_NOT_FOUND", post.body);
  });

  it("answers an HTTP/1.0 request without a Host (no browser sends one)", async () => {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.end("GET /healthz HTTP/1.0\r\n\r\n");
    let text = "";
    socket.on("data", (d: Buffer) => (text += d.toString()));
    await once(socket, "close");
    assert.match(text, /^HTTP\/1\.[01] 200 /);
  });

  it("throttles failed /system logins per address: 429 with Retry-After, even for the right password, until the wait passes", async () => {
    // Asking without credentials is not a guess (a browser does so before it asks its user).
    for (let i = 0; i < 5; i++) assert.equal((await get(`${gateway}/system/functions`)).status, 401);
    // Below the limit a right password works, and forgets the failures before it.
    for (let i = 0; i < 2; i++) assert.equal((await get(`${gateway}/system/functions`, wrong)).status, 401);
    assert.equal((await get(`${gateway}/system/functions`, right)).status, 200);
    for (let i = 0; i < 3; i++) {
      const refused = await get(`${gateway}/system/functions`, wrong);
      assert.equal(refused.status, 401);
      assert.equal(code(refused), "FANWATCH_UNAUTHORIZED");
    }
    const throttled = await get(`${gateway}/system/functions`, right);
    assert.equal(throttled.status, 429, throttled.body);
    assert.equal(code(throttled), "FANWATCH_TOO_MANY_ATTEMPTS");
    assert.equal(throttled.headers["retry-after"], "1");
    assert.match(throttled.body, /too many failed \/system logins from this address: try again in 1 s/);
    assert.equal((await get(`${gateway}/system/functions`, wrong)).status, 429, "a guess while waiting is not checked");
    // Once the wait has passed, the right password is let in again.
    await eventuallyValue(
      "the right password to be let in once the wait has passed",
      () => get(`${gateway}/system/functions`, right),
      (answer) => answer.status === 200,
    );
    const metrics = (await get(`${gateway}/metrics`)).body;
    assert.match(metrics, /gateway_system_auth_refusals_total\{reason="missing"\} 5\b/);
    assert.match(metrics, /gateway_system_auth_refusals_total\{reason="wrong"\} 5\b/);
    assert.match(metrics, /gateway_system_auth_refusals_total\{reason="throttled"\} [1-9]/);
    assert.match(output, /failed \/system logins from 127\.0\.0\.1: it waits 1 s|"event":"login_throttled"/);
    assert.doesNotMatch(
      output,
      /not-the-password|the-right-password(?!\))/,
      "no password is written down but the one printed",
    );
  });
});
