import { randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, request, Agent, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { parseUntrustedJson } from "../lib/json.js";
import type { Logger } from "../lib/log.js";
import type { StackFunction } from "../lib/stack.js";
import type { FunctionProcess } from "./function-process.js";
import { BodyTooLargeError, checkCallbackUrl, crossSiteReason, readBody, type GatewayLimits } from "./gateway-guards.js";

/**
 * Longest an async call and then its callback may take: each holds a pending slot, so one that
 * hangs must give it back. A minute is well above the exec_timeout of the functions in stack.yml (seconds).
 */
const ASYNC_TIMEOUT_MS = 60_000;

const ScaleRequest = z.object({ serviceName: z.string().optional(), replicas: z.number().int().min(0).max(1) });

export interface GatewayFunction {
  name: string;
  spec: StackFunction;
  process: FunctionProcess;
}

export interface GatewayOptions {
  port: number;
  host: string;
  credentials: { user: string; password: string };
  limits: GatewayLimits;
  /** Other routes (the web page), tried before answering 404. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
  log: Logger;
}

/**
 * A local stand-in for the OpenFaaS gateway, speaking its HTTP API for the functions it runs:
 * /function/<name>[/path] (sync), /async-function/<name> (202 + X-Call-Id, result to
 * X-Callback-Url), /system/functions and /system/function/<name> (from stack.yml, basic auth),
 * /healthz and Prometheus /metrics with the gateway's metric names.
 *
 * Unlike OpenFaaS it runs on a desktop next to a browser, so it refuses what another site's page
 * could make the browser send (except GETs of the page), posts async results only to loopback or
 * listed hosts, and bounds what async calls hold in memory.
 */
export class LocalGateway {
  readonly #server: Server;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 64 });
  readonly #registry = new Registry();
  readonly #invocations = new Counter({ name: "gateway_function_invocation_total", help: "Function invocations", labelNames: ["function_name", "code"], registers: [this.#registry] });
  readonly #seconds = new Histogram({ name: "gateway_functions_seconds", help: "Function invocation time", labelNames: ["function_name", "code"], registers: [this.#registry] });
  readonly #byName = new Map<string, GatewayFunction>();
  #pendingAsync = 0;

  constructor(private readonly options: GatewayOptions) {
    this.#server = createServer((req, res) => this.#route(req, res));
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Where this machine reaches it: loopback unless it listens on one address only. */
  get url(): string {
    return `http://${reachableHost(this.options.host)}:${this.port}`;
  }

  /** Adds a function; it is routed to from then on. */
  add(fn: GatewayFunction): void {
    this.#byName.set(fn.name, fn);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "EADDRINUSE" ? new RangeError(`port ${this.options.port} is in use: stop what uses it or pick another with --port`) : error),
      );
      this.#server.listen(this.options.port, this.options.host, () => resolve());
    });
  }

  /**
   * Stops listening and closes idle connections at once; a request still running (a slow client,
   * a stream someone else did not close) gets 2 s before its connection is closed, so that stopping
   * never hangs on it.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const force = setTimeout(() => this.#server.closeAllConnections(), 2_000);
    await closed;
    clearTimeout(force);
    this.#agent.destroy();
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://gateway");
    const path = url.pathname;
    const refused = this.#crossSite(req, path);
    if (refused !== undefined) return json(res, 403, { error: `cross-site request refused (${refused}): the gateway only answers its own page and clients that are not browsers` });
    const sync = /^\/function\/([^/]+)(\/.*)?$/.exec(path);
    const async = /^\/async-function\/([^/]+)(\/.*)?$/.exec(path);
    if (sync !== null) return this.#invoke(req, res, sync[1] as string, (sync[2] ?? "/") + url.search);
    if (async !== null) return this.#invokeAsync(req, res, async[1] as string, (async[2] ?? "/") + url.search);
    if (path === "/healthz") return void res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    if (path === "/metrics") return void this.#registry.metrics().then((text) => res.writeHead(200, { "content-type": this.#registry.contentType }).end(text));
    if (path.startsWith("/system/")) return void this.#system(req, res, path);
    if (this.options.extra?.(req, res) === true) return;
    json(res, 404, { error: `no route ${req.method} ${path}` });
  }

  /**
   * Another site's page may link to the page and its files (GET), nothing else: not even open its
   * event stream, which would take one of the page's few places.
   */
  #crossSite(req: IncomingMessage, path: string): string | undefined {
    const reading = req.method === "GET" || req.method === "HEAD";
    if (reading && !/^\/(function|async-function|system)\/|^\/ui\/events$/.test(path)) return undefined;
    const reason = crossSiteReason(req);
    if (reason !== undefined) this.options.log.warn({ event: "cross_site_refused", method: req.method, path, reason }, "cross-site request refused");
    return reason;
  }

  async #system(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.#authorized(req)) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="fanwatch gateway"', "content-type": "application/json" });
      return void res.end(JSON.stringify({ error: "the /system API needs basic auth (the user and password fanwatch start printed)" }));
    }
    const scale = /^\/system\/scale-function\/([^/]+)$/.exec(path);
    if (scale !== null && req.method === "POST") return this.#scale(req, res, scale[1] as string);
    if (req.method !== "GET") return json(res, 501, { error: `${req.method} ${path}: the local gateway runs the functions of stack.yml and cannot deploy or change them` });
    const calls = await this.#callsByFunction();
    if (path === "/system/functions") return json(res, 200, [...this.#byName.values()].map((f) => describe(f, calls.get(f.name) ?? 0)));
    const one = /^\/system\/function\/([^/]+)$/.exec(path);
    const fn = one === null ? undefined : this.#byName.get(one[1] as string);
    if (fn !== undefined) return json(res, 200, describe(fn, calls.get(fn.name) ?? 0));
    json(res, 404, { error: one === null ? `no route GET ${path}` : `no function named ${one[1]}` });
  }

  /**
   * OpenFaaS's scale API, to 0 or 1 replica: 0 stops the function's process (calls then fail as
   * in an outage, 502) until it is scaled to 1 again. The fault suite takes functions down this way.
   */
  async #scale(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const fn = this.#byName.get(name);
    if (fn === undefined) return json(res, 404, { error: `no function named ${name}` });
    let replicas: number;
    try {
      const parsed = ScaleRequest.safeParse(parseUntrustedJson(await readBody(req, 4096)));
      if (!parsed.success) return json(res, 400, { error: 'scale-function takes {"replicas": 0} or {"replicas": 1}: the local gateway runs one process per function' });
      replicas = parsed.data.replicas;
    } catch (error) {
      return json(res, error instanceof BodyTooLargeError ? 413 : 400, { error: `scale-function: ${(error as Error).message}` });
    }
    this.options.log.info({ event: "scale", function: name, replicas }, `scaling ${name} to ${replicas}`);
    try {
      await (replicas === 0 ? fn.process.stop() : fn.process.start());
    } catch (error) {
      return json(res, 500, { error: `${name} did not start: ${(error as Error).message}` });
    }
    res.writeHead(202).end();
  }

  /** Invocations per function, summed over status codes from the gateway_function_invocation_total counter. */
  async #callsByFunction(): Promise<Map<string, number>> {
    const calls = new Map<string, number>();
    for (const { labels, value } of (await this.#invocations.get()).values) {
      const name = String(labels.function_name);
      calls.set(name, (calls.get(name) ?? 0) + value);
    }
    return calls;
  }

  #authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? "";
    const expected = Buffer.from(`Basic ${Buffer.from(`${this.options.credentials.user}:${this.options.credentials.password}`).toString("base64")}`);
    const given = Buffer.from(header);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  #invoke(req: IncomingMessage, res: ServerResponse, name: string, path: string): void {
    const fn = this.#byName.get(name);
    if (fn === undefined) return json(res, 404, { error: `no function named ${name}` });
    const callId = headerValue(req.headers["x-call-id"]) ?? randomUUID();
    const started = Date.now();
    const headers = { ...req.headers, "x-call-id": callId, "x-start-time": String(started * 1e6) };
    const upstream = request(`${fn.process.url}${path}`, { method: req.method, headers, agent: this.#agent }, (answer) => {
      const code = answer.statusCode ?? 502;
      res.writeHead(code, { ...answer.headers, "x-call-id": callId, "x-duration-seconds": ((Date.now() - started) / 1000).toFixed(6) });
      answer.pipe(res);
      answer.on("end", () => this.#count(name, code, started));
    });
    upstream.on("error", (error) => {
      this.#count(name, 502, started);
      if (!res.headersSent) json(res, 502, { error: `${name} is not reachable${fn.process.replicas === 0 ? " (scaled to 0)" : fn.process.ready ? "" : " (it is starting or restarting)"}: ${error.message}` });
      else res.destroy(error);
    });
    req.pipe(upstream);
  }

  /**
   * As OpenFaaS CE: accept at once with 202, run the call, POST the result to X-Callback-Url. The
   * callback is checked before the call is accepted; bodies and calls waiting are bounded.
   */
  #invokeAsync(req: IncomingMessage, res: ServerResponse, name: string, path: string): void {
    const fn = this.#byName.get(name);
    if (fn === undefined) return json(res, 404, { error: `no function named ${name}` });
    if (req.method !== "POST") return json(res, 405, { error: "async invocations are POST" });
    const given = headerValue(req.headers["x-callback-url"]);
    const callback = given === undefined ? undefined : checkCallbackUrl(given, this.options.limits.callbackAllowedHosts);
    if (callback !== undefined && "error" in callback) return json(res, 400, { error: callback.error });
    const { maxPendingAsync, maxAsyncBodyBytes } = this.options.limits;
    if (this.#pendingAsync >= maxPendingAsync) {
      res.setHeader("retry-after", "1");
      return json(res, 429, { error: `${maxPendingAsync} async calls are waiting already (GATEWAY_MAX_ASYNC_PENDING); retry later` });
    }
    this.#pendingAsync++;
    const callId = randomUUID();
    readBody(req, maxAsyncBodyBytes).then(
      (body) => {
        res.writeHead(202, { "x-call-id": callId }).end();
        void this.#runAsync(fn, path, req.headers, body, callId, callback?.url).finally(() => this.#pendingAsync--);
      },
      (error: Error) => {
        this.#pendingAsync--;
        if (error instanceof BodyTooLargeError) res.setHeader("connection", "close");
        json(res, error instanceof BodyTooLargeError ? 413 : 400, { error: error.message });
      },
    );
  }

  async #runAsync(fn: GatewayFunction, path: string, headers: IncomingMessage["headers"], body: Buffer, callId: string, callback: URL | undefined): Promise<void> {
    const started = Date.now();
    const { "x-callback-url": _callback, host: _host, origin: _origin, "content-length": _length, ...forwarded } = headers;
    let status = 500;
    let answer: Buffer = Buffer.from(JSON.stringify({ error: `${fn.name} is not reachable` }));
    try {
      const response = await fetch(`${fn.process.url}${path}`, { method: "POST", headers: { ...flatten(forwarded), "x-call-id": callId }, body: new Uint8Array(body), signal: AbortSignal.timeout(ASYNC_TIMEOUT_MS) });
      status = response.status;
      answer = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      this.options.log.warn({ event: "async_failed", function: fn.name, callId, err: (error as Error).message }, "async invocation failed");
    }
    this.#count(fn.name, status, started);
    if (callback === undefined) return;
    try {
      // Not followed: a redirect would lead the post to a host nobody allowed.
      const answered = await fetch(callback, {
        method: "POST",
        redirect: "manual",
        signal: AbortSignal.timeout(ASYNC_TIMEOUT_MS),
        headers: { "content-type": "application/json", "x-call-id": callId, "x-function-status": String(status), "x-function-name": fn.name, "x-duration-seconds": ((Date.now() - started) / 1000).toFixed(6) },
        body: new Uint8Array(answer),
      });
      await answered.body?.cancel();
      if (answered.status >= 300) this.options.log.warn({ event: "callback_failed", function: fn.name, callId, status: answered.status }, `the callback ${callback.href} answered ${answered.status}`);
    } catch (error) {
      this.options.log.warn({ event: "callback_failed", function: fn.name, callId, err: (error as Error).message }, `cannot post the result to ${callback.href}`);
    }
  }

  #count(name: string, code: number, started: number): void {
    const labels = { function_name: name, code: String(code) };
    this.#invocations.inc(labels);
    this.#seconds.observe(labels, (Date.now() - started) / 1000);
  }
}

/** The address by which this machine reaches a server listening on `host`. */
export function reachableHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** A function as the gateway's /system/functions describes it. */
function describe(fn: GatewayFunction, invocationCount: number): Record<string, unknown> {
  return {
    name: fn.name,
    image: fn.spec.image,
    namespace: "openfaas-fn",
    envProcess: "node index.js",
    envVars: fn.spec.environment,
    labels: fn.spec.labels,
    annotations: fn.spec.annotations,
    secrets: fn.spec.secrets,
    readOnlyRootFilesystem: fn.spec.readonly_root_filesystem,
    replicas: fn.process.replicas,
    availableReplicas: fn.process.ready ? 1 : 0,
    invocationCount,
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function flatten(headers: IncomingMessage["headers"]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v.join(", ") : v]])));
}
