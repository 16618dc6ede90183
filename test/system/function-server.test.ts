import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { errorAnswer, InputError } from "../../lib/errors.js";
import { startFunctionServer, type FunctionServer } from "../../templates/node22-ts/server.js";
import type { FunctionModule } from "../../templates/node22-ts/types.js";
import { freePort } from "../support/process.js";
import { eventually, eventuallyValue } from "../support/eventually.js";

/** What /echo answers. */
interface Echo {
  method: string;
  body: unknown;
  query: Record<string, string>;
  isBuffer: boolean;
}
/** A JSON error answer: the message, and a code and field when the error has them. */
interface ErrorAnswer {
  error: string;
  code?: string;
  field?: string;
}

// A handler exercising every way the official node template's contract can answer.
let releaseSlow: () => void = () => {};
/** Called when a /slow request reaches the handler. */
let slowStarted: () => void = () => {};
const lifecycle: string[] = [];
const fn: FunctionModule = {
  init: () => void lifecycle.push("init"),
  close: () => void lifecycle.push("close"),
  metrics: () => "# HELP toy_total A toy counter\n# TYPE toy_total counter\ntoy_total 3\n",
  handler: async (event, context) => {
    switch (event.path) {
      case "/echo":
        return { method: event.method, body: event.body, query: event.query, isBuffer: Buffer.isBuffer(event.body) };
      case "/text":
        return "plain words";
      case "/throw":
        throw new Error("database unreachable");
      case "/bad-input":
        throw new InputError("rotation must be a number", "rotation");
      case "/library-error":
        throw Object.assign(new Error("not found upstream"), { status: 404, field: "id" });
      case "/fail":
        context.fail({ error: "custom failure", code: "E_CUSTOM" });
        return undefined;
      case "/succeed":
        context.status(201).headers({ "x-made": "yes" }).succeed({ ok: true });
        return { ignored: true };
      case "/slow":
        slowStarted();
        await new Promise<void>((resolve) => (releaseSlow = resolve));
        return { slow: "done" };
      default:
        return { path: event.path };
    }
  },
  errorAnswer,
};

