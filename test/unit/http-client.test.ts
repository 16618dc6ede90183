import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { after, describe, it } from "node:test";
import { HttpClient, HttpTimeoutError } from "../../lib/infra/http/client.js";
import { isRetryable } from "../../lib/infra/retry.js";

/**
 * A throwaway self-signed certificate for 127.0.0.1 (P-256, valid until 2126) and its key, for
 * these tests only: made once with `openssl req -x509 -newkey ec … -subj /CN=127.0.0.1 -addext
 * subjectAltName=IP:127.0.0.1`, so that the test runs no process.
 */
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIURDGMDH0Z/aUFwqY2Gr4vHGS3rmEwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNzAzMDIwMloYDzIxMjYxMTEz
MDMwMjAyWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATDrLIAQsPgvmbnVqvRYUWdUBLo15lQ82SPdpFGVMLlrbhLD1AlAZC7
DssBklvfaxTmrL+BNeGLYLPQUuZWtm0/o2QwYjAdBgNVHQ4EFgQUdHZZSQJk6IBO
Q19fyL+6OOoPLWswHwYDVR0jBBgwFoAUdHZZSQJk6IBOQ19fyL+6OOoPLWswDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC
IBhi2ZS4zWhHGDZZLTP1hQ/2BLH/lONbwo1CoyA8v/GhAiEAwMKz+qKv3xkIe0TZ
Rnv2zQOet0KyLMkyft3+2u298wc=
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgH3+ii6+TdmVZPx8c
sj4ksZNo55/xF9EU6n0tGwN1kYShRANCAATDrLIAQsPgvmbnVqvRYUWdUBLo15lQ
82SPdpFGVMLlrbhLD1AlAZC7DssBklvfaxTmrL+BNeGLYLPQUuZWtm0/
-----END PRIVATE KEY-----
`;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** An in-process server that records each request and answers it with `answer`, and counts connections. */
async function serve(
  answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end("ok"),
  tls = false,
): Promise<{ url: string; seen: Seen[]; connections: () => number; server: Server }> {
  const seen: Seen[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      answer(req, res);
    });
  };
  const server: Server = tls ? createTlsServer({ cert: TEST_CERT, key: TEST_KEY }, handler) : createServer(handler);
  let connections = 0;
  server.on(tls ? "secureConnection" : "connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${port}`, seen, connections: () => connections, server };
}

const servers: Server[] = [];
const clients: HttpClient[] = [];
function client(...args: ConstructorParameters<typeof HttpClient>): HttpClient {
  const made = new HttpClient(...args);
  clients.push(made);
  return made;
}
after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
});

