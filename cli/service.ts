import type { Logger } from "../lib/infra/log.js";
import type { Service } from "../lib/infra/service.js";
import { drainOnSignals } from "../templates/node22-ts/signals.js";
import type { Io } from "./parse.js";

/**
 * Runs a service command (the connector, the InfluxDB writer): starts it, says where its health
 * and metrics are, and keeps running until SIGTERM or SIGINT drains it (a second Ctrl-C closes it
 * at once). A service that fails to start has let go of what it took, so the command exits.
 */
export async function runUntilSignalled(
  io: Io,
  service: Service & { readonly port: number },
  log: Logger,
): Promise<never> {
  drainOnSignals(service, log);
  await service.start();
  io.err(
    `${service.name} running; health and metrics on http://127.0.0.1:${service.port}/healthz and /metrics (Ctrl-C to stop)`,
  );
  return new Promise<never>(() => {}); // the signal handler ends the process
}
