import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { z } from "zod";
import { defineSetting } from "./settings.js";
import { serverCloser } from "./http/close.js";

export interface Health {
  healthy: boolean;
  /**
   * Whether the service does its part, for a Kubernetes readiness probe (/readyz); `healthy` when
   * omitted. A service may be ready yet unhealthy: it holds work for a dependency that is away.
   */
  ready?: boolean;
  /** What /healthz shows, besides `status`. */
  details: Record<string, unknown>;
}

export interface HealthServerOptions {
  port: number;
  /** The address to listen on: 0.0.0.0 for probes in a pod, 127.0.0.1 on a laptop. */
  host: string;
}

/** 0.0.0.0: kubelet probes and Prometheus come from outside the pod. */
export const DEFAULT_HEALTH_HOST = "0.0.0.0";

/** The address of a service's /healthz and /metrics. */
export const HEALTH_HOST_SETTING = defineSetting({
  env: ["HEALTH_HOST"],
  flag: "--health-host <address>",
  help: "address of /healthz and /metrics",
  default: DEFAULT_HEALTH_HOST,
  schema: z.string().default(DEFAULT_HEALTH_HOST),
});

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The /healthz, /readyz, /livez and Prometheus /metrics endpoints of a long-running service (the
 * connectors): /healthz answers 200 while healthy and 503 otherwise, with the details as JSON;
 * /readyz the same for readiness, with the same details. /livez answers 200 while the process can
 * answer at all: an outage elsewhere makes a service unhealthy on purpose (it holds messages and
 * waits), and restarting it for that would only lose its place.
 */
export async function startHealthServer(
  { port, host }: HealthServerOptions,
  health: () => Health,
  registry: Registry,
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://service").pathname;
    if (path === "/metrics") {
      void registry.metrics().then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text));
      return;
    }
    if (path === "/livez") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"alive"}');
      return;
    }
    if (path === "/healthz" || path === "/" || path === "/readyz") {
      const { healthy, ready = healthy, details } = health();
      const ok = path === "/readyz" ? ready : healthy;
      res
        .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ status: ok ? "ok" : "unavailable", ...details }));
      return;
    }
    res
      .writeHead(404, { "content-type": "application/json" })
      .end(JSON.stringify({ error: `no ${path}; try /healthz, /readyz, /livez or /metrics` }));
  });
  const closer = serverCloser(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    // Its answers are instant: a request still open after a second is a client that went quiet.
    close: () => closer.close(1_000),
  };
}
