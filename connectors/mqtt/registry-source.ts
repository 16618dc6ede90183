import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../lib/infra/log.js";
import { NatsFanRegistry } from "../../lib/registry/nats-registry.js";
import type { FanRegistry } from "../../lib/registry/registry.js";

/**
 * The registry NATS_URL names: KV bucket `fan_registry` (lib/registry/nats-registry.ts), on the
 * connector's own NATS connection, which FAN_QUARANTINE shares (the connector closes it).
 */
export function openNatsRegistry(nc: NatsConnection, replicas: number, log: Logger): Promise<FanRegistry> {
  return NatsFanRegistry.open(jetstream(nc, { timeout: 5_000 }), { replicas, log });
}
