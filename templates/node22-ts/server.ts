import { rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import bytes from "bytes";
import { pino, type Logger } from "pino";
import { Counter, Registry, collectDefaultMetrics } from "prom-client";
import { readBody, type BodyLimits } from "./body.js";
import { HandlerContext, errorBody, type Outcome } from "./context.js";
import { RequestError, ServerSettingError } from "./errors.js";
import { callerRefusal, crossSiteReason } from "./guard.js";
import { serverCloser } from "./close.js";
import type { FunctionEvent, FunctionModule } from "./types.js";
import { keepServingMs, watchdogLockFile } from "./watchdog.js";

export interface ServerOptions {
  /** @default process.env.http_port ?? 3000 */
  port?: number;
  /** @default "0.0.0.0" (the watchdog proxies to 127.0.0.1, Kubernetes probes come from outside) */
  host?: string;
  /** Largest JSON body in bytes. @default MAX_JSON_SIZE ?? 1 MiB */
  maxJsonSize?: number;
  /** Largest non-JSON body in bytes. @default MAX_RAW_SIZE ?? 1 MiB */
  maxRawSize?: number;
  /** Hand every body to the handler as a Buffer. @default RAW_BODY === "true" */
  rawBody?: boolean;
  /** Name used in logs and metrics. @default "function" */
  name?: string;
  /**
   * How long close() goes on serving, answering GET /_/ready with 503, before it drains: behind
   * of-watchdog, the watchdog's health-check interval plus a margin (watchdog.ts). @default 0
   */
  keepServingMs?: number;
  /**
   * A file written once init() has finished and removed on drain() or close(): behind of-watchdog
   * with `suppress_lock=true`, its lock file, which its /_/health reports and OpenFaaS probes for
   * liveness (watchdog.ts). It says "alive", not "ready": it stays while a dependency is away.
   * @default none
   */
  readyFile?: string | undefined;
  /**
   * The token of the runner that started this function (the local gateway's FANWATCH_CALLER_TOKEN):
   * set, every call but the probes must carry it, so only the runner reaches the function. Unset
   * (by hand, in a container), calls that another site's page made a browser send are refused.
   * @default FANWATCH_CALLER_TOKEN, else none
   */
  callerToken?: string | undefined;
  logger?: Logger;
}

/**
 * The function server as a service, in the shape every long-lived part of fanwatch has (the
 * repository's lib/infra/service.ts; the template builds alone, so the shape is written out here).
 */
export interface FunctionServer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /**
   * Answers /_/ready with 503 at once, goes on serving for `keepServingMs`, then stops taking
   * requests, finishes those in flight (for DRAIN_DEADLINE_MS at most) and runs the module's
   * close(). Safe to repeat.
   */
  drain(): Promise<void>;
  /** Stops at once: connections closed, requests in flight abandoned, then the module's close(). Safe to repeat. */
  close(): Promise<void>;
  /** Resolves once the server has stopped: undefined, or the error the module's close() threw. */
  readonly closed: Promise<Error | undefined>;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * How long drain() lets requests in flight finish before closing their connections: above the
 * functions' own time budgets (stack.yml's exec_timeout), below the 10 s after which the local
 * gateway, or Kubernetes' 30 s grace period, kills the process.
 */
const DRAIN_DEADLINE_MS = 8_000;

/**
 * Reads the official template's environment names (http_port, MAX_JSON_SIZE, MAX_RAW_SIZE,
 * RAW_BODY), and of-watchdog's own settings for how long to keep serving after SIGTERM.
 */
export function serverOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ServerOptions {
  return {
    port: parseInteger(env.http_port, "http_port") ?? 3000,
    maxJsonSize: parseSize(env.MAX_JSON_SIZE, "MAX_JSON_SIZE") ?? DEFAULT_BODY_LIMIT,
    maxRawSize: parseSize(env.MAX_RAW_SIZE, "MAX_RAW_SIZE") ?? DEFAULT_BODY_LIMIT,
    rawBody: env.RAW_BODY === "true",
    keepServingMs: keepServingMs(env),
    readyFile: watchdogLockFile(env),
    callerToken: env.FANWATCH_CALLER_TOKEN === "" ? undefined : env.FANWATCH_CALLER_TOKEN,
  };
}