describe("the one HTTP client (lib/infra/http/client.ts)", () => {
  it("sends a path below the base URL's own path, with headers and a body of known length, and reads the answer", async () => {
    const { url, seen } = await serve((_req, res) => res.writeHead(201).end("created é"));
    const answer = await client({ baseUrl: `${url}/prefix/` }).request({
      method: "POST",
      path: "/function/predict",
      headers: { "content-type": "application/json", "x-topic": "fan/messages" },
      body: '{"a":"é"}',
      timeoutMs: 5_000,
    });
    assert.deepEqual(answer, { status: 201, body: "created é" });
    assert.equal(seen[0]?.url, "/prefix/function/predict");
    assert.equal(seen[0]?.headers["x-topic"], "fan/messages");
    assert.equal(seen[0]?.headers["content-length"], String(Buffer.byteLength('{"a":"é"}')));
    assert.equal(seen[0]?.headers["transfer-encoding"], undefined);
    assert.equal(seen[0]?.body, '{"a":"é"}');
  });

  it("answers every status as is, and takes whole URLs (with their query) to any origin", async () => {
    const a = await serve((_req, res) => res.writeHead(503).end("busy"));
    const b = await serve((_req, res) => res.writeHead(404).end("no such thing"));
    const http = client();
    assert.deepEqual(await http.request({ method: "GET", url: `${a.url}/x?q=1`, timeoutMs: 5_000 }), {
      status: 503,
      body: "busy",
    });
    assert.deepEqual(await http.request({ method: "GET", url: new URL(`${b.url}/y`), timeoutMs: 5_000 }), {
      status: 404,
      body: "no such thing",
    });
    assert.equal(a.seen[0]?.url, "/x?q=1");
    await assert.rejects(
      http.request({ method: "GET", path: "/z", timeoutMs: 5_000 }),
      /needs a client with a baseUrl/,
    );
  });

  it("keeps connections alive: one connection for requests one after another", async () => {
    const { url, connections } = await serve();
    const http = client({ baseUrl: url, maxSockets: 4 });
    for (let i = 0; i < 5; i++) await http.request({ method: "POST", path: "/", body: "x", timeoutMs: 5_000 });
    assert.equal(connections(), 1);
  });

  it("opens at most maxSockets connections to an origin", async () => {
    const { url, connections } = await serve((_req, res) => setTimeout(() => res.end("ok"), 20));
    const http = client({ baseUrl: url, maxSockets: 2 });
    await Promise.all(Array.from({ length: 6 }, () => http.request({ method: "GET", path: "/", timeoutMs: 5_000 })));
    assert.equal(connections(), 2);
  });

  it("gives up after timeoutMs with a retryable HttpTimeoutError, and the next request still works", async () => {
    const { url } = await serve((req, res) => {
      if (req.url === "/slow") setTimeout(() => res.end("late"), 2_000);
      else res.end("quick");
    });
    const http = client({ baseUrl: url });
    const started = Date.now();
    const error: unknown = await http.request({ method: "GET", path: "/slow", timeoutMs: 50 }).catch((e: unknown) => e);
    assert.ok(error instanceof HttpTimeoutError);
    assert.equal(error.message, "no complete answer within 50 ms");
    assert.equal(error.name, "TimeoutError");
    assert.ok(isRetryable(error));
    assert.ok(Date.now() - started < 1_000);
    assert.deepEqual(await http.request({ method: "GET", path: "/", timeoutMs: 5_000 }), {
      status: 200,
      body: "quick",
    });
  });

  it("stops when the signal aborts and rethrows its reason; sends nothing when it had aborted already", async () => {
    const { url, seen } = await serve((_req, res) => setTimeout(() => res.end("late"), 2_000));
    const http = client({ baseUrl: url });
    const stop = new AbortController();
    const reason = new Error("the caller stopped");
    const pending = http.request({ method: "GET", path: "/", timeoutMs: 5_000, signal: stop.signal });
    setTimeout(() => stop.abort(reason), 20);
    await assert.rejects(pending, (error) => error === reason);
    const before = seen.length;
    await assert.rejects(
      http.request({ method: "GET", path: "/", timeoutMs: 5_000, signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(seen.length, before, "nothing was sent");
  });

  it("refuses an answer over maxAnswerBytes rather than buffering it", async () => {
    const { url } = await serve((_req, res) => {
      res.write("x".repeat(1000));
      res.end("x".repeat(1000));
    });
    await assert.rejects(
      client({ baseUrl: url, maxAnswerBytes: 1500 }).request({ method: "GET", path: "/", timeoutMs: 5_000 }),
      /the answer is larger than 1500 bytes/,
    );
    assert.equal(
      (await client({ baseUrl: url, maxAnswerBytes: 2000 }).request({ method: "GET", path: "/", timeoutMs: 5_000 }))
        .body.length,
      2000,
    );
  });

  it("fails when the server goes away mid-answer, and when nothing listens", async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setTimeout(() => (res.socket as Socket).destroy(), 10);
    });
    await assert.rejects(client({ baseUrl: url }).request({ method: "GET", path: "/", timeoutMs: 5_000 }));
    const gone = await serve();
    await new Promise<void>((resolve) => gone.server.close(() => resolve()));
    const error: unknown = await client({ baseUrl: gone.url })
      .request({ method: "GET", path: "/", timeoutMs: 5_000 })
      .catch((e: unknown) => e);
    assert.match((error as Error).message, /ECONNREFUSED/);
    assert.ok(isRetryable(error));
  });

  it("speaks https, verifying the server's certificate", async () => {
    const { url, connections } = await serve((_req, res) => res.end("secure"), true);
    const trusting = client({ baseUrl: url, ca: TEST_CERT });
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await trusting.request({ method: "GET", path: "/", timeoutMs: 5_000 }), {
        status: 200,
        body: "secure",
      });
    assert.equal(connections(), 1, "kept alive over TLS too");
    const error: unknown = await client({ baseUrl: url })
      .request({ method: "GET", path: "/", timeoutMs: 5_000 })
      .catch((e: unknown) => e);
    assert.equal((error as { code?: unknown }).code, "DEPTH_ZERO_SELF_SIGNED_CERT");
  });

  it("closes its connections on close(), and a later request opens a new one", async () => {
    const { url, connections } = await serve();
    const http = client({ baseUrl: url });
    await http.request({ method: "GET", path: "/", timeoutMs: 5_000 });
    http.close();
    await http.request({ method: "GET", path: "/", timeoutMs: 5_000 });
    assert.equal(connections(), 2);
  });
});
