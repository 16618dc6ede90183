import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";

export interface Invocation {
  path: string;
  body: string;
  headers: IncomingHttpHeaders;
  /** What the stand-in answered. */
  status: number;
}

/** The credentials FakeGateway's /system API wants (basic auth), as a connector reads them from its secrets. */
export const FAKE_GATEWAY_USER = "admin";
export const FAKE_GATEWAY_PASSWORD = "s3cret";

/**
 * A stand-in for the OpenFaaS gateway (none runs here): /system/functions behind basic auth,
 * listing `functions`, and /function/<name> and /async-function/<name> that record what they
 * receive and answer what `answer` says (200 with a summary unless told otherwise).
 */
export class FakeGateway {
  readonly invocations: Invocation[] = [];
  systemDown = false;
  functions: Array<{ name: string; annotations?: Record<string, string> }> = [
    { name: "echo", annotations: { topic: "sensors/+/temp, fan/#", "reply-topic": "replies" } },
    { name: "other", annotations: { topic: "elsewhere" } },
    { name: "plain" },
  ];
  /** The answer to an invocation: undefined for the default, "hang" for none at all. */
  answer: (call: Invocation) => { status: number; body: string } | "hang" | undefined = () => undefined;
  /** While set, invocations are answered only once it resolves. */
  hold: Promise<void> | undefined;
  server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const url = req.url ?? "/";
      if (url === "/system/functions") {
        const expected = Buffer.from(`${FAKE_GATEWAY_USER}:${FAKE_GATEWAY_PASSWORD}`).toString("base64");
        if (req.headers.authorization !== `Basic ${expected}`) return void res.writeHead(401).end("unauthorized");
        if (this.systemDown) return void res.writeHead(502).end("bad gateway");
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify(this.functions));
      }
      const call: Invocation = { path: url, body, headers: req.headers, status: 0 };
      this.invocations.push(call);
      void (this.hold ?? Promise.resolve()).then(() => this.#answer(call, res));
    });
  });

  #answer(call: Invocation, res: ServerResponse): void {
    const given = this.answer(call);
    if (given === "hang") return;
    const answer = given ?? {
      status: call.path.startsWith("/async-function/") ? 202 : 200,
      body: JSON.stringify({ ok: true, bytes: call.body.length }),
    };
    call.status = answer.status;
    res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
  }

  async listen(port = 0): Promise<string> {
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Stops listening and cuts the connections it holds (a hanging answer included). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** The messages of every invocation that was answered 2xx, in order. */
  delivered(): unknown[] {
    return this.invocations
      .filter((c) => c.status >= 200 && c.status < 300)
      .flatMap((c) => JSON.parse(c.body) as unknown[]);
  }
}