/**
 * Serves a handler module the way the official node templates do, minus their defects: JSON
 * answers carry a JSON content type, a thrown error is a 500 with a JSON body (or the answer the
 * module's errorAnswer() gives it, such as a 400 for bad input), bodies are size-limited, and
 * drain() finishes the requests in flight before the module's close().
 *
 * It listens before the module has loaded and run init(), so that the time in which a connection
 * is refused is only Node's own start: requests that arrive meanwhile wait for init(), and
 * GET /_/ready answers 503 until it has finished (of-watchdog's `ready_path` points at it), and
 * afterwards while the module's waitingFor() names a dependency that is away. The promise resolves
 * once init() has finished; it rejects, and the server closes, if init() fails.
 *
 * Built on node:http rather than a framework: the function has one route, and at this request
 * size fastify cost about 30% of the throughput in our benchmark (docs/benchmarks.md).
 */
export async function startFunctionServer(
  fn: FunctionModule | Promise<FunctionModule>,
  options: ServerOptions = {},
): Promise<FunctionServer> {
  const host = new FunctionHost(fn, options);
  await host.start();
  return host;
}

/** The server's state from start to close: loading, ready, draining (still serving), closed. */
class FunctionHost implements FunctionServer {
  readonly name: string;
  readonly closed: Promise<Error | undefined>;
  readonly #started = performance.now();
  readonly #log: Logger;
  readonly #options: ServerOptions;
  readonly #limits: BodyLimits;
  readonly #metrics: ServerMetrics;
  readonly #loading: Promise<FunctionModule>;
  readonly #server = createServer((request, response) => this.#handle(request, response));
  readonly #closer = serverCloser(this.#server);
  #ready: FunctionModule | undefined; // set once init() has finished
  #draining: Promise<void> | undefined; // drain() was called: /_/ready answers 503
  #closing: Promise<void> | undefined;
  #refusing = false; // no longer taking requests
  #port = 0;
  #stopKeepServing: (() => void) | undefined;
  #resolveClosed: (error: Error | undefined) => void = () => {};

