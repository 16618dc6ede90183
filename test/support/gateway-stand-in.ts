import { once } from "node:events";
import { createServer, type Server, type ServerResponse } from "node:http";

/** A function as the stand-in lists it on /system/functions (OpenFaaS's FunctionStatus fields). */
export interface StandInFunction {
  name: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  replicas?: number;
  availableReplicas?: number;
}

export interface HeldInvocation {
  name: string;
  body: string;
  answer(status: number, body?: string): void;
}

export const STAND_IN_USER = "admin";
export const STAND_IN_PASSWORD = "s3cret";

/**
 * A STAND-IN for an OpenFaaS gateway whose functions' replicas the test sets (no OpenFaaS gateway
 * runs here, and what matters is what the connector does when availableReplicas changes):
 * /system/functions and /system/scale-function/<name> behind basic auth (admin/s3cret),
 * /function/<name> that holds every invocation until the test answers it (or answers 200 at once
 * when `hold` is off), counting the invocations open at once: `peak` is the most seen since the
 * last `resetPeak()`. A scale request is recorded and applied to `replicas` only; the test decides
 * when the replicas become available.
 */
export class GatewayStandIn {
  functions: StandInFunction[] = [];
  readonly open: HeldInvocation[] = [];
  readonly scaleRequests: Array<{ name: string; replicas: number; serviceName: unknown }> = [];
  /** Bodies answered 2xx, in order. */
  readonly delivered: string[] = [];
  hold = true;
  peak = 0;
  /** GET /system/functions answered so far. */
  listings = 0;
  readonly #server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => this.#handle(req.method ?? "GET", req.url ?? "/", req.headers.authorization, body, res));
  });

  async listen(): Promise<string> {
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
    return `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  async close(): Promise<void> {
    for (const held of this.open.splice(0)) held.answer(503, "the stand-in is closing");
    this.#server.closeAllConnections();
    this.#server.close();
  }

  fn(name: string): StandInFunction {
    const found = this.functions.find((f) => f.name === name);
    if (found === undefined) throw new Error(`the stand-in has no function ${name}`);
    return found;
  }

  resetPeak(): void {
    this.peak = this.open.length;
  }

  /** Answers every invocation held now. */
  answerAll(status: number, body = status < 300 ? "{}" : `answered ${status}`): number {
    const held = this.open.splice(0);
    for (const h of held) h.answer(status, body);
    return held.length;
  }

  #handle(method: string, url: string, authorization: string | undefined, body: string, res: ServerResponse): void {
    if (url.startsWith("/system/")) {
      if (authorization !== `Basic ${Buffer.from(`${STAND_IN_USER}:${STAND_IN_PASSWORD}`).toString("base64")}`)
        return void res.writeHead(401).end("unauthorized");
      if (method === "GET" && url === "/system/functions") {
        this.listings++;
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify(this.functions));
      }
      const scale = /^\/system\/scale-function\/([^/?]+)$/.exec(url);
      if (method === "POST" && scale !== null) {
        const name = decodeURIComponent(scale[1] as string);
        const request = JSON.parse(body) as { serviceName?: unknown; replicas: number };
        this.scaleRequests.push({ name, replicas: request.replicas, serviceName: request.serviceName });
        this.fn(name).replicas = request.replicas;
        return void res.writeHead(202).end();
      }
      return void res.writeHead(404).end("not found");
    }
    const name = /^\/function\/([^/?]+)/.exec(url)?.[1] ?? "";
    let answered = false;
    const held: HeldInvocation = {
      name,
      body,
      answer: (status, text = "{}") => {
        if (answered) return;
        answered = true;
        if (status >= 200 && status < 300) this.delivered.push(body);
        res.writeHead(status, { "content-type": "application/json" }).end(text);
      },
    };
    if (!this.hold) return held.answer(200);
    this.open.push(held);
    this.peak = Math.max(this.peak, this.open.length);
  }
}