describe("node22-ts function server", () => {
  let server: FunctionServer;
  before(async () => {
    server = await startFunctionServer(fn, {
      port: 0,
      host: "127.0.0.1",
      maxJsonSize: 1024,
      maxRawSize: 2048,
      name: "toy",
    });
  });
  after(() => server.close());

  const request = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(`${server.url}${path}`, init);
    const text = await response.text();
    return {
      status: response.status,
      type: response.headers.get("content-type") ?? "",
      text,
      headers: response.headers,
    };
  };
  /** The JSON a request answered, as the test expects it to be; the assertions check it. */
  const answer = <T>(r: { text: string }) => JSON.parse(r.text) as T;
  const json = (body: unknown) => ({
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

  it("runs init before listening", () => assert.deepEqual(lifecycle, ["init"]));

  it("sends objects as JSON with a JSON content type (the official template sends text/html)", async () => {
    const r = await request("/echo?x=1", json({ a: 1 }));
    assert.equal(r.status, 200);
    assert.match(r.type, /^application\/json/);
    assert.deepEqual(JSON.parse(r.text), { method: "POST", body: { a: 1 }, query: { x: "1" }, isBuffer: false });
  });

  it("hands text bodies over as strings and other bodies as Buffers", async () => {
    const text = await request("/echo", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: '{"params":[1]}',
    });
    assert.equal(answer<Echo>(text).body, '{"params":[1]}');
    const raw = await request("/echo", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array([1, 2]),
    });
    assert.equal(answer<Echo>(raw).isBuffer, true);
  });

  it("sends strings as text/plain", async () => {
    const r = await request("/text");
    assert.equal(r.text, "plain words");
    assert.match(r.type, /^text\/plain/);
  });

  it("answers a thrown error with 500 and a JSON body (the official template answers 200)", async () => {
    const r = await request("/throw");
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.text), { error: "database unreachable" });
  });

  it("answers an input error with its status, code and field (the module's errorAnswer)", async () => {
    const r = await request("/bad-input");
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.text), {
      error: "rotation must be a number",
      code: "FANWATCH_INPUT_INVALID",
      field: "rotation",
    });
  });

  it("answers 500 to another error, whatever `status` or `field` it carries", async () => {
    const r = await request("/library-error");
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.text), { error: "not found upstream" });
  });

  it("sends fail({...}) as JSON, not [object Object]", async () => {
    const r = await request("/fail");
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.text), { error: "custom failure", code: "E_CUSTOM" });
  });

  it("honours status, headers and succeed()", async () => {
    const r = await request("/succeed");
    assert.equal(r.status, 201);
    assert.equal(r.headers.get("x-made"), "yes");
    assert.deepEqual(JSON.parse(r.text), { ok: true });
  });

  it("rejects malformed JSON, an empty JSON body, bytes that are not UTF-8, prototype keys and oversized bodies with clear JSON errors", async () => {
    const malformed = await request("/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"a":',
    });
    assert.equal(malformed.status, 400);
    const malformedAnswer = answer<ErrorAnswer>(malformed);
    assert.match(malformedAnswer.error, /not valid JSON/);
    assert.deepEqual([malformedAnswer.code, malformedAnswer.field], ["FANWATCH_TEMPLATE_BODY_INVALID", "body"]);
    const empty = await request("/echo", { method: "POST", headers: { "content-type": "application/json" }, body: "" });
    assert.equal(empty.status, 400);
    assert.match(answer<ErrorAnswer>(empty).error, /empty/);
    const proto = await request("/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"__proto__":{"polluted":true}}',
    });
    assert.equal(proto.status, 400);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // {"deviceID":"<0xff>"}: a lossy decode would pass it on as "\uFFFD".
    const notUtf8 = await request("/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: Buffer.concat([Buffer.from('{"deviceID":"'), Buffer.from([0xff]), Buffer.from('"}')]),
    });
    assert.equal(notUtf8.status, 400);
    assert.match(answer<ErrorAnswer>(notUtf8).error, /not valid UTF-8/);
    const huge = await request("/echo", json({ data: "x".repeat(5000) }));
    assert.equal(huge.status, 413);
    const hugeAnswer = answer<ErrorAnswer>(huge);
    assert.match(hugeAnswer.error, /too large/);
    assert.equal(hugeAnswer.code, "FANWATCH_TEMPLATE_BODY_TOO_LARGE");
  });

  it("serves health and Prometheus metrics including the function's own", async () => {
    assert.equal((await request("/_/health")).status, 200);
    const metrics = await request("/_/metrics");
    assert.match(metrics.text, /function_requests_total\{code="200",function_name="toy"\} \d+/);
    assert.match(metrics.text, /toy_total 3/);
  });

  it("finishes in-flight requests on drain, then runs the module's close()", async () => {
    const own = await startFunctionServer(fn, { port: 0, host: "127.0.0.1" });
    const slowArrived = new Promise<void>((resolve) => (slowStarted = resolve));
    const inFlight = fetch(`${own.url}/slow`).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as unknown,
    }));
    await slowArrived; // in flight
    const draining = own.drain();
    releaseSlow();
    assert.deepEqual(await inFlight, { status: 200, body: { slow: "done" } });
    await draining;
    assert.equal(lifecycle.at(-1), "close");
    assert.equal(await own.closed, undefined);
    await assert.rejects(fetch(`${own.url}/echo`));
  });

  it("on close, abandons the requests in flight at once and runs the module's close()", async () => {
    const own = await startFunctionServer(fn, { port: 0, host: "127.0.0.1" });
    const slowArrived = new Promise<void>((resolve) => (slowStarted = resolve));
    const inFlight = fetch(`${own.url}/slow`);
    await slowArrived;
    await own.close();
    await assert.rejects(inFlight, "the client sees its connection closed");
    assert.equal(lifecycle.at(-1), "close");
    releaseSlow();
  });

  it("hands a module that exports rawBody = true every body as the bytes sent, malformed JSON included", async () => {
    const raw = await startFunctionServer(
      {
        rawBody: true,
        handler: (event) => ({
          isBuffer: Buffer.isBuffer(event.body),
          text: Buffer.isBuffer(event.body) ? event.body.toString() : null,
        }),
      },
      { port: 0, host: "127.0.0.1" },
    );
    try {
      for (const type of ["application/json", "text/plain", "application/octet-stream"]) {
        const response = await fetch(raw.url, { method: "POST", headers: { "content-type": type }, body: '{"a":' });
        assert.equal(response.status, 200, type);
        assert.deepEqual(await response.json(), { isBuffer: true, text: '{"a":' }, type);
      }
    } finally {
      await raw.close();
    }
  });
});

