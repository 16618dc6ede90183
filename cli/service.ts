import type { Logger } from "../lib/infra/log.js";
import { closeOnSignals } from "../templates/node22-ts/server.js";
import type { Io } from "./parse.js";

export interface LongRunningService {
  start(): Promise<void>;
  /** The port of its /healthz and /metrics, once started. */
  readonly port: number;
}

/**
 * Runs a service command (the connector, the InfluxDB writer): starts it, says where its health
 * and metrics are, and keeps running until SIGTERM or SIGINT, which `stop` answers cleanly.
 */
export async function runUntilSignalled(
  io: Io,
  what: string,
  service: LongRunningService,
  stop: () => Promise<void>,
  log: Logger,
): Promise<never> {
  closeOnSignals({ close: stop }, log);
  try {
    await service.start();
  } catch (error) {
    // A refused subscription, say: without this its health server would keep the process alive,
    // answering /livez, and nothing would restart it.
    await stop().catch(() => {});
    throw error;
  }
  io.err(
    `${what} running; health and metrics on http://127.0.0.1:${service.port}/healthz and /metrics (Ctrl-C to stop)`,
  );
  return new Promise<never>(() => {}); // the signal handler ends the process
}
