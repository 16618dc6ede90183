import { randomUUID } from "node:crypto";
import {
  createServer,
  request,
  Agent,
  type ClientRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { pipeline } from "node:stream";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { reachableHost } from "../../lib/infra/net.js";
import { AllowedHosts } from "../../lib/infra/http/allowed-hosts.js";
import { DEFAULT_CLOSE_DEADLINE_MS, serverCloser, type ServerCloser } from "../../lib/infra/http/close.js";
import type { Logger } from "../../lib/infra/log.js";
import type { StackFunction } from "./stack.js";
import { replicasRefusal, type ScaleBounds, type ScaleDecision } from "../../lib/openfaas/scaling.js";
import { Autoscaler, type AutoscalerSettings, type Scalable } from "./autoscaler.js";
import type { Lease, ReplicaSet } from "./replica-set.js";
import { describeFunction, functionTarget, namespaceRefusal, namespaces, secretList, systemInfo } from "./api.js";
import { bodyLimit, type BodyLimits } from "../../templates/node22-ts/body.js";
import { FanwatchError, PortInUseError } from "../../lib/errors.js";
import { readBody } from "../../lib/infra/http/body.js";
import { sendErrorCode } from "../../lib/infra/http/error-answer.js";
import { checkCallbackUrl, type GatewayLimits } from "./guards.js";
import { CALLER_TOKEN_HEADER, crossSiteReason } from "../../templates/node22-ts/guard.js";
import { parseLogQuery, streamLogs } from "./logs.js";
import { SystemAuth } from "./system-auth.js";

/**
 * Longest an async call and then its callback may take: each holds a pending slot, so one that
 * hangs must give it back. A minute is well above the exec_timeout of the functions in stack.yml (seconds).
 */
const ASYNC_TIMEOUT_MS = 60_000;

const ScaleRequest = z.object({ serviceName: z.string().optional(), replicas: z.number().int().min(0) });

export interface GatewayFunction {
  name: string;
  spec: StackFunction;
  /** Its replicas, between the bounds of its com.openfaas.scale.* labels. */
  set: ReplicaSet;
  bounds: ScaleBounds;
  /** The variables the runner gives it (its stack.yml environment with the local addresses), not those it inherits. */
  env: Readonly<Record<string, string>>;
  /** How its template starts it (template.yml's fprocess), if the template says. */
  envProcess?: string | undefined;
  /** The body limits its server applies; the gateway refuses a larger body itself. */
  bodyLimits: BodyLimits;
}

export interface GatewayOptions {
  port: number;
  host: string;
  credentials: { user: string; password: string };
  limits: GatewayLimits;
  /**
   * The run's token, added to every call the gateway forwards (CALLER_TOKEN_HEADER): the function
   * processes, started with it in FANWATCH_CALLER_TOKEN, answer no one else.
   */
  callerToken: string;
  /** Other routes (the web page), tried before answering 404. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
  log: Logger;
}

/**
 * A local stand-in for the OpenFaaS gateway, speaking its HTTP API for the functions it runs, in
 * the namespace openfaas-fn: /function/<name>[.openfaas-fn][/path] (sync),
 * /async-function/<name>[.openfaas-fn] (202 + X-Call-Id, result to X-Callback-Url), and with
 * basic auth /system/functions, /system/function/<name>, /system/namespaces, /system/info,
 * /system/secrets (names), /system/logs (the function processes' lines) and
 * /system/scale-function/<name>; /healthz and Prometheus /metrics with the gateway's metric names.
 *
 * Unlike OpenFaaS it runs on a desktop next to a browser, so it answers only Hosts that no other
 * site controls (DNS rebinding), refuses what another site's page could make the browser send
 * (except GETs of the page), throttles failed /system logins per address, posts async results
 * only to loopback or listed hosts, and bounds what async calls hold in memory.
 */
export class LocalGateway {
  readonly #server: Server;
  readonly #closer: ServerCloser;
  readonly #auth: SystemAuth;
  readonly #hosts: AllowedHosts;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 64 });
  readonly #registry = new Registry();
  readonly #invocations = new Counter({
    name: "gateway_function_invocation_total",
    help: "Function invocations",
    labelNames: ["function_name", "code"],
    registers: [this.#registry],
  });
  readonly #seconds = new Histogram({
    name: "gateway_functions_seconds",
    help: "Function invocation time",
    labelNames: ["function_name", "code"],
    registers: [this.#registry],
  });
  readonly #scaleEvents = new Counter({
    name: "gateway_scale_events_total",
    help: "Replica count changes, by direction and by whom (autoscaler or api)",
    labelNames: ["function_name", "direction", "source"],
    registers: [this.#registry],
  });
  readonly #decisions = new Counter({
    name: "gateway_autoscaler_decisions_total",
    help: "Autoscaler decisions, holds included",
    labelNames: ["function_name", "direction"],
    registers: [this.#registry],
  });
  readonly #byName = new Map<string, GatewayFunction>();
  #autoscaler: Autoscaler | undefined;
  /** Ends each open log stream: followed logs stream until the client goes, or the gateway closes. */
  readonly #logStreams = new Set<() => void>();
  #pendingAsync = 0;

  constructor(private readonly options: GatewayOptions) {
    this.#server = createServer((req, res) => this.#route(req, res));
    this.#closer = serverCloser(this.#server);
    this.#auth = new SystemAuth({
      credentials: options.credentials,
      login: options.limits.login,
      registry: this.#registry,
      log: options.log,
    });
    // The name it was told to listen on is one it answers for: the functions call it by that name.
    const listening = isIP(options.host) === 0 && options.host !== "" ? [options.host] : [];
    this.#hosts = new AllowedHosts({ names: [...options.limits.hosts, ...listening], setting: "GATEWAY_HOSTS" });
    const byFunction = (read: (set: ReplicaSet) => number) =>
      function (this: Gauge) {
        for (const fn of byName.values()) this.set({ function_name: fn.name }, read(fn.set));
      };
    const byName = this.#byName;
    new Gauge({
      name: "gateway_service_count",
      help: "Replicas of the function (desired)",
      labelNames: ["function_name"],
      registers: [this.#registry],
      collect: byFunction((set) => set.replicas),
    });
    new Gauge({
      name: "gateway_service_available_count",
      help: "Replicas ready and not draining",
      labelNames: ["function_name"],
      registers: [this.#registry],
      collect: byFunction((set) => set.availableReplicas),
    });
    new Gauge({
      name: "gateway_function_inflight",
      help: "Requests in flight on the function's replicas",
      labelNames: ["function_name"],
      registers: [this.#registry],
      collect: byFunction((set) => set.inFlight),
    });
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

  /** Starts autoscaling the functions whose labels allow it (each sample and decision per lib/openfaas/scaling.ts). */
  startAutoscaler(settings: AutoscalerSettings): void {
    const targets: Scalable[] = [...this.#byName.values()];
    for (const { name, bounds } of targets) {
      const rule = bounds.enabled
        ? `autoscaled between ${bounds.min} and ${bounds.max} replicas, ${bounds.step} at a time up, 1 at a time down`
        : `${bounds.min} replica${bounds.min === 1 ? "" : "s"} (scaling disabled: ${bounds.factor === 0 ? "factor 0" : "min = max"})`;
      this.options.log.info(
        { event: "scaling", function: name, ...bounds, ...settings.policy, intervalMs: settings.intervalMs },
        `${name}: ${rule}`,
      );
    }
    this.#autoscaler = new Autoscaler(targets, settings, (target, from, decision) =>
      this.#decided(target.name, from, decision),
    );
    this.#autoscaler.start();
  }

  /** Stops autoscaling (before the functions stop, so that none is started meanwhile); safe to call twice. */
  stopAutoscaler(): void {
    this.#autoscaler?.stop();
  }

  #decided(name: string, from: number, decision: ScaleDecision): void {
    const { direction, replicas: to, reason } = decision;
    this.#decisions.inc({ function_name: name, direction });
    const entry = { event: "scale", source: "autoscaler", function: name, direction, from, to, reason };
    if (direction === "hold") return this.options.log.debug(entry, `${name}: ${from} replicas, ${reason}`);
    this.#scaleEvents.inc({ function_name: name, direction, source: "autoscaler" });
    this.options.log.info(entry, `scaling ${name} ${direction} from ${from} to ${to}: ${reason}`);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          error.code === "EADDRINUSE"
            ? new PortInUseError(`port ${this.options.port} is in use: stop what uses it or pick another with --port`, {
                cause: error,
              })
            : error,
        ),
      );
      this.#server.listen(this.options.port, this.options.host, () => resolve());
    });
  }

  /**
   * Ends the followed log streams (they run until their client goes), then closes the server by
   * the one close policy (lib/infra/http/close.ts): connections without a request at once, a
   * request still running (a slow client, a stream someone else did not close) within
   * `deadlineMs`, so that stopping never hangs on it.
   */
  async close(deadlineMs = DEFAULT_CLOSE_DEADLINE_MS): Promise<void> {
    this.stopAutoscaler();
    for (const end of this.#logStreams) end();
    await this.#closer.close(deadlineMs);
    this.#agent.destroy();
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://gateway");
    const path = url.pathname;
    const wrongHost = this.#hosts.refusal(req.headers.host);
    if (wrongHost !== undefined) {
      this.options.log.warn({ event: "host_refused", method: req.method, path, host: req.headers.host }, wrongHost);
      return sendErrorCode(res, "FANWATCH_HOST_REFUSED", wrongHost);
    }
    const refused = this.#crossSite(req, path);
    if (refused !== undefined)
      return sendErrorCode(
        res,
        "FANWATCH_CROSS_SITE",
        `cross-site request refused (${refused}): the gateway only answers its own page and clients that are not browsers`,
      );
    const sync = /^\/function\/([^/]+)(\/.*)?$/.exec(path);
    const async = /^\/async-function\/([^/]+)(\/.*)?$/.exec(path);
    const call = sync ?? async;
    if (call !== null) {
      const target = functionTarget(call[1] as string);
      if ("error" in target) return sendErrorCode(res, "FANWATCH_NOT_FOUND", target.error);
      const fn = this.#byName.get(target.name);
      if (fn === undefined) return sendErrorCode(res, "FANWATCH_NOT_FOUND", `no function named ${target.name}`);
      return call === sync
        ? this.#invoke(req, res, fn, (call[2] ?? "/") + url.search)
        : this.#invokeAsync(req, res, fn, (call[2] ?? "/") + url.search);
    }
    if (path === "/healthz") return void res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    if (path === "/metrics")
      return void this.#registry
        .metrics()
        .then((text) => res.writeHead(200, { "content-type": this.#registry.contentType }).end(text));
    if (path.startsWith("/system/")) return void this.#system(req, res, url);
    if (this.options.extra?.(req, res) === true) return;
    sendErrorCode(res, "FANWATCH_NOT_FOUND", `no route ${req.method} ${path}`);
  }

  /**
   * Another site's page may link to the page and its files (GET), nothing else: not even open its
   * event stream, which would take one of the page's few places.
   */
  #crossSite(req: IncomingMessage, path: string): string | undefined {
    const reading = req.method === "GET" || req.method === "HEAD";
    if (reading && !/^\/(function|async-function|system)\/|^\/ui\/events$/.test(path)) return undefined;
    // The names it answers are its Host check's (GATEWAY_HOSTS too), so that a page opened by a listed name may act.
    const reason = crossSiteReason(req.headers, (host) => this.#hosts.refusal(host) === undefined);
    if (reason !== undefined)
      this.options.log.warn(
        { event: "cross_site_refused", method: req.method, path, reason },
        "cross-site request refused",
      );
    return reason;
  }

  async #system(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    if (!this.#auth.admit(req, res)) return;
    const scale = /^\/system\/scale-function\/([^/]+)$/.exec(path);
    if (scale !== null && req.method === "POST") return this.#scale(req, res, scale[1] as string);
    if (req.method !== "GET")
      return sendErrorCode(
        res,
        "FANWATCH_NOT_IMPLEMENTED",
        `${req.method} ${path}: the local gateway runs the functions and secrets of stack.yml and cannot deploy or change them`,
      );
    if (path === "/system/namespaces") return json(res, 200, namespaces());
    if (path === "/system/info") return json(res, 200, systemInfo());
    if (path === "/system/logs") return this.#logs(res, url.searchParams);
    const one = /^\/system\/function\/([^/]+)$/.exec(path);
    if (path !== "/system/functions" && path !== "/system/secrets" && one === null)
      return sendErrorCode(res, "FANWATCH_NOT_FOUND", `no route GET ${path}`);
    const refusal = namespaceRefusal(url.searchParams.get("namespace"));
    if (refusal !== undefined) return sendErrorCode(res, "FANWATCH_INPUT_INVALID", refusal);
    if (path === "/system/secrets") return json(res, 200, secretList(this.#byName.values()));
    const calls = await this.#callsByFunction();
    if (one === null)
      return json(
        res,
        200,
        [...this.#byName.values()].map((f) => describeFunction(f, calls.get(f.name) ?? 0)),
      );
    const fn = this.#byName.get(one[1] as string);
    if (fn === undefined) return sendErrorCode(res, "FANWATCH_NOT_FOUND", `no function named ${one[1]}`);
    json(res, 200, describeFunction(fn, calls.get(fn.name) ?? 0));
  }

  /** GET /system/logs: the lines a function's processes printed, and with follow=true the new ones as they come. */
  #logs(res: ServerResponse, params: URLSearchParams): void {
    const parsed = parseLogQuery(params);
    if ("error" in parsed) return sendErrorCode(res, "FANWATCH_INPUT_INVALID", `/system/logs: ${parsed.error}`);
    const { query } = parsed;
    const refusal = namespaceRefusal(query.namespace);
    if (refusal !== undefined) return sendErrorCode(res, "FANWATCH_INPUT_INVALID", refusal);
    const fn = this.#byName.get(query.name);
    if (fn === undefined) return sendErrorCode(res, "FANWATCH_NOT_FOUND", `no function named ${query.name}`);
    const end = streamLogs(res, fn.set.logs, query);
    this.#logStreams.add(end);
    res.once("close", () => this.#logStreams.delete(end));
  }

  /**
   * OpenFaaS's scale API: 0 drains and stops every replica (calls then fail as in an outage, 502,
   * until it is scaled up again: the fault suite takes functions down this way), or a count
   * within the labels' bounds. Answers 202 once the added replicas listen; removed ones take no
   * new request from then on and stop once they have answered what they hold. The autoscaler
   * may change the count afterwards, as OpenFaaS's does.
   */
  async #scale(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const fn = this.#byName.get(name);
    if (fn === undefined) return sendErrorCode(res, "FANWATCH_NOT_FOUND", `no function named ${name}`);
    let replicas: number;
    try {
      const parsed = ScaleRequest.safeParse(parseUntrustedJson(await readBody(req, 4096, "for scale requests")));
      if (!parsed.success)
        return sendErrorCode(
          res,
          "FANWATCH_INPUT_INVALID",
          'scale-function takes {"serviceName": "<name>", "replicas": <whole number>}',
        );
      // faas-netes takes the name from the path when the body has none; one naming another function is a mistake.
      const named = parsed.data.serviceName;
      if (named !== undefined && named !== name)
        return sendErrorCode(
          res,
          "FANWATCH_INPUT_INVALID",
          `scale-function/${name}: the body names "${named}"; name the same function in the path and in serviceName, or leave serviceName out`,
        );
      replicas = parsed.data.replicas;
    } catch (error) {
      return failWith(res, error, "scale-function: ");
    }
    const refusal = replicasRefusal(replicas, fn.bounds);
    if (refusal !== undefined)
      return sendErrorCode(res, "FANWATCH_INPUT_INVALID", `scale-function ${name}: ${refusal}`);
    const from = fn.set.replicas;
    const direction = replicas > from ? "up" : replicas < from ? "down" : "hold";
    if (direction !== "hold") this.#scaleEvents.inc({ function_name: name, direction, source: "api" });
    this.options.log.info(
      {
        event: "scale",
        source: "api",
        function: name,
        direction,
        from,
        to: replicas,
        reason: "POST /system/scale-function",
      },
      `scaling ${name} from ${from} to ${replicas} (scale API)`,
    );
    try {
      await fn.set.scaleTo(replicas);
    } catch (error) {
      return sendErrorCode(res, "FANWATCH_FUNCTION_START_FAILED", `${name} did not start: ${(error as Error).message}`);
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

  /**
   * Proxies a call to the function. A body over the function's own limit is refused here with 413
   * and the limit, by its Content-Length or as soon as a streamed body passes it, and the function
   * gets none of it (a function refusing a body mid-stream closes its connection, which the
   * gateway would see as EPIPE, not as its 413). The rest of a refused body is read and dropped,
   * so that the client, still sending, gets the answer rather than a reset connection. An answer
   * the function gives before it has the whole body is relayed.
   */
  #invoke(req: IncomingMessage, res: ServerResponse, fn: GatewayFunction, path: string): void {
    const { name } = fn;
    const started = Date.now();
    const { bytes: limit, setting: variable } = bodyLimit(req.headers["content-type"], fn.bodyLimits);
    const refuse = (what: string) => {
      this.#count(name, 413, started);
      sendErrorCode(
        res,
        "FANWATCH_BODY_TOO_LARGE",
        `request body is too large: ${what}; the limit of ${name} is ${limit} bytes (its ${variable})`,
      );
    };
    const declared = Number(req.headers["content-length"]);
    if (declared > limit) {
      req.resume();
      return refuse(`${declared} bytes`);
    }
    const lease = fn.set.lease();
    if (lease === undefined) {
      req.resume();
      this.#count(name, 502, started);
      return sendErrorCode(res, "FANWATCH_FUNCTION_UNAVAILABLE", `${name} is not reachable (${this.#unavailable(fn)})`);
    }
    const call = this.#forward(req, res, name, `${lease.url}${path}`, lease, started);
    pumpBody(req, call.upstream, limit, () => {
      if (!call.settle()) return;
      call.upstream.destroy();
      refuse(`it passed ${limit} bytes`);
    });
    // A client that goes away mid-body: the function is not left waiting for the rest.
    req.on("close", () => {
      if (req.complete) return;
      call.settle();
      call.upstream.destroy();
    });
  }

  /**
   * Sends the call to the replica and relays its answer, or a 502 if the replica fails first.
   * `settle()` is true only for the first to decide the client's answer: the replica's answer, its
   * failure, or a body found too large.
   */
  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    url: string,
    lease: Lease,
    started: number,
  ): { upstream: ClientRequest; settle: () => boolean } {
    const callId = headerValue(req.headers["x-call-id"]) ?? randomUUID();
    const headers = {
      ...req.headers,
      "x-call-id": callId,
      "x-start-time": String(started * 1e6),
      [CALLER_TOKEN_HEADER]: this.options.callerToken,
    };
    let settled = false;
    const settle = () => !settled && (settled = true);
    const upstream = request(url, { method: req.method, headers, agent: this.#agent }, (answer) => {
      settled = true;
      const code = answer.statusCode ?? 502;
      res.writeHead(code, {
        ...answer.headers,
        "x-call-id": callId,
        "x-duration-seconds": ((Date.now() - started) / 1000).toFixed(6),
        "x-function-instance": lease.instance,
      });
      pipeline(answer, res, () => {
        lease.release();
        this.#count(name, code, started);
        // It answered before reading the whole body, and reads no more of it.
        if (!upstream.writableFinished) upstream.destroy();
      });
    });
    // However the call to the replica ends: a draining replica stops once none is left.
    upstream.once("close", () => lease.release());
    upstream.on("error", (error) => {
      lease.release();
      if (!settle()) return;
      this.#count(name, 502, started);
      // Not retried here: a POST may have been half done; the caller (the connector) retries.
      sendErrorCode(
        res,
        "FANWATCH_FUNCTION_UNAVAILABLE",
        `${name} is not reachable (its replica ${lease.instance} failed): ${error.message}`,
      );
    });
    return { upstream, settle };
  }

  /**
   * As OpenFaaS CE: accept at once with 202, run the call, POST the result to X-Callback-Url. The
   * callback is checked before the body is read, and the body is read (within BODY_DEADLINE_MS, lib/infra/http/body.ts)
   * before the call takes one of the bounded places of calls waiting: a client that sends its body
   * slowly, or never finishes it, holds no place.
   */
  #invokeAsync(req: IncomingMessage, res: ServerResponse, fn: GatewayFunction, path: string): void {
    if (req.method !== "POST") return sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", "async invocations are POST");
    const given = headerValue(req.headers["x-callback-url"]);
    const callback =
      given === undefined ? undefined : checkCallbackUrl(given, this.options.limits.callbackAllowedHosts);
    if (callback !== undefined && "error" in callback) {
      req.resume();
      return sendErrorCode(res, "FANWATCH_INPUT_INVALID", callback.error);
    }
    const { maxPendingAsync, maxAsyncBodyBytes } = this.options.limits;
    // The smaller of the gateway's limit and the function's own: a body the function would refuse is refused at once.
    const own = bodyLimit(req.headers["content-type"], fn.bodyLimits);
    const [limit, source] =
      own.bytes < maxAsyncBodyBytes
        ? [own.bytes, `${own.setting} of ${fn.name}`]
        : [maxAsyncBodyBytes, "GATEWAY_MAX_ASYNC_BODY"];
    readBody(req, limit, source).then(
      (body) => {
        if (this.#pendingAsync >= maxPendingAsync) {
          res.setHeader("retry-after", "1");
          return sendErrorCode(
            res,
            "FANWATCH_GATEWAY_BUSY",
            `${maxPendingAsync} async calls are waiting already (GATEWAY_MAX_ASYNC_PENDING); retry later`,
          );
        }
        this.#pendingAsync++;
        const callId = randomUUID();
        res.writeHead(202, { "x-call-id": callId }).end();
        void this.#runAsync(fn, path, req.headers, body, callId, callback?.url).finally(() => this.#pendingAsync--);
      },
      (error: Error) => {
        if (!res.destroyed) failWith(res, error);
      },
    );
  }

  async #runAsync(
    fn: GatewayFunction,
    path: string,
    headers: IncomingMessage["headers"],
    body: Buffer,
    callId: string,
    callback: URL | undefined,
  ): Promise<void> {
    const started = Date.now();
    const lease = fn.set.lease();
    const {
      "x-callback-url": _callback,
      host: _host,
      origin: _origin,
      "content-length": _length,
      ...forwarded
    } = headers;
    let status = 500;
    let answer: Buffer = Buffer.from(
      JSON.stringify({
        error: `${fn.name} is not reachable (${lease === undefined ? this.#unavailable(fn) : `its replica ${lease.instance} failed`})`,
      }),
    );
    if (lease !== undefined) {
      try {
        const response = await fetch(`${lease.url}${path}`, {
          method: "POST",
          headers: { ...flatten(forwarded), "x-call-id": callId, [CALLER_TOKEN_HEADER]: this.options.callerToken },
          body: new Uint8Array(body),
          signal: AbortSignal.timeout(ASYNC_TIMEOUT_MS),
        });
        status = response.status;
        answer = Buffer.from(await response.arrayBuffer());
      } catch (error) {
        this.options.log.warn(
          { event: "async_failed", function: fn.name, callId, err: (error as Error).message },
          "async invocation failed",
        );
      } finally {
        lease.release();
      }
    }
    this.#count(fn.name, status, started);
    if (callback === undefined) return;
    try {
      // Not followed: a redirect would lead the post to a host nobody allowed.
      const answered = await fetch(callback, {
        method: "POST",
        redirect: "manual",
        signal: AbortSignal.timeout(ASYNC_TIMEOUT_MS),
        headers: {
          "content-type": "application/json",
          "x-call-id": callId,
          "x-function-status": String(status),
          "x-function-name": fn.name,
          "x-duration-seconds": ((Date.now() - started) / 1000).toFixed(6),
        },
        body: new Uint8Array(answer),
      });
      await answered.body?.cancel();
      if (answered.status >= 300)
        this.options.log.warn(
          { event: "callback_failed", function: fn.name, callId, status: answered.status },
          `the callback ${callback.href} answered ${answered.status}`,
        );
    } catch (error) {
      this.options.log.warn(
        { event: "callback_failed", function: fn.name, callId, err: (error as Error).message },
        `cannot post the result to ${callback.href}`,
      );
    }
  }

  /** Why no replica of `fn` can take a call now. */
  #unavailable(fn: GatewayFunction): string {
    return fn.set.replicas === 0 ? "scaled to 0" : "no replica is ready: starting or restarting";
  }

  #count(name: string, code: number, started: number): void {
    const labels = { function_name: name, code: String(code) };
    this.#invocations.inc(labels);
    this.#seconds.observe(labels, (Date.now() - started) / 1000);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** A body the gateway could not read: too large (413), too slow (408), or cut off or malformed (400). */
function failWith(res: ServerResponse, error: unknown, prefix = ""): void {
  const message = `${prefix}${error instanceof Error ? error.message : String(error)}`;
  if (!(error instanceof FanwatchError) || error.status === undefined)
    return sendErrorCode(res, "FANWATCH_INPUT_INVALID", message);
  sendErrorCode(res, error.code, message); // its own status and code, with the prefix that says where
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function flatten(headers: IncomingMessage["headers"]): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v.join(", ") : v]])),
  );
}

/**
 * Streams the client's body to the replica, pausing the client while the replica's socket is full.
 * Past `limit` it forwards no more, calls `onTooLarge` once and reads and drops the rest, so that a
 * client still sending gets the answer rather than a reset connection.
 */
function pumpBody(req: IncomingMessage, upstream: ClientRequest, limit: number, onTooLarge: () => void): void {
  let size = 0;
  let refused = false;
  req.on("data", (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > limit) {
      refused = true;
      onTooLarge();
      return;
    }
    if (!upstream.write(chunk)) {
      req.pause();
      upstream.once("drain", () => req.resume());
    }
  });
  req.on("end", () => {
    if (!refused) upstream.end();
  });
}