  constructor(fn: FunctionModule | Promise<FunctionModule>, options: ServerOptions) {
    this.#options = options;
    this.name = options.name ?? "function";
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#log =
      options.logger ??
      pino({
        name: this.name,
        level: process.env.LOG_LEVEL ?? "info",
        base: { service: this.name },
        timestamp: pino.stdTimeFunctions.isoTime,
      });
    this.#limits = {
      maxJsonSize: options.maxJsonSize ?? DEFAULT_BODY_LIMIT,
      maxRawSize: options.maxRawSize ?? DEFAULT_BODY_LIMIT,
      rawBody: options.rawBody === true,
    };
    this.#metrics = createMetrics(this.name);
    this.#loading = Promise.resolve(fn).then(async (module) => {
      await module.init?.();
      return module;
    });
    this.#loading.catch(() => {}); // the failure is reported by start()'s own rejection
  }

  /** The port it listens on (kept after it stopped, for the messages that name it). */
  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens, then waits for init(); resolves once ready, rejects (and closes) if init() fails. */
  async start(): Promise<void> {
    const { readyFile } = this.#options;
    // One left by an earlier run of the container (its /tmp outlives a restart) would say "ready" too soon.
    if (readyFile !== undefined) rmSync(readyFile, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#options.port ?? 3000, this.#options.host ?? "0.0.0.0", () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    try {
      this.#ready = await this.#loading;
      // Unwritable, the watchdog would call the function unhealthy for ever: better to fail at once, saying why.
      if (readyFile !== undefined) writeFileSync(readyFile, "");
    } catch (error) {
      this.#refusing = true; // the requests that waited are answered 503, then their connections close
      await this.#closer.close(0);
      this.#resolveClosed(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    this.#log.info(
      { event: "listening", port: this.port, startupMs: Math.round(performance.now() - this.#started) },
      `${this.name} listening on port ${this.port}`,
    );
  }

  drain(): Promise<void> {
    this.#draining ??= this.#closing ?? this.#drain();
    return this.#draining;
  }

  close(): Promise<void> {
    this.#closing ??= this.#stop(0);
    this.#stopKeepServing?.(); // a drain under way stops serving now
    return this.#closing;
  }

  async #drain(): Promise<void> {
    const { readyFile, keepServingMs = 0 } = this.#options;
    if (readyFile !== undefined) rmSync(readyFile, { force: true });
    if (keepServingMs > 0) {
      this.#log.info(
        { event: "closing", keepServingMs },
        `${this.name} serving for ${keepServingMs} ms more: the watchdog still sends requests until its health-check interval ends`,
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, keepServingMs);
        this.#stopKeepServing = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await (this.#closing ??= this.#stop(DRAIN_DEADLINE_MS));
  }

  async #stop(deadlineMs: number): Promise<void> {
    const { readyFile } = this.#options;
    if (readyFile !== undefined) rmSync(readyFile, { force: true });
    this.#refusing = true;
    await this.#closer.close(deadlineMs);
    let failure: Error | undefined;
    try {
      await this.#ready?.close?.();
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      this.#log.info({ event: "closed" }, `${this.name} stopped`);
      this.#resolveClosed(failure);
    }
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    if (this.#refusing) response.setHeader("connection", "close");
    this.#route(request, response).catch((error: unknown) => {
      this.#log.error({ err: error }, "request failed");
      if (!response.headersSent) send(response, 500, {}, { error: "internal error" });
      else response.destroy();
    });
  }

  async #route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const [path = "/", search = ""] = (request.url ?? "/").split("?", 2);
    if (request.method === "GET" && (await this.#probe(path, response))) return;
    const refused = this.#refusal(request);
    if (refused !== undefined) {
      this.#log.warn({ event: "call_refused", code: refused.code, method: request.method, path }, refused.message);
      request.resume(); // the body is not wanted; reading it lets the client see the answer
      return send(response, refused.status, {}, { error: refused.message, code: refused.code, field: refused.field });
    }
    let module: FunctionModule;
    try {
      module = this.#ready ?? (await this.#loading);
    } catch {
      return send(response, 503, {}, { error: `${this.name} failed to start` });
    }
    const start = performance.now();
    const outcome = await invoke(module, request, path, search, this.#limits, this.#log);
    this.#metrics.observe(outcome.status, (performance.now() - start) / 1000);
    send(response, outcome.status, outcome.headers, outcome.body);
  }

  /**
   * Behind a runner, a call without its token; otherwise, a call another site's page made a
   * browser send (a runner's calls were already judged so by the runner).
   */
  #refusal(request: IncomingMessage): RequestError | undefined {
    const token = this.#options.callerToken;
    if (token !== undefined) {
      const reason = callerRefusal(request.headers, token);
      return reason === undefined
        ? undefined
        : new RequestError("FANWATCH_TEMPLATE_CALLER_REFUSED", `call refused: ${reason}`);
    }
    const reason = crossSiteReason(request.headers);
    if (reason === undefined) return undefined;
    return new RequestError(
      "FANWATCH_TEMPLATE_CROSS_SITE",
      `cross-site request refused (${reason}): a function answers clients that are not browsers, and pages of its own origin`,
    );
  }

  /** What /_/ready says: closing, starting, waiting (naming what for) or ok. */
  #readiness(): { status: "closing" | "starting" | "waiting" | "ok"; waitingFor?: readonly string[] } {
    if (this.#draining !== undefined || this.#closing !== undefined) return { status: "closing" };
    if (this.#ready === undefined) return { status: "starting" };
    const waitingFor = this.#ready.waitingFor?.() ?? [];
    return waitingFor.length > 0 ? { status: "waiting", waitingFor } : { status: "ok" };
  }

  /**
   * Answers the watchdog's paths; false for any other path. /_/health is liveness: 200 while the
   * process serves, whatever its dependencies do. /_/ready is readiness: 503 while starting, while a
   * dependency the module names in waitingFor() is away, and from drain() on.
   */
  async #probe(path: string, response: ServerResponse): Promise<boolean> {
    if (path === "/_/health") {
      send(response, this.#refusing ? 503 : 200, {}, { status: this.#refusing ? "closing" : "ok" });
    } else if (path === "/_/ready") {
      const readiness = this.#readiness();
      send(response, readiness.status === "ok" ? 200 : 503, {}, readiness);
    } else if (path === "/_/metrics") {
      const own = this.#ready?.metrics === undefined ? "" : await this.#ready.metrics();
      send(
        response,
        200,
        { "content-type": this.#metrics.registry.contentType },
        (await this.#metrics.registry.metrics()) + own,
      );
    } else {
      return false;
    }
    return true;
  }
}

async function invoke(
  fn: FunctionModule,
  request: IncomingMessage,
  path: string,
  search: string,
  limits: BodyLimits,
  log: Logger,
): Promise<Outcome> {
  const context = new HandlerContext();
  try {
    const event: FunctionEvent = {
      body: await readBody(request, limits, fn.rawBody !== true),
      headers: request.headers,
      method: request.method ?? "GET",
      query: parseQuery(search),
      path,
    };
    // The answer is whichever comes first: context.succeed()/fail() or the returned value.
    return await new Promise<Outcome>((resolve, reject) => {
      context.onSettled(resolve);
      Promise.resolve(fn.handler(event, context)).then(
        (value) => resolve({ status: context.status(), headers: context.headers(), body: value }),
        reject,
      );
    });
  } catch (error) {
    const outcome = thrownOutcome(error, fn, context);
    if (error instanceof RequestError && error.code === "FANWATCH_TEMPLATE_BODY_ABORTED") {
      log.info({ event: "client_aborted", path }, error.message); // the client's doing: no stack
    } else if (outcome.status >= 500 && outcome.known) {
      // An answer the module chose (a store that is down: 503): an outage, not a bug, so no stack.
      log.warn({ event: "answered_error", status: outcome.status, path, err: messageOf(error) }, messageOf(error));
    } else if (outcome.status >= 500) log.error({ err: error, path }, "handler threw");
    return outcome;
  }
}

/**
 * The answer to a thrown error: the template's own RequestError, else what the module's
 * errorAnswer() makes of it, else a 500 with `{"error": message}`. Nothing is read off an unknown
 * error's properties: a library's error that happens to carry a `status` is still a 500.
 */
function thrownOutcome(error: unknown, fn: FunctionModule, context: HandlerContext): Outcome & { known: boolean } {
  const answer =
    error instanceof RequestError
      ? { status: error.status, body: { error: error.message, code: error.code, field: error.field } }
      : fn.errorAnswer?.(error);
  if (answer !== undefined && answer.status >= 400 && answer.status <= 599)
    return { status: answer.status, headers: context.headers(), body: answer.body, known: true };
  return { status: 500, headers: context.headers(), body: errorBody(error), known: false };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function send(response: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  let payload: string | Uint8Array | undefined;
  let type: string | undefined;
  if (body === undefined || body === null) {
    payload = undefined;
  } else if (typeof body === "string") {
    payload = body;
    type = "text/plain; charset=utf-8";
  } else if (body instanceof Uint8Array) {
    payload = body;
    type = "application/octet-stream";
  } else {
    payload = JSON.stringify(body);
    type = "application/json; charset=utf-8";
  }
  const hasType = Object.keys(headers).some((k) => k.toLowerCase() === "content-type");
  response.writeHead(status, type === undefined || hasType ? headers : { ...headers, "content-type": type });
  response.end(payload);
}

function parseQuery(search: string): FunctionEvent["query"] {
  const query: FunctionEvent["query"] = {};
  if (search === "") return query;
  for (const [key, value] of new URLSearchParams(search)) {
    const existing = query[key];
    query[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return query;
}

interface ServerMetrics {
  registry: Registry;
  observe(status: number, seconds: number): void;
}

function createMetrics(name: string): ServerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ function_name: name });
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "function_requests_total",
    help: "Invocations by HTTP status",
    labelNames: ["code"],
    registers: [registry],
  });
  // Total time rather than a histogram: a histogram cost 3% of throughput here, and the watchdog
  // and the gateway already keep duration histograms per function.
  const seconds = new Counter({
    name: "function_request_seconds_total",
    help: "Time spent answering invocations",
    registers: [registry],
  });
  // Labelled children resolved once per status code rather than hashed on every request.
  const byCode = new Map<number, Counter.Internal>();
  return {
    registry,
    observe(status, elapsed) {
      let counter = byCode.get(status);
      if (counter === undefined) byCode.set(status, (counter = requests.labels(String(status))));
      counter.inc();
      seconds.inc(elapsed);
    },
  };
}

function parseInteger(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ServerSettingError(`${name} must be a whole number, not "${value}"`);
  return n;
}

function parseSize(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = bytes.parse(value);
  if (n === null || !Number.isFinite(n) || n <= 0)
    throw new ServerSettingError(`${name} must be a size such as 100kb or 1mb, not "${value}"`);
  return n;
}
