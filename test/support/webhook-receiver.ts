import { createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { freePort } from "../../lib/infra/net.js";
import { eventuallyValue } from "./eventually.js";

/** One request the receiver got: the exact body bytes as text, the headers, and what it answered (0: held, or cut off). */
export interface ReceivedRequest {
  /** The exact bytes, what the signature covers. */
  raw: Buffer;
  body: string;
  headers: IncomingHttpHeaders;
  status: number;
  /** The body as JSON (what a receiver parses after checking the signature). */
  json: Record<string, unknown>;
  /** When the whole body had arrived: ms since the epoch, to a fraction of a ms (the benchmarks' receipt time). */
  receivedAt: number;
}

/**
 * How the receiver answers: a status (200 by default; 503, 400 to fail), or "hold": the request is
 * kept open, unanswered, until `release()` (a receiver that is slow, or a notifier killed mid-send).
 */
export type ReceiverMode = number | "hold";

/**
 * A real HTTP webhook receiver on a fixed port for the notifier's tests: records every request
 * (body and headers), answers as told, and can be stopped and started again on the same port
 * (a receiver that is down, then back).
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  mode: ReceiverMode = 200;
  readonly #held: Array<{ res: ServerResponse; request: ReceivedRequest }> = [];
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  private constructor(
    readonly port: number,
    readonly path: string,
  ) {}

  /** Listening on a free port of 127.0.0.1; `path` is the URL's path (the notifier's target id depends on the URL). */
  static async start(path = "/hook"): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(await freePort(), path);
    await receiver.listen();
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}${this.path}`;
  }

  get running(): boolean {
    return this.#server !== undefined;
  }

  /** The requests answered 2xx: what the receiver took. */
  get delivered(): ReceivedRequest[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  /** The distinct X-Fanwatch-Delivery ids of the requests taken, in the order first taken. */
  get deliveryIds(): string[] {
    return [...new Set(this.delivered.map((r) => String(r.headers["x-fanwatch-delivery"])))];
  }

  /** Starts listening (again) on its port. */
  async listen(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const receivedAt = performance.timeOrigin + performance.now();
        const raw = Buffer.concat(chunks);
        const body = raw.toString("utf8");
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          // kept as text; a test asserting on it fails with the body in view
        }
        const request: ReceivedRequest = { raw, body, headers: req.headers, status: 0, json, receivedAt };
        this.requests.push(request);
        if (this.mode === "hold") {
          this.#held.push({ res, request });
          return;
        }
        request.status = this.mode;
        res.writeHead(this.mode, { "content-type": "text/plain" }).end(this.mode < 300 ? "ok" : "refused by the test");
      });
    });
    server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    server.listen(this.port, "127.0.0.1");
    await once(server, "listening");
    this.#server = server;
  }

  /** Answers every held request with `status`, and from now on answers as `mode` says. */
  release(status = 200, mode: ReceiverMode = 200): void {
    this.mode = mode;
    for (const { res, request } of this.#held.splice(0)) {
      request.status = status;
      res.writeHead(status).end();
    }
  }

  /** Stops listening and cuts every connection, held requests too (as a receiver that went down). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.#held.splice(0);
    const closed = once(server, "close");
    server.close();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /** Resolves with the requests once `count` requests have been taken (2xx). */
  waitForDelivered(count: number, timeoutMs = 30_000): Promise<ReceivedRequest[]> {
    return eventuallyValue(
      `${count} webhook deliveries at ${this.url}`,
      () => this.delivered,
      (taken) => taken.length >= count,
      timeoutMs,
    );
  }

  /** Resolves once `count` requests arrived, whatever they were answered. */
  waitForRequests(count: number, timeoutMs = 30_000): Promise<ReceivedRequest[]> {
    return eventuallyValue(
      `${count} webhook requests at ${this.url}`,
      () => this.requests,
      (got) => got.length >= count,
      timeoutMs,
    );
  }
}

/** True when X-Fanwatch-Signature is the HMAC-SHA256 of the exact body with `secret`, as a receiver checks it. */
export function validSignature(request: ReceivedRequest, secret: string): boolean {
  const header = request.headers["x-fanwatch-signature"];
  if (typeof header !== "string" || !header.startsWith("sha256=")) return false;
  const expected = createHmac("sha256", secret).update(request.raw).digest();
  const given = Buffer.from(header.slice("sha256=".length), "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
