import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent, createServer, request, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import { BodyAbortedError, BodyTimeoutError, BodyTooLargeError } from "../../lib/errors.js";
import { readBody as libReadBody } from "../../lib/infra/http/body.js";
import { RequestError } from "../../templates/node22-ts/errors.js";
import { readLimitedBody as templateReadBody } from "../../templates/node22-ts/body.js";

type Outcome = { ok: true; body: Buffer } | { ok: false; kind: "too large" | "aborted" | "other"; message: string };

/** A copy of the limited body reader, and how to tell its refusals apart. */
interface Copy {
  read(req: IncomingMessage, limit: number): Promise<Buffer>;
  kind(error: unknown): "too large" | "aborted" | "other";
}

/**
 * One table of cases against both copies of the limited body reader: lib/infra/http/body.ts (every
 * server of ours) and templates/node22-ts/body.ts (the function server, which builds alone).
 */
const COPIES: Record<string, Copy> = {
  "lib/infra/http/body.ts": {
    read: (req, limit) => libReadBody(req, limit, "the test's limit"),
    kind: (error) =>
      error instanceof BodyTooLargeError ? "too large" : error instanceof BodyAbortedError ? "aborted" : "other",
  },
  "templates/node22-ts/body.ts": {
    read: (req, limit) => templateReadBody(req, limit, "MAX_TEST_SIZE"),
    kind: (error) =>
      error instanceof RequestError && error.code === "FANWATCH_TEMPLATE_BODY_TOO_LARGE"
        ? "too large"
        : error instanceof RequestError && error.code === "FANWATCH_TEMPLATE_BODY_ABORTED"
          ? "aborted"
          : "other",
  },
};

const LIMIT = 1024;

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
});

/**
 * A server that reads every body with the copy: 200 with the body's length when it was read, 413
 * or 400 when it was refused. `outcomes` yields what the reader settled with, in order.
 */
async function serve(
  copy: Copy,
): Promise<{ port: number; next: () => Promise<Outcome>; connections: () => number; arrived: () => Promise<void> }> {
  const settled: Outcome[] = [];
  const waiting: Array<(o: Outcome) => void> = [];
  const record = (o: Outcome): void => {
    const waiter = waiting.shift();
    if (waiter === undefined) settled.push(o);
    else waiter(o);
  };
  const server = createServer((req, res) => {
    copy.read(req, LIMIT).then(
      (body) => {
        record({ ok: true, body });
        res.end(`read ${body.length}`);
      },
      (error: unknown) => {
        const kind = copy.kind(error);
        record({ ok: false, kind, message: (error as Error).message });
        if (!res.destroyed) res.writeHead(kind === "too large" ? 413 : 400).end(kind);
      },
    );
  });
  let connections = 0;
  server.on("connection", () => connections++);
  // Resolved when the next request's head has been parsed and its handler runs.
  const arrived = () => once(server, "request").then(() => undefined);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    arrived,
    next: () => {
      const first = settled.shift();
      return first !== undefined ? Promise.resolve(first) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** A raw connection, for bodies sent piece by piece; `text()` is everything the server answered so far. */
async function raw(
  port: number,
): Promise<{ socket: Socket; text: () => string; answers: (n: number) => Promise<void> }> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  let text = "";
  const listeners: Array<() => void> = [];
  socket.on("data", (d: Buffer) => {
    text += d.toString("latin1");
    for (const l of listeners) l();
  });
  socket.on("error", () => {});
  const count = () => text.split("HTTP/1.1 ").length - 1;
  return {
    socket,
    text: () => text,
    // Resolves once n answers (status lines) have arrived.
    answers: (n) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (count() >= n) resolve();
        };
        listeners.push(check);
        check();
      }),
  };
}

const head = (path: string, headers: string[]): string =>
  [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", ...headers, "", ""].join("\r\n");
const chunk = (data: string): string => `${data.length.toString(16)}\r\n${data}\r\n`;

/** A whole request with node:http (on `agent`, kept alive, when given): its status and answer, or the error the client saw. */
function send(
  port: number,
  body: Buffer | Buffer[],
  agent: Agent | false = false,
): Promise<{ status: number; text: string } | Error> {
  return new Promise((resolve) => {
    const req = request({ port, host: "127.0.0.1", method: "POST", path: "/", agent }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      res.on("error", resolve);
    });
    req.on("error", resolve);
    if (Array.isArray(body)) {
      for (const b of body) req.write(b);
      req.end();
    } else req.end(body);
  });
}