describe("node22-ts function server start and stop", () => {
  it("listens before init() has finished: /_/ready answers 503 and requests wait for init(), then are answered", async () => {
    let finishInit: () => void = () => {};
    const initDone = new Promise<void>((resolve) => (finishInit = resolve));
    const port = await freePort();
    const starting = startFunctionServer(
      { init: () => initDone, handler: () => ({ served: true }) },
      { port, host: "127.0.0.1" },
    );
    const url = `http://127.0.0.1:${port}`;
    let ready = await untilListening(url);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: "starting" });
    const held = fetch(url, { method: "POST" }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as unknown,
    }));
    ready = await fetch(`${url}/_/ready`);
    assert.equal(ready.status, 503, "still starting while a request waits");
    finishInit();
    assert.deepEqual(await held, { status: 200, body: { served: true } });
    const server = await starting;
    assert.equal((await fetch(`${url}/_/ready`)).status, 200);
    await server.close();
  });

  it("rejects and stops listening when init() fails", async () => {
    let failInit: (error: Error) => void = () => {};
    const initFailed = new Promise<void>((_resolve, reject) => (failInit = reject));
    const port = await freePort();
    const starting = startFunctionServer(
      { init: () => initFailed, handler: () => ({ served: true }) },
      { port, host: "127.0.0.1" },
    );
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await untilListening(url)).status, 503);
    failInit(new Error("model missing"));
    await assert.rejects(starting, /model missing/);
    await assert.rejects(fetch(url), "no longer listening");
  });

  it("writes its readyFile (the watchdog's lock file) only once init() has finished, replacing a stale one, and removes it on close()", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-lock-"));
    const lock = join(dir, ".lock");
    await writeFile(lock, ""); // left by an earlier run of the container
    let finishInit: () => void = () => {};
    const initDone = new Promise<void>((resolve) => (finishInit = resolve));
    const port = await freePort();
    const starting = startFunctionServer(
      { init: () => initDone, handler: () => ({ served: true }) },
      { port, host: "127.0.0.1", readyFile: lock },
    );
    assert.equal((await untilListening(`http://127.0.0.1:${port}`)).status, 503);
    assert.equal(existsSync(lock), false, "not ready yet: the watchdog's /_/health must say 503");
    finishInit();
    const server = await starting;
    assert.equal(existsSync(lock), true, "ready: the lock file is there");
    await server.close();
    assert.equal(existsSync(lock), false);
    await rm(dir, { recursive: true });
  });

  it("stays alive while its module waits for a dependency: /_/ready 503 naming it, /_/health 200, the lock file kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-lock-"));
    const lock = join(dir, ".lock");
    let missing: string[] = ["NATS"];
    const server = await startFunctionServer(
      { handler: () => ({ served: true }), waitingFor: () => missing },
      { port: 0, host: "127.0.0.1", readyFile: lock },
    );
    const waiting = await fetch(`${server.url}/_/ready`);
    assert.equal(waiting.status, 503);
    assert.deepEqual(await waiting.json(), { status: "waiting", waitingFor: ["NATS"] });
    assert.equal((await fetch(`${server.url}/_/health`)).status, 200, "alive");
    assert.equal(existsSync(lock), true, "the watchdog's /_/health (liveness) says alive too");
    missing = [];
    const ready = await fetch(`${server.url}/_/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: "ok" });
    await server.close();
    await rm(dir, { recursive: true });
  });

  it("with keepServingMs, goes on serving after drain() (answering /_/ready 503), then drains and runs close()", async () => {
    const events: string[] = [];
    const server = await startFunctionServer(
      { handler: () => ({ served: true }), close: () => void events.push("close") },
      { port: 0, host: "127.0.0.1", keepServingMs: 2000 },
    );
    const closing = server.drain().then(() => events.push("closed"));
    const ready = await fetch(`${server.url}/_/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: "closing" });
    const answer = await fetch(server.url, { method: "POST" });
    assert.equal(answer.status, 200, "still served: behind the watchdog requests keep coming");
    assert.deepEqual(events, [], "drain() waits");
    await closing;
    assert.deepEqual(events, ["close", "closed"]);
    await assert.rejects(fetch(server.url));
  });
});

