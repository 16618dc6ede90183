import bytes from "bytes";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { pino, type Logger } from "pino";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { HandlerContext, errorBody, type Outcome } from "./context.js";
import type { FunctionEvent, FunctionModule } from "./types.js";

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
  /** Name used in logs and metrics. */
  name?: string;
  logger?: Logger;
}

export interface FunctionServer {
  readonly url: string;
  readonly port: number;
  /** Stops taking requests, finishes those in flight, then runs the module's close(). Safe to repeat. */
  close(): Promise<void>;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Reads the official template's environment names (http_port, MAX_JSON_SIZE, MAX_RAW_SIZE, RAW_BODY). */
export function serverOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ServerOptions {
  return {
    port: parseInteger(env.http_port, "http_port") ?? 3000,
    maxJsonSize: parseSize(env.MAX_JSON_SIZE, "MAX_JSON_SIZE") ?? DEFAULT_BODY_LIMIT,
    maxRawSize: parseSize(env.MAX_RAW_SIZE, "MAX_RAW_SIZE") ?? DEFAULT_BODY_LIMIT,
    rawBody: env.RAW_BODY === "true",
  };
}

/**
 * Serves a handler module the way the official node templates do, minus their defects: JSON
 * answers carry a JSON content type, a thrown error is a 5xx with a JSON body (4xx when the error
 * carries a `status` below 500, as input errors do), bodies are size-limited, and close() drains.
 */
export async function startFunctionServer(fn: FunctionModule, options: ServerOptions = {}): Promise<FunctionServer> {
  const started = performance.now();
  const name = options.name ?? "function";
  const log = options.logger ?? pino({ name, level: process.env.LOG_LEVEL ?? "info", timestamp: pino.stdTimeFunctions.isoTime });
  await fn.init?.();

  const metrics = createMetrics(name);
  const app = Fastify({
    logger: false,
    bodyLimit: options.maxJsonSize ?? DEFAULT_BODY_LIMIT,
    forceCloseConnections: "idle",
    return503OnClosing: true,
  });
  registerBodyParsers(app, options);
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) log.error({ err: error }, "request failed");
    void reply.code(status).send({ error: describeRequestError(error), field: "body" });
  });
  app.get("/_/health", async () => ({ status: "ok" }));
  app.get("/_/ready", async () => ({ status: "ready" }));
  app.get("/_/metrics", async (_request, reply) => {
    const own = await metrics.registry.metrics();
    const extra = fn.metrics === undefined ? "" : await fn.metrics();
    return reply.type(metrics.registry.contentType).send(own + extra);
  });
  app.all("/*", (request, reply) => invoke(fn, request, reply, log, metrics));

  const address = await app.listen({ port: options.port ?? 3000, host: options.host ?? "0.0.0.0" });
  const port = app.server.address() !== null && typeof app.server.address() === "object" ? (app.server.address() as { port: number }).port : (options.port ?? 3000);
  log.info({ event: "listening", port, startupMs: Math.round(performance.now() - started) }, `${name} listening on ${address}`);

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await fn.close?.();
        log.info({ event: "closed" }, `${name} stopped`);
      })();
      return closing;
    },
  };
}

async function invoke(fn: FunctionModule, request: FastifyRequest, reply: FastifyReply, log: Logger, metrics: ServerMetrics): Promise<void> {
  const stopTimer = metrics.duration.startTimer();
  const event: FunctionEvent = {
    body: request.body,
    headers: request.headers,
    method: request.method,
    query: request.query as FunctionEvent["query"],
    path: request.url.split("?", 1)[0] ?? "/",
  };
  const context = new HandlerContext();
  let outcome: Outcome;
  try {
    const returned = Promise.resolve(fn.handler(event, context)).then((value): Outcome => ({ status: context.status(), headers: context.headers(), body: value, failed: false }));
    outcome = await Promise.race([context.done, returned]);
  } catch (error) {
    outcome = thrownOutcome(error, context);
    if (outcome.status >= 500) log.error({ err: error, path: event.path }, "handler threw");
  }
  metrics.requests.inc({ code: String(outcome.status) });
  stopTimer({ code: String(outcome.status) });
  void reply.code(outcome.status).headers(outcome.headers);
  sendBody(reply, outcome.body);
}

function thrownOutcome(error: unknown, context: HandlerContext): Outcome {
  const status = typeof (error as { status?: unknown })?.status === "number" ? (error as { status: number }).status : 500;
  const body = errorBody(error);
  const field = (error as { field?: unknown })?.field;
  if (typeof field === "string") body.field = field;
  return { status: status >= 400 && status <= 599 ? status : 500, headers: context.headers(), body, failed: true };
}

function sendBody(reply: FastifyReply, body: unknown): void {
  if (body === undefined || body === null) {
    void reply.send();
  } else if (typeof body === "string") {
    if (!reply.hasHeader("content-type")) void reply.type("text/plain; charset=utf-8");
    void reply.send(body);
  } else if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    if (!reply.hasHeader("content-type")) void reply.type("application/octet-stream");
    void reply.send(body);
  } else {
    void reply.type("application/json; charset=utf-8").send(JSON.stringify(body));
  }
}

function registerBodyParsers(app: FastifyInstance, options: ServerOptions): void {
  const rawLimit = options.maxRawSize ?? DEFAULT_BODY_LIMIT;
  if (options.rawBody === true) app.removeAllContentTypeParsers();
  else app.removeContentTypeParser("text/plain");
  if (options.rawBody !== true) {
    app.addContentTypeParser(/^text\//, { parseAs: "string", bodyLimit: rawLimit }, (_request, body, done) => done(null, body));
  }
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: rawLimit }, (_request, body, done) => done(null, body));
}

function describeRequestError(error: FastifyError): string {
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return `request body is too large: ${error.message.toLowerCase()}`;
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return "request body is empty; send a JSON document";
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return `unsupported content type: ${error.message}`;
    default:
      return error.statusCode === 400 && error.message.length > 0 ? `request body is not valid JSON: ${error.message}` : error.message;
  }
}

interface ServerMetrics {
  registry: Registry;
  requests: Counter<"code">;
  duration: Histogram<"code">;
}

function createMetrics(name: string): ServerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ function_name: name });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({ name: "function_requests_total", help: "Invocations by HTTP status", labelNames: ["code"], registers: [registry] }),
    duration: new Histogram({
      name: "function_request_duration_seconds",
      help: "Time from request to answer",
      labelNames: ["code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

function parseInteger(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, not "${value}"`);
  return n;
}

function parseSize(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = bytes.parse(value);
  if (n === null || !Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a size such as 100kb or 1mb, not "${value}"`);
  return n;
}

/** Closes the server on SIGTERM or SIGINT (what the watchdog and Ctrl-C send), then exits. */
export function closeOnSignals(server: FunctionServer, log?: Logger): void {
  const stop = (signal: NodeJS.Signals) => {
    log?.info({ event: "signal", signal }, `received ${signal}, draining`);
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log?.error({ err: error }, "close failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
