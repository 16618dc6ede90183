import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "../../lib/errors.js";
import type { FanRegistry } from "../../lib/registry/registry.js";

/**
 * The registry NATS_URL names: KV bucket `fan_registry` (NatsFanRegistry, lib/registry/nats-registry.ts).
 */
export async function openNatsRegistry(_nc: NatsConnection, _replicas: number): Promise<FanRegistry> {
  // NatsFanRegistry is not on main yet: until it is, a registry is given (ConnectorOptions.registry).
  throw new ConfigError("the NATS fan registry is not available in this build: pass a registry");
}
