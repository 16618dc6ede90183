import http from "node:http";
import https from "node:https";

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface HttpRequest {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
  /** The whole exchange, from sending to the last byte of the answer. */
  timeoutMs: number;
}

/** Answers longer than this are cut off with an error rather than buffered without bound. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * Keep-alive HTTP(S) client for the gateway, on node:http. The connector sends one POST per batch
 * and reads /system/functions now and then; undici would do the same but adds about 14 MB of
 * resident memory to a process that should stay under 100 MB.
 */
export class GatewayClient {
  readonly #base: URL;
  readonly #agent: http.Agent;
  readonly #transport: typeof http | typeof https;

  constructor(baseUrl: string, maxSockets: number) {
    this.#base = new URL(baseUrl);
    this.#transport = this.#base.protocol === "https:" ? https : http;
    this.#agent = new this.#transport.Agent({
      keepAlive: true,
      maxSockets,
      maxFreeSockets: maxSockets,
      timeout: 30_000,
    });
  }

  request(options: HttpRequest): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const url = new URL(this.#base.pathname.replace(/\/$/, "") + options.path, this.#base);
      const req = this.#transport.request(
        url,
        { method: options.method, headers: options.headers, agent: this.#agent },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on("end", () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
          });
          res.on("error", fail);
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`no complete answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      function fail(error: Error): void {
        clearTimeout(timer);
        reject(error);
      }
      req.on("error", fail);
      req.end(options.body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
