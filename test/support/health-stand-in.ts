import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { USER_HEADER, verifyUser, type SignedUser } from "../../lib/infra/signed-user.js";

/** One call the stand-in received: its method, path with query, body, and the user its header names. */
export interface HealthCall {
  method: string;
  url: string;
  body: unknown;
  /** The verified signed user, or why the header was not believed. */
  user: SignedUser | { error: string };
}

/**
 * A stand-in for the health function, named as such: it checks the page's signed user header as
 * health does (verifyUser with the shared secret; an action without a valid one gets 401),
 * records every call, and answers an action `{record, transition}` naming who acted.
 */
export class HealthStandIn {
  readonly calls: HealthCall[] = [];
  readonly #server: Server;

  constructor(private readonly secret: string) {
    this.#server = createServer((req, res) => {
      void readAll(req).then((text) => {
        const user = verifyUser(req.headers[USER_HEADER] as string | undefined, this.secret, text);
        let body: unknown;
        try {
          body = text === "" ? null : JSON.parse(text);
        } catch {
          body = text;
        }
        this.calls.push({
          method: req.method ?? "",
          url: req.url ?? "",
          body,
          user: "user" in user ? user.user : user,
        });
        res.setHeader("content-type", "application/json");
        if (req.method === "GET" && req.url === "/function/health") return void res.end('{"fans":[]}');
        if (req.method === "GET") return void res.end(JSON.stringify({ from: "health stand-in", url: req.url }));
        if (!("user" in user))
          return void res.writeHead(401).end(JSON.stringify({ error: user.error, code: "FANWATCH_UNAUTHENTICATED" }));
        const action = body as Record<string, unknown>;
        res.writeHead(200).end(
          JSON.stringify({
            record: { deviceID: action.deviceID },
            transition: { event: action.action, by: user.user.name },
          }),
        );
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/function/health`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