for (const [name, copy] of Object.entries(COPIES)) {
  describe(`the limited body reader (${name})`, { timeout: 20_000 }, () => {
    it("reads a body under the limit, declared or streamed, and one of exactly the limit", async () => {
      const { port, next } = await serve(copy);
      const cases: Array<[string, Buffer | Buffer[]]> = [
        ["declared", Buffer.from("x".repeat(100))],
        ["streamed", [Buffer.from("a".repeat(300)), Buffer.from("b".repeat(300))]],
        ["empty", Buffer.alloc(0)],
        ["at the limit, declared", Buffer.alloc(LIMIT, 1)],
        ["at the limit, streamed", [Buffer.alloc(LIMIT - 1, 2), Buffer.alloc(1, 3)]],
      ];
      for (const [what, body] of cases) {
        const expected = Array.isArray(body) ? Buffer.concat(body) : body;
        assert.deepEqual(await send(port, body), { status: 200, text: `read ${expected.length}` }, what);
        const outcome = await next();
        assert.ok(outcome.ok, what);
        assert.ok(outcome.body.equals(expected), what);
      }
    });

    it("refuses a declared Content-Length over the limit before reading a byte, then reads and drops the rest", async () => {
      const { port, next } = await serve(copy);
      const client = await raw(port);
      client.socket.write(head("/", [`Content-Length: ${LIMIT + 1}`]));
      const outcome = await next();
      assert.deepEqual(outcome.ok ? "read" : outcome.kind, "too large");
      await client.answers(1);
      assert.match(client.text(), /^HTTP\/1\.1 413 /, "answered before a byte of the body was sent");
      // The rest arrives and is dropped; the connection is still good for the next request.
      client.socket.write("y".repeat(LIMIT + 1));
      client.socket.write(head("/", ["Content-Length: 2"]) + "ok");
      await client.answers(2);
      assert.match(client.text(), /HTTP\/1\.1 200 [^]*read 2$/);
      assert.equal(((await next()) as { body: Buffer }).body.toString(), "ok");
      client.socket.destroy();
    });

    it("refuses a streamed body as soon as it passes the limit, then reads and drops the rest", async () => {
      const { port, next, arrived } = await serve(copy);
      const client = await raw(port);
      const reading = arrived();
      client.socket.write(head("/", ["Transfer-Encoding: chunked"]) + chunk("z".repeat(LIMIT)));
      await reading;
      client.socket.write(chunk("z")); // one byte over, and the body is not finished
      const outcome = await next();
      assert.deepEqual(outcome.ok ? "read" : outcome.kind, "too large");
      await client.answers(1);
      assert.match(client.text(), /^HTTP\/1\.1 413 /, "answered before the body ended");
      client.socket.write(chunk("z".repeat(5000)) + "0\r\n\r\n");
      client.socket.write(head("/", ["Content-Length: 2"]) + "ok");
      await client.answers(2);
      assert.match(client.text(), /HTTP\/1\.1 200 [^]*read 2$/);
      assert.equal(((await next()) as { body: Buffer }).body.toString(), "ok");
      client.socket.destroy();
    });

    it("lets a client still sending a large body read the refusal, and keeps its connection alive", async () => {
      const { port, next, connections } = await serve(copy);
      const big = Buffer.alloc(4 * 1024 * 1024, 7);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        assert.deepEqual(await send(port, big, agent), { status: 413, text: "too large" }, "declared");
        assert.deepEqual(
          await send(port, [big.subarray(0, 1000), big.subarray(1000)], agent),
          { status: 413, text: "too large" },
          "streamed",
        );
        assert.deepEqual(await send(port, Buffer.from("ok"), agent), { status: 200, text: "read 2" });
        assert.equal(connections(), 1, "the refused bodies were read to their end, so the connection stayed good");
        // A client that asked for its connection to be closed gets the refusal too.
        assert.deepEqual(await send(port, big), { status: 413, text: "too large" });
      } finally {
        agent.destroy();
      }
      const read = [];
      for (let i = 0; i < 4; i++) {
        const outcome = await next();
        read.push(outcome.ok ? "read" : outcome.kind);
      }
      assert.deepEqual(read, ["too large", "too large", "read", "too large"]);
    });

    it("settles with a clear error when the client leaves mid-body, declared or streamed", async () => {
      const { port, next, arrived } = await serve(copy);
      for (const start of [
        head("/", ["Content-Length: 100"]) + "only ten b",
        head("/", ["Transfer-Encoding: chunked"]) + chunk("only ten b"),
      ]) {
        const client = await raw(port);
        const reading = arrived();
        client.socket.write(start);
        await reading; // the reader has started: leaving now is leaving mid-body
        client.socket.destroy();
        const outcome = await next();
        assert.equal(outcome.ok ? "read" : outcome.kind, "aborted");
        assert.match((outcome as { message: string }).message, /before (it sent|sending) the whole body/);
      }
    });
  });
}

describe("the limited body reader's deadline (lib/infra/http/body.ts only: the watchdog's read_timeout is the function's)", () => {
  it("refuses a body that has not ended within the deadline and closes its connection", async () => {
    const results: unknown[] = [];
    const server = createServer((req, res) => {
      libReadBody(req, LIMIT, "the test's limit", 50).then(
        (b) => res.end(String(b.length)),
        (error: unknown) => results.push(error),
      );
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    servers.push(server);
    const client = await raw((server.address() as AddressInfo).port);
    client.socket.write(head("/", ["Content-Length: 100"]) + "slow");
    await once(client.socket, "close");
    assert.ok(results[0] instanceof BodyTimeoutError);
    assert.match((results[0] as Error).message, /did not arrive within 0.05 s/);
  });
});