/** GET /_/ready once the server accepts connections (it listens before init() has finished). */
function untilListening(url: string): Promise<Response> {
  return eventuallyValue(
    `${url} to accept connections`,
    () => fetch(`${url}/_/ready`),
    () => true,
    { paceMs: 5 },
  );
}

describe("node22-ts function server: who may call it", () => {
  const echo: FunctionModule = { handler: (event) => ({ body: event.body }) };
  /** A POST with exactly these headers (fetch would add its own). */
  const post = async (
    url: string,
    headers: Record<string, string>,
    body = '{"deviceID":"1","action":"acknowledge","by":"evil-page"}',
  ) => {
    const { request } = await import("node:http");
    return new Promise<{ status: number; body: { code?: string; error?: string } }>((resolve, reject) => {
      const req = request(
        url,
        { method: "POST", headers: { "content-length": String(Buffer.byteLength(body)), ...headers } },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code?: string } }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  };
  const evil = { origin: "http://evil.example", "sec-fetch-site": "cross-site", "content-type": "text/plain" };

  it("run by hand, refuses what another site's page makes a browser send, and serves curl and its own origin", async () => {
    const server = await startFunctionServer(echo, { port: 0, host: "127.0.0.1", name: "guarded" });
    try {
      const refused = await post(server.url, evil);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.code, "FANWATCH_TEMPLATE_CROSS_SITE");
      assert.equal(
        (
          await post(server.url, {
            "content-type": "text/plain",
            "sec-fetch-site": "same-site",
            origin: "http://127.0.0.1:1",
          })
        ).status,
        403,
      );
      assert.equal((await post(server.url, { "content-type": "text/plain" })).status, 200, "curl sends no Origin");
      const own = new URL(server.url).host;
      assert.equal(
        (
          await post(server.url, {
            "content-type": "text/plain",
            origin: `http://${own}`,
            "sec-fetch-site": "same-origin",
          })
        ).status,
        200,
      );
    } finally {
      await server.close();
    }
  });

  it("started by a runner with a token, answers only calls that carry it; the probes stay open", async () => {
    const server = await startFunctionServer(echo, {
      port: 0,
      host: "127.0.0.1",
      name: "behind-gateway",
      callerToken: "run-token",
    });
    try {
      const attempts: Array<Record<string, string>> = [
        evil,
        { "content-type": "text/plain" },
        { "content-type": "text/plain", "x-fanwatch-caller": "guess" },
      ];
      for (const headers of attempts) {
        const refused = await post(server.url, headers);
        assert.equal(refused.status, 403, JSON.stringify(headers));
        assert.equal(refused.body.code, "FANWATCH_TEMPLATE_CALLER_REFUSED");
      }
      assert.equal(
        (await post(server.url, { "content-type": "text/plain", "x-fanwatch-caller": "run-token" })).status,
        200,
      );
      assert.equal((await fetch(`${server.url}/_/ready`)).status, 200);
    } finally {
      await server.close();
    }
  });

  it("logs a client that leaves mid-body at info level, without a stack", async () => {
    const lines: string[] = [];
    const { pino } = await import("pino");
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    const server = await startFunctionServer(echo, { port: 0, host: "127.0.0.1", name: "aborted", logger });
    try {
      const { request } = await import("node:http");
      const req = request(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      req.on("error", () => {});
      req.write('{"params": [' + "1,".repeat(10_000));
      await new Promise((resolve) => setTimeout(resolve, 100)); // paces the client: it has sent part of the body
      req.destroy();
      await eventually("the client_aborted event", () => lines.some((line) => line.includes('"client_aborted"')));
      const event = JSON.parse(lines.find((line) => line.includes('"client_aborted"')) ?? "{}") as {
        level: number;
        err?: unknown;
      };
      assert.equal(event.level, 30, "info");
      assert.equal(event.err, undefined, "no error with a stack");
      assert.ok(!lines.some((line) => line.includes("handler threw")));
    } finally {
      await server.close();
    }
  });
});
