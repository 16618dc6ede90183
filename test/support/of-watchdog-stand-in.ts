import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer, request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A STAND-IN for OpenFaaS's of-watchdog in http mode (the Go binary is not built in CI). It does,
 * in the same order, what of-watchdog 0.9.12 to 0.11.6 does in the points our template relies on
 * (docs/template.md, "Behind of-watchdog"):
 * - starts `fprocess` once, with its own environment unchanged, and does not wait for it to listen;
 * - is "healthy" (its lock file) as soon as it listens itself: GET /_/health answers 200 "OK";
 *   with `suppress_lock=true` it writes no lock file, and /_/health answers 200 only while
 *   `$TMPDIR/.lock` exists (here TMPDIR must be set: tests run side by side);
 * - GET /_/ready answers 503 when unhealthy, else, with `ready_path` set, whatever the process
 *   answers at that path (500 while it does not listen), else 200;
 * - proxies every other request to `upstream_url`, answering 500 when the connection fails and 504
 *   after `exec_timeout`;
 * - on SIGTERM (terminate()): forwards SIGTERM to the process at once, turns unhealthy (/_/health
 *   and /_/ready 503; the lock file removed), yet goes on accepting and proxying for `healthcheck_interval` (default
 *   `write_timeout`, default 30 s), then stops listening, waits up to `write_timeout` for requests
 *   in flight, and exits;
 * - if the process exits with a non-zero code (or a signal) it exits at once; with code 0 it goes
 *   on, answering 500.
 * Durations: whole seconds or a Go duration in s or ms (what our settings use).
 */
export class OfWatchdogStandIn {
  readonly url: string;
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves when the stand-in has exited, with why. */
  readonly exited: Promise<string>;
  /** Resolves when it stopped listening (the end of the health-check interval, or a crash). */
  readonly stoppedListening: Promise<void>;
  #healthy = true;
  #listening = true;
  #output = "";

  private constructor(
    url: string,
    child: ChildProcessWithoutNullStreams,
    exited: Promise<string>,
    stoppedListening: Promise<void>,
    self: (s: OfWatchdogStandIn) => void,
  ) {
    this.url = url;
    this.child = child;
    this.exited = exited;
    this.stoppedListening = stoppedListening;
    self(this);
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (d: Buffer) => (this.#output += d.toString()));
  }

  /** False from the moment it stops listening: a request failing after that was refused by design. */
  get listening(): boolean {
    return this.#listening;
  }

  /** Everything the process printed. */
  output(): string {
    return this.#output;
  }

  static async start(env: NodeJS.ProcessEnv, cwd: string): Promise<OfWatchdogStandIn> {
    const command = (env.function_process ?? env.fprocess ?? "").split(" ");
    if (env.mode !== "http" || command[0] === "" || command[0] === undefined)
      throw new Error("the stand-in does http mode only: set mode=http and fprocess");
    const upstream = new URL(env.http_upstream_url ?? env.upstream_url ?? "");
    const writeTimeout = seconds(env.write_timeout, 30_000);
    const interval = seconds(env.healthcheck_interval, writeTimeout);
    const execTimeout = seconds(env.exec_timeout, 30_000);
    const readyPath = env.ready_path ?? "";
    if (env.suppress_lock === "true" && (env.TMPDIR ?? "") === "")
      throw new Error("with suppress_lock=true give the stand-in a TMPDIR of its own");
    const lockFile = env.suppress_lock === "true" ? `${env.TMPDIR}/.lock` : undefined;
    const agent = new Agent({ keepAlive: true });
    let instance: OfWatchdogStandIn | undefined;

    const proxy = (path: string, request: IncomingMessage, response: ServerResponse, body: boolean) => {
      const upstreamRequest = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          path,
          method: body ? request.method : "GET",
          headers: request.headers,
          agent,
          signal: AbortSignal.timeout(execTimeout),
        },
        (answer) => {
          response.writeHead(answer.statusCode ?? 500, answer.headers);
          answer.pipe(response);
        },
      );
      upstreamRequest.on("error", (error) => {
        if (response.headersSent) return void response.destroy();
        response
          .writeHead(error.name === "AbortError" || error.name === "TimeoutError" ? 504 : 500, {
            "x-openfaas-internal": "of-watchdog",
          })
          .end();
      });
      if (body) request.pipe(upstreamRequest);
      else upstreamRequest.end();
    };

    const server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?", 1)[0];
      const healthy = instance !== undefined && instance.#healthy && (lockFile === undefined || existsSync(lockFile));
      if (path === "/_/health") return void response.writeHead(healthy ? 200 : 503).end(healthy ? "OK" : "");
      if (path === "/_/ready") {
        if (request.method !== "GET") return void response.writeHead(405).end();
        if (!healthy) return void response.writeHead(503).end();
        if (readyPath !== "") return proxy(readyPath, request, response, false);
        return void response.writeHead(200).end();
      }
      proxy(request.url ?? "/", request, response, true);
    });

    const child = spawn(command[0], command.slice(1), { cwd, env });
    await new Promise<void>((resolve) => server.listen(Number(env.port ?? 0), "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    let stopListening: () => void = () => {};
    const stoppedListening = new Promise<void>((resolve) => (stopListening = resolve));
    let exit: (reason: string) => void = () => {};
    const exited = new Promise<string>((resolve) => (exit = resolve));
    const shutDown = async (reason: string, graceMs: number) => {
      if (instance !== undefined) instance.#listening = false;
      stopListening();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
      agent.destroy();
      exit(reason);
    };
    child.on("exit", (code, signal) => {
      if (code !== 0) void shutDown(`the process ended (${signal ?? `code ${code}`}): exiting at once`, 0);
    });
    const standIn = new OfWatchdogStandIn(url, child, exited, stoppedListening, (s) => (instance = s));
    standIn.#terminate = () => {
      child.kill("SIGTERM");
      standIn.#healthy = false;
      if (lockFile !== undefined) rmSync(lockFile, { force: true });
      setTimeout(() => void shutDown("SIGTERM: health-check interval over, requests drained", writeTimeout), interval);
    };
    return standIn;
  }

  #terminate: () => void = () => {};

  /** SIGTERM, as Kubernetes sends it to the watchdog (the container's first process). */
  terminate(): void {
    this.#terminate();
  }
}

function seconds(value: string | undefined, fallbackMs: number): number {
  if (value === undefined || value === "") return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value);
  if (match === null) throw new Error(`the stand-in reads whole seconds, "Ns" or "Nms", not "${value}"`);
  return Number(match[1]) * (match[2] === "ms" ? 1 : 1000);
}
