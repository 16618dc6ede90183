import http from "node:http";
import https from "node:https";

/** A whole answer: its status and its body as UTF-8 text. */
export interface HttpAnswer {
  status: number;
  body: string;
}

interface RequestBase {
  /** DELETE for APIs that end a thing by it (Alertmanager's silences). */
  method: "GET" | "POST" | "DELETE";
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** The whole exchange, from sending to the last byte of the answer. */
  timeoutMs: number;
  /** Ends the exchange at once; the request then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/**
 * One request: `path` is appended to the client's base URL (its own path kept, as a gateway
 * behind a prefix needs); `url` is a whole address, for clients that talk to several.
 */
export type HttpRequest = RequestBase & ({ path: string; url?: never } | { url: string | URL; path?: never });

export interface HttpClientOptions {
  /** What `path` requests are relative to. */
  baseUrl?: string;
  /** Connections per origin at most; more requests wait for one. @default Infinity (Node's) */
  maxSockets?: number;
  /** How long an idle kept-alive connection stays open, unless the server's keep-alive hint says less. @default 30000 */
  idleTimeoutMs?: number;
  /** Answers longer than this fail rather than being buffered without bound. @default 16 MiB */
  maxAnswerBytes?: number;
  /** Certificates to trust for https instead of Node's (a private CA); NODE_EXTRA_CA_CERTS adds to Node's for a whole process. */
  ca?: string | Buffer;
}

/** The exchange did not end within its `timeoutMs`. Named as AbortSignal.timeout's, which isRetryable knows. */
export class HttpTimeoutError extends Error {
  override readonly name = "TimeoutError";
  constructor(readonly timeoutMs: number) {
    super(`no complete answer within ${timeoutMs} ms`);
  }
}

export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * The one HTTP client of fanwatch: node:http(s) with a keep-alive agent per origin, a deadline on
 * the whole exchange, a cap on the answer's size, and abort by signal. On node:http rather than
 * undici because the connector must stay under 100 MB resident and undici alone adds about 14 MB
 * to a process; at one request per batch (connector → gateway, predict → score, writer → InfluxDB)
 * the per-request cost of node:http does not show. Node's agent follows the server's keep-alive
 * hint, so a request rarely meets a connection the server closed while it was idle.
 */
export class HttpClient {
  readonly #base: URL | undefined;
  /** The base URL's path without its trailing slash, made once: requests add theirs to it. */
  readonly #basePath: string;
  readonly #agents = new Map<string, http.Agent>();
  readonly #maxSockets: number;
  readonly #idleTimeoutMs: number;
  readonly #maxAnswerBytes: number;
  readonly #ca: string | Buffer | undefined;

  constructor(options: HttpClientOptions = {}) {
    this.#base = options.baseUrl === undefined ? undefined : new URL(options.baseUrl);
    this.#basePath = this.#base?.pathname.replace(/\/$/, "") ?? "";
    this.#maxSockets = options.maxSockets ?? Infinity;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
    this.#ca = options.ca;
  }

  /**
   * Sends the request and reads the whole answer, whatever its status. Rejects with an
   * HttpTimeoutError after `timeoutMs`, with the signal's reason when `signal` aborts (already
   * aborted: nothing is sent), and with Node's error when the connection fails or breaks off.
   */
  async request(options: HttpRequest): Promise<HttpAnswer> {
    const { signal } = options;
    signal?.throwIfAborted();
    const url = this.#url(options);
    const secure = url.protocol === "https:";
    const transport = secure ? https : http;
    const agent = this.#agent(url.origin, secure);
    const maxBytes = this.#maxAnswerBytes;
    return new Promise<HttpAnswer>((resolve, reject) => {
      let settled = false;
      const settle = (then: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        then();
      };
      // Settle first, then destroy: the errors destroying raises are then no one's to hear.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an abort rejects with the signal's own reason, whatever it is
      const fail = (error: unknown): void => settle(() => reject(error));
      const stop = (error: unknown): void => {
        fail(error);
        req.destroy();
      };
      const onAbort = (): void => stop(signal?.reason);
      const req = transport.request(url, { method: options.method, headers: options.headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > maxBytes) stop(new Error(`the answer is larger than ${maxBytes} bytes`));
          else chunks.push(chunk);
        });
        res.on("end", () =>
          settle(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks, bytes).toString("utf8") })),
        );
        res.on("error", fail);
        // After "end" this does nothing; before it, the server went away mid-answer.
        res.on("close", () => fail(new Error("the connection closed before the whole answer arrived")));
      });
      const timer = setTimeout(() => stop(new HttpTimeoutError(options.timeoutMs)), options.timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("error", fail);
      req.end(options.body);
    });
  }

  /**
   * Ends every connection, those of requests in flight too (they fail): call it once the work is
   * done. A request made afterwards opens a new connection.
   */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  #url(options: HttpRequest): URL {
    if (options.url !== undefined) return options.url instanceof URL ? options.url : new URL(options.url);
    if (this.#base === undefined) throw new TypeError("a request by path needs a client with a baseUrl");
    return new URL(this.#basePath + options.path, this.#base);
  }

  #agent(origin: string, secure: boolean): http.Agent {
    let agent = this.#agents.get(origin);
    if (agent === undefined) {
      const settings = {
        keepAlive: true,
        maxSockets: this.#maxSockets,
        maxFreeSockets: this.#maxSockets === Infinity ? 256 : this.#maxSockets,
        timeout: this.#idleTimeoutMs,
      };
      agent = secure
        ? new https.Agent(this.#ca === undefined ? settings : { ...settings, ca: this.#ca })
        : new http.Agent(settings);
      this.#agents.set(origin, agent);
    }
    return agent;
  }
}
