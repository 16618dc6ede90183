import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { QUARANTINE_PREFIX, QUARANTINE_STREAM } from "../../connectors/mqtt/quarantine.js";
import { decodeKey } from "../../lib/nats/keys.js";
import { openFanRegistry } from "../../lib/registry/nats-registry.js";
import type { FanRegistry } from "../../lib/registry/registry.js";

/** Who registered the suite's fans, in their records' `approvedBy`. */
const REGISTERED_BY = "fault-suite";

/** The suite's NATS registry (KV bucket fan_registry), as `fanwatch fans` opens it. */
export function openRegistry(url: string): Promise<FanRegistry> {
  return openFanRegistry({ url, name: "fanwatch-faults" });
}

/** Registers the fleet as a person would (`fanwatch fans add`): active, approved by the suite. */
export async function registerFleet(registry: FanRegistry, ids: readonly string[]): Promise<void> {
  // A few writes at a time: each is a compare-and-set round trip.
  for (let i = 0; i < ids.length; i += 50)
    await Promise.all(
      ids.slice(i, i + 50).map((id) => registry.add(id, { site: "fault suite", name: id }, REGISTERED_BY)),
    );
}

/**
 * The fans the quarantine holds readings of, and how many each: the subjects of FAN_QUARANTINE
 * with their message counts (an empty map when the stream does not exist: nothing was quarantined).
 */
export async function quarantinedReadings(url: string): Promise<Map<string, number>> {
  const nc = await connect({ servers: url, name: "fanwatch-faults-quarantine", timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams
      .info(QUARANTINE_STREAM, { subjects_filter: `${QUARANTINE_PREFIX}>` })
      .catch((error: unknown) => {
        if (/stream not found/i.test((error as Error).message)) return undefined;
        throw error;
      });
    const held = new Map<string, number>();
    for (const [subject, n] of Object.entries(info?.state.subjects ?? {})) {
      // Encoded as one subject token: "fan.3" is fan=2E3 there.
      let id: string;
      try {
        id = decodeKey(subject.slice(QUARANTINE_PREFIX.length));
      } catch {
        continue; // not the connector's (published by hand)
      }
      held.set(id, n);
    }
    return held;
  } finally {
    await nc.close();
  }
}

/** The connector's gate counters from its /metrics (connector_readings_refused_total by reason, …). */
export interface GateMetrics {
  refusedByReason: Record<string, number>;
  quarantined: number;
  /** connector_registry_fans by state, as the connector's cache holds them. */
  fans: Record<string, number>;
}

/** Reads the gate's counters from the connector's /metrics (zeros where a metric is missing). */
export async function gateMetrics(port: number): Promise<GateMetrics | undefined> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) })
    .then((r) => (r.ok ? r.text() : undefined))
    .catch(() => undefined);
  if (text === undefined) return undefined;
  const metrics: GateMetrics = { refusedByReason: {}, quarantined: 0, fans: {} };
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (m === null) continue;
    const [, name, labels = "", value] = m;
    const label = (key: string) => new RegExp(`${key}="([^"]*)"`).exec(labels)?.[1] ?? "";
    if (name === "connector_readings_refused_total") metrics.refusedByReason[label("reason")] = Number(value);
    else if (name === "connector_readings_quarantined_total") metrics.quarantined = Number(value);
    else if (name === "connector_registry_fans") metrics.fans[label("state")] = Number(value);
  }
  return metrics;
}
