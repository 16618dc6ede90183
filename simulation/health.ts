import { Gauge, Registry } from "prom-client";
import { startHealthServer, type HealthServer } from "../lib/infra/health-server.js";
import type { FleetSimulator } from "./simulator.js";

/**
 * The simulated fleet's /healthz (200 while it is connected and publishing, 503 otherwise), /livez
 * (200 while the process answers at all) and /metrics, for a pod's probes (deploy/k3s/simulator):
 * readiness says the fans are reaching the broker, liveness that the process is not stuck. A broker
 * that is away makes it unready, not dead: mqtt.js reconnects and the fans carry on.
 */
export async function serveSimulatorHealth(
  simulator: FleetSimulator,
  address: { port: number; host: string },
): Promise<HealthServer> {
  const registry = new Registry();
  new Gauge({
    name: "fanwatch_simulator_readings_published",
    help: "readings handed to the MQTT client since the start",
    registers: [registry],
    collect() {
      this.set(simulator.published);
    },
  });
  new Gauge({
    name: "fanwatch_simulator_readings_refused",
    help: "readings the broker refused since the start (QoS 1)",
    registers: [registry],
    collect() {
      this.set(simulator.failed);
    },
  });
  return startHealthServer(
    address,
    () => ({
      healthy: simulator.publishing(),
      details: {
        fans: simulator.fans.length,
        published: simulator.published,
        refused: simulator.failed,
        lastSentAt: simulator.lastSentAt === undefined ? null : new Date(simulator.lastSentAt).toISOString(),
      },
    }),
    registry,
  );
}
