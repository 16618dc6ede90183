import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface Health {
  healthy: boolean;
  /** What /healthz shows, besides `status`. */
  details: Record<string, unknown>;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The /healthz and Prometheus /metrics endpoints of a long-running service (the connectors):
 * /healthz answers 200 while healthy and 503 otherwise, with the details as JSON.
 */
export async function startHealthServer(port: number, health: () => Health, registry: Registry): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://service").pathname;
    if (path === "/metrics") {
      void registry.metrics().then((text) => res.writeHead(200, { "content-type": registry.contentType }).end(text));
      return;
    }
    if (path === "/healthz" || path === "/") {
      const { healthy, details } = health();
      res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ status: healthy ? "ok" : "unavailable", ...details }));
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: `no ${path}; try /healthz or /metrics` }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "0.0.0.0", resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
