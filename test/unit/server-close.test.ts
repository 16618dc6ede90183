import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, request, type Server, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { serverCloser as libCloser } from "../../lib/infra/http/close.js";
import { serverCloser as templateCloser } from "../../templates/node22-ts/close.js";
import { eventually } from "../support/eventually.js";

/**
 * One table of cases against both copies of the close policy: lib/infra/http/close.ts (every
 * server of ours) and templates/node22-ts/close.ts (the function server, which builds alone).
 */
const COPIES = { "lib/infra/http/close.ts": libCloser, "templates/node22-ts/close.ts": templateCloser };

/** A server whose /slow answers only when the test says. */
async function server(closer: typeof libCloser) {
  const slow: ServerResponse[] = [];
  const srv: Server = createServer((req, res) => {
    if (req.url === "/slow") slow.push(res);
    else res.end("quick");
  });
  const closing = closer(srv);
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { srv, closing, slow, port: (srv.address() as AddressInfo).port };
}

function get(port: number, path: string): Promise<{ status: number; body: string } | Error> {
  return new Promise((resolve) => {
    const req = request({ port, host: "127.0.0.1", path, agent: false }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", resolve);
    });
    req.on("error", resolve);
    req.end();
  });
}

for (const [copy, closer] of Object.entries(COPIES)) {
  describe(`the close policy (${copy})`, () => {
    it("closes a connection that never sent a request at once, without waiting for the deadline", async () => {
      const { closing, port } = await server(closer);
      const idle = connect(port, "127.0.0.1");
      await once(idle, "connect");
      const ended = once(idle, "close");
      const started = Date.now();
      await closing.close(60_000);
      await ended;
      assert.ok(Date.now() - started < 30_000, "closed long before the 60 s deadline");
    });

    it("lets a request in flight finish within the deadline, then closes its connection", async () => {
      const { closing, slow, port } = await server(closer);
      const answer = get(port, "/slow");
      await eventually("the slow request reached the server", () => slow.length > 0);
      const closed = closing.close(60_000);
      slow[0]?.end("finished");
      assert.deepEqual(await answer, { status: 200, body: "finished" });
      await closed;
    });

    it("cuts a request off at the deadline", async () => {
      const { closing, slow, port } = await server(closer);
      const answer = get(port, "/slow");
      await eventually("the slow request reached the server", () => slow.length > 0);
      await closing.close(10);
      assert.ok((await answer) instanceof Error, "the client saw its connection closed");
    });

    it("is safe to repeat, and closes a server that is not listening", async () => {
      const { closing } = await server(closer);
      await Promise.all([closing.close(), closing.close()]);
      await closing.close();
      const never = closer(createServer());
      await never.close();
    });
  });
}
