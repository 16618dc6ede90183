import type { Command } from "commander";
import type { FanRegistry } from "../lib/registry/registry.js";

/**
 * How a command reaches the device registry: the flags it needs (--nats) and opening it. The
 * `fans` command supplies its own (NATS); tests supply a memory registry.
 */
export interface RegistryAccess {
  /** Adds the registry's flags to `command`; returns how to read them from its options. */
  flags(command: Command): (opts: Record<string, unknown>) => unknown;
  /** Opens the registry with what `flags` read, runs `work`, closes it. */
  with(given: unknown, work: (registry: FanRegistry) => Promise<void>): Promise<void>;
}
