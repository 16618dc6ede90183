import assert from "node:assert/strict";
import { execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { checkCallbackUrl } from "../../runtime/gateway/guards.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { REPO_ROOT } from "../support/paths.js";
import { finished, freePort, spawnCli, waitForOutput, type Finished } from "../support/process.js";

const SCORE_BODY = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] });

/** A server on loopback that records what is posted to it and answers with `answer`. */
async function receiver(
  answer: (req: IncomingMessage, res: import("node:http").ServerResponse) => void = (_req, res) => res.end(),
): Promise<{ url: string; hits: string[]; server: Server }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      hits.push(`${req.method} ${req.url}`);
      answer(req, res);
    });
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, server };
}

/** Sends exactly these headers (fetch adds its own Sec-Fetch and Origin rules). */
function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("fanwatch gateway against a real Mosquitto", { timeout: 120_000 }, () => {
  let broker: Broker;
  let child: ChildProcessWithoutNullStreams;
  let exit: Promise<Finished>;
  let gateway: string;
  let output = "";

  before(async () => {
    broker = await startMosquitto();
    const port = await freePort();
    gateway = `http://127.0.0.1:${port}`;
    child = spawnCli(["gateway", "--port", String(port)], {
      MQTT_URL: broker.url,
      GATEWAY_MAX_ASYNC_PENDING: "2",
      LOG_LEVEL: "warn",
    });
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    exit = finished(child);
    await waitForOutput(child, /gateway running on/, 60_000);
  });
  after(async () => {
    if (child?.exitCode === null) child.kill("SIGKILL");
    await broker?.stop();
  });

  it("says where it listens and the /system credentials, and runs every function of stack.yml", async () => {
    assert.match(output, new RegExp(`gateway on ${gateway} \\(/system/\\* user admin, password \\S+\\)`));
    assert.match(output, new RegExp(`functions publish to ${broker.url.replace(/[.]/g, "\\.")}`));
    const password = /password (\S+)\)/.exec(output)?.[1] ?? "";
    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}` };
    const functions = (await (await fetch(`${gateway}/system/functions`, { headers: auth })).json()) as Array<{
      name: string;
      availableReplicas: number;
    }>;
    assert.deepEqual(functions.map((f) => [f.name, f.availableReplicas]).sort(), [
      ["health", 1],
      ["predict", 1],
      ["score", 1],
    ]);
    const score = await send(`${gateway}/function/score`, "POST", { "content-type": "application/json" }, SCORE_BODY);
    assert.equal(score.status, 200, score.body);
    assert.equal((JSON.parse(score.body) as { fault: number }).fault, 0);
  });

  it("refuses what another site's page makes a browser send, and serves curl and its own page", async () => {
    const host = new URL(gateway).host;
    const browsers: Array<Record<string, string>> = [
      { origin: "http://evil.example" },
      { origin: "null" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site", origin: "http://127.0.0.1:3000" },
    ];
    for (const headers of browsers) {
      const refused = await send(`${gateway}/function/score`, "POST", headers, SCORE_BODY);
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.match(refused.body, /cross-site request refused/);
    }
    assert.equal(
      (await send(`${gateway}/async-function/score`, "POST", { origin: "http://evil.example" }, SCORE_BODY)).status,
      403,
    );
    assert.equal((await send(`${gateway}/system/functions`, "DELETE", { "sec-fetch-site": "cross-site" })).status, 403);
    // DNS rebinding: another site's name now resolving to this machine; the browser calls it same-origin.
    const port = new URL(gateway).port;
    const rebound = {
      host: `rebound.example:${port}`,
      origin: `http://rebound.example:${port}`,
      "sec-fetch-site": "same-origin",
    };
    // Refused by the Host check before the cross-site one looks (test/system/gateway-guards.test.ts).
    assert.equal(
      (await send(`${gateway}/function/score`, "POST", rebound, SCORE_BODY)).status,
      421,
      "a page on a rebound name",
    );
    // Its own origin, and clients that are not browsers (no Origin), are served.
    assert.equal(
      (
        await send(
          `${gateway}/function/score`,
          "POST",
          { origin: `http://${host}`, "sec-fetch-site": "same-origin" },
          SCORE_BODY,
        )
      ).status,
      200,
    );
    assert.equal((await send(`${gateway}/function/score`, "POST", {}, SCORE_BODY)).status, 200);
    // Another site may link to the health page (a GET outside the functions).
    assert.equal((await send(`${gateway}/healthz`, "GET", { "sec-fetch-site": "cross-site" })).status, 200);
    // fanwatch gateway serves no page; under fanwatch start another site may not open its event stream.
    assert.equal((await send(`${gateway}/ui/events`, "GET", { origin: "http://evil.example" })).status, 403);
  });

  it("is the only way to its functions: a call straight to a function's own port is refused, a browser's and curl's alike", async () => {
    const args = execFileSync("ps", ["-o", "args=", "--ppid", String(child.pid)], { encoding: "utf8" });
    const health = /function health --port (\d+)/.exec(args)?.[1];
    assert.ok(health !== undefined, args);
    const ack = JSON.stringify({ deviceID: "1", action: "acknowledge", by: "evil-page" });
    const browser = { origin: "http://evil.example", "sec-fetch-site": "cross-site", "content-type": "text/plain" };
    for (const headers of [browser, { "content-type": "application/json" }]) {
      const refused = await send(`http://127.0.0.1:${health}/`, "POST", headers, ack);
      assert.equal(refused.status, 403, refused.body);
      assert.equal((JSON.parse(refused.body) as { code: string }).code, "FANWATCH_TEMPLATE_CALLER_REFUSED");
    }
    // Through the gateway the same call reaches health (which knows no fan 1 yet: 404, its own answer).
    const through = await send(`${gateway}/function/health`, "POST", { "content-type": "application/json" }, ack);
    assert.equal(through.status, 404, through.body);
    assert.equal((JSON.parse(through.body) as { code: string }).code, "FANWATCH_HEALTH_NOT_FOUND");
  });

  it("answers every error of its own with a code from docs/errors.md", async () => {
    const documented = readFileSync(join(REPO_ROOT, "docs/errors.md"), "utf8");
    const password = /password (\S+)\)/.exec(output)?.[1] ?? "";
    const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}` };
    const answers = {
      FANWATCH_UNAUTHORIZED: await send(`${gateway}/system/functions`, "GET", {}),
      FANWATCH_NOT_FOUND: await send(`${gateway}/function/nope`, "POST", {}, SCORE_BODY),
      FANWATCH_BODY_TOO_LARGE: await send(`${gateway}/function/score`, "POST", {}, "x".repeat(2 * 1024 * 1024)),
      FANWATCH_METHOD_NOT_ALLOWED: await send(`${gateway}/async-function/score`, "GET", {}),
      FANWATCH_NOT_IMPLEMENTED: await send(`${gateway}/system/functions`, "DELETE", auth),
      FANWATCH_CROSS_SITE: await send(
        `${gateway}/function/score`,
        "POST",
        { origin: "http://evil.example" },
        SCORE_BODY,
      ),
    };
    for (const [code, answer] of Object.entries(answers)) {
      const body = JSON.parse(answer.body) as { code?: string; error?: string };
      assert.equal(body.code, code, `${answer.status} ${answer.body}`);
      assert.ok(typeof body.error === "string" && body.error !== "", code);
      assert.ok(documented.includes(`| \`${code}\` |`), `${code} is in docs/errors.md`);
    }
  });

  it("refuses a callback address with a user name or password, and never writes it down", async () => {
    const refused = await send(
      `${gateway}/async-function/score`,
      "POST",
      { "x-callback-url": "http://user:s3cret-pw@127.0.0.1:9/done" },
      SCORE_BODY,
    );
    assert.equal(refused.status, 400);
    assert.match(refused.body, /may not carry a user name or password/);
    assert.doesNotMatch(output, /s3cret-pw/);
  });

  it("posts async results only to loopback, refuses other callbacks with 400, and follows no redirect", async () => {
    const refused = await send(
      `${gateway}/async-function/score`,
      "POST",
      { "x-callback-url": "http://169.254.169.254/latest/meta-data" },
      SCORE_BODY,
    );
    assert.equal(refused.status, 400);
    assert.match(
      refused.body,
      /X-Callback-Url host 169\.254\.169\.254 is not this machine's loopback; list it in CALLBACK_ALLOWED_HOSTS/,
    );
    assert.equal(
      (await send(`${gateway}/async-function/score`, "POST", { "x-callback-url": "file:///etc/passwd" }, SCORE_BODY))
        .status,
      400,
    );

    const elsewhere = await receiver();
    const redirecting = await receiver((_req, res) =>
      res.writeHead(307, { location: `${elsewhere.url}/stolen` }).end(),
    );
    const accepted = await send(
      `${gateway}/async-function/score`,
      "POST",
      { "x-callback-url": `${redirecting.url}/done` },
      SCORE_BODY,
    );
    assert.equal(accepted.status, 202);
    // The gateway takes the 307 as the callback's answer and says so; it never asks the other address.
    const logged = new RegExp(
      `"event":"callback_failed".*"status":307.*the callback ${redirecting.url}/done answered 307`,
    );
    await eventually("the gateway to log the callback's 307", () => logged.test(output));
    assert.deepEqual(redirecting.hits, ["POST /done"]);
    assert.deepEqual(elsewhere.hits, []);
    elsewhere.server.close();
    redirecting.server.close();
  });

  it("gives no place to bodies that never end: a complete call is accepted while they are held, and they are cut off", async () => {
    // Never-ending chunked bodies, more of them than GATEWAY_MAX_ASYNC_PENDING=2 places.
    const held = [1, 2, 3].map(() => {
      const req = request(`${gateway}/async-function/score`, {
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      req.on("error", () => {});
      req.write('{"params":');
      return new Promise<number>((resolve) => {
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("close", () => resolve(0));
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 200)); // paces the test: the three bodies are being read
    const complete = await send(`${gateway}/async-function/score`, "POST", {}, SCORE_BODY);
    assert.equal(complete.status, 202, complete.body);
    // After the body deadline (10 s) each stalled client is answered 408 or cut off.
    for (const status of await Promise.all(held)) assert.ok(status === 408 || status === 0, String(status));
  });

  it("refuses an async body over 1 MiB with 413 and the limit, and a third waiting call with 429", async () => {
    const big = await send(`${gateway}/async-function/score`, "POST", {}, "x".repeat(2 * 1024 * 1024));
    assert.equal(big.status, 413);
    assert.match(big.body, /the limit is 1048576 bytes \(GATEWAY_MAX_ASYNC_BODY\)/);
    // Two calls whose callbacks never answer hold the two places GATEWAY_MAX_ASYNC_PENDING=2 gives.
    const stuck = await receiver(() => {});
    for (const n of [1, 2])
      assert.equal(
        (await send(`${gateway}/async-function/score`, "POST", { "x-callback-url": `${stuck.url}/${n}` }, SCORE_BODY))
          .status,
        202,
      );
    await eventually("both callbacks to reach the receiver", () => stuck.hits.length >= 2);
    const third = await send(`${gateway}/async-function/score`, "POST", {}, SCORE_BODY);
    assert.equal(third.status, 429);
    assert.match(third.body, /2 async calls are waiting already \(GATEWAY_MAX_ASYNC_PENDING\)/);
    // Once the callbacks fail (their receiver is gone), the places are free again.
    stuck.server.closeAllConnections();
    stuck.server.close();
    const again = await eventuallyValue(
      "a place free again",
      () => send(`${gateway}/async-function/score`, "POST", {}, SCORE_BODY),
      (answer) => answer.status !== 429,
    );
    assert.equal(again.status, 202, again.body);
  });

  it("takes a function down and back up through the scale API (replicas 0, then 1), and refuses a count above scale.max", async () => {
    const password = /password (\S+)\)/.exec(output)?.[1] ?? "";
    const auth = {
      authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`,
      "content-type": "application/json",
    };
    const scale = (replicas: number, headers: Record<string, string> = auth) =>
      send(
        `${gateway}/system/scale-function/score`,
        "POST",
        headers,
        JSON.stringify({ serviceName: "score", replicas }),
      );
    const replicasOfScore = async () => {
      const { replicas, availableReplicas } = (await (
        await fetch(`${gateway}/system/function/score`, { headers: auth })
      ).json()) as { replicas: number; availableReplicas: number };
      return { replicas, availableReplicas };
    };
    assert.equal((await scale(0, {})).status, 401);
    const other = await send(
      `${gateway}/system/scale-function/score`,
      "POST",
      auth,
      JSON.stringify({ serviceName: "predict", replicas: 2 }),
    );
    assert.equal(other.status, 400, "the body names another function than the path");
    assert.match((JSON.parse(other.body) as { error: string }).error, /the body names "predict"/);
    assert.deepEqual(await replicasOfScore(), { replicas: 1, availableReplicas: 1 });
    const tooMany = await scale(6);
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body, /between com\.openfaas\.scale\.min 1 and com\.openfaas\.scale\.max 5, not 6/);
    assert.equal((await scale(0)).status, 202);
    assert.deepEqual(await replicasOfScore(), { replicas: 0, availableReplicas: 0 });
    const down = await send(`${gateway}/function/score`, "POST", {}, SCORE_BODY);
    assert.equal(down.status, 502);
    assert.match(down.body, /score is not reachable \(scaled to 0\)/);
    assert.equal((JSON.parse(down.body) as { code: string }).code, "FANWATCH_FUNCTION_UNAVAILABLE");
    assert.equal((await scale(1)).status, 202);
    assert.deepEqual(await replicasOfScore(), { replicas: 1, availableReplicas: 1 });
    assert.equal((await send(`${gateway}/function/score`, "POST", {}, SCORE_BODY)).status, 200);
    assert.equal((await scale(1)).status, 202, "scaling a running function to 1 changes nothing");
    assert.equal((await send(`${gateway}/function/score`, "POST", {}, SCORE_BODY)).status, 200);
  });

  it("stops on SIGTERM with exit code 0 and frees its port", async () => {
    child.kill("SIGTERM");
    const { code } = await exit;
    assert.equal(code, 0, output);
    assert.match(output, /stopped/);
    await assert.rejects(fetch(`${gateway}/healthz`));
  });
});

describe("fanwatch gateway killed outright", { timeout: 120_000 }, () => {
  it("takes its functions with it: none is left running without a gateway", async () => {
    const broker = await startMosquitto();
    const port = await freePort();
    const child = spawnCli(["gateway", "--port", String(port)], { MQTT_URL: broker.url, LOG_LEVEL: "warn" });
    try {
      await waitForOutput(child, /gateway running on/, 60_000);
      const functions = execFileSync("ps", ["-o", "pid=", "--ppid", String(child.pid)], { encoding: "utf8" })
        .split("\n")
        .map(Number)
        .filter((pid) => pid > 0);
      assert.equal(functions.length, 3, "score, predict and health run as the gateway's children");
      child.kill("SIGKILL");
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      await eventuallyValue(
        "every function to stop after its gateway was killed",
        () => functions.filter(alive),
        (running) => running.length === 0,
        { timeoutMs: 30_000, paceMs: 100 },
      );
    } finally {
      child.kill("SIGKILL");
      await broker.stop();
    }
  });
});

describe("which callbacks the gateway may post to", () => {
  it("allows loopback, and other hosts only when CALLBACK_ALLOWED_HOSTS lists them", () => {
    for (const url of ["http://127.0.0.1:9000/x", "http://127.8.0.1/x", "http://localhost:1/x", "https://[::1]:8443/x"])
      assert.ok("url" in checkCallbackUrl(url, []), url);
    assert.ok("error" in checkCallbackUrl("http://receiver.plant:8080/x", []));
    assert.ok("url" in checkCallbackUrl("http://receiver.plant:8080/x", ["receiver.plant"]));
    assert.ok("url" in checkCallbackUrl("http://receiver.plant:8080/x", ["receiver.plant:8080"]));
    assert.ok("error" in checkCallbackUrl("http://receiver.plant:9090/x", ["receiver.plant:8080"]));
    assert.ok("error" in checkCallbackUrl("http://127.0.0.1.evil.example/x", []));
    assert.ok("error" in checkCallbackUrl("not a url", []));
    assert.ok(
      "error" in checkCallbackUrl("http://127.0.0.1:8086/query?q=DROP%20DATABASE%20fan", []),
      "a query string could drive a local service",
    );
    assert.ok("url" in checkCallbackUrl("http://127.0.0.1:8086/query?q=x", ["127.0.0.1:8086"]));
  });
});
