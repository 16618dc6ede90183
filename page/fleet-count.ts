import { HEALTH_STATES, type HealthRecord } from "../lib/domain/health.js";
import type { FanRecord } from "../lib/registry/fan-record.js";
import type { RegistryCounts } from "../lib/registry/cache.js";
import type { HealthCounts } from "./fleet-health.js";

/** What the counts need of the registry: RegistryCache (lib/registry/cache.ts) is one. */
export interface RegistryView {
  get(id: string): FanRecord | undefined;
  counts(): RegistryCounts;
}

/**
 * The fleet's numbers as the status line and the page show them. With a registry they add up:
 * `fans` (the active records) = the five health states + `unreported` (active fans health has no
 * record of yet); `pending` fans are their own number, beside. Health records of fans that are not
 * active (retired, pending, unknown to the registry) are not counted. Without a registry (`source`
 * "seen") the fans are those the page has seen and the states every health record, as before the
 * registry: they need not add up, and the status line says so.
 */
export interface FleetCount {
  /** "awaiting-registry": counted as seen while the page's registry cannot be read yet (NATS away). */
  source: "registry" | "seen" | "awaiting-registry";
  fans: number;
  states: HealthCounts;
  unreported: number;
  pending: number;
  retired: number;
  openAlarms: number;
  /** Open alarms (of counted fans) nobody has acknowledged. */
  unacknowledged: number;
}

export function countFleet(
  records: Iterable<HealthRecord>,
  registry: RegistryView | undefined,
  seenFans: number,
  /** The page has a registry it cannot read yet: counted as seen, and said so. */
  awaitingRegistry = false,
): FleetCount {
  const states = Object.fromEntries(HEALTH_STATES.map((s) => [s, 0])) as HealthCounts;
  let unacknowledged = 0;
  let counted = 0;
  for (const record of records) {
    if (registry !== undefined && registry.get(record.deviceID)?.state !== "active") continue;
    counted++;
    states[record.state]++;
    if ((record.state === "alarm" || record.state === "warning") && !record.acknowledged) unacknowledged++;
  }
  const openAlarms = states.alarm + states.warning;
  if (registry === undefined)
    return {
      source: awaitingRegistry ? "awaiting-registry" : "seen",
      fans: seenFans,
      states,
      unreported: 0,
      pending: 0,
      retired: 0,
      openAlarms,
      unacknowledged,
    };
  const { active, pending, retired } = registry.counts();
  return {
    source: "registry",
    fans: active,
    states,
    // Health keeps at most the page's cap of records: beyond it an active fan counts here too.
    unreported: Math.max(0, active - counted),
    pending,
    retired,
    openAlarms,
    unacknowledged,
  };
}

/**
 * The fans part of the status line: "12 fans: 8 ok, 0 warning, 2 alarm, 0 cleared, 1 silent, 1 not
 * reported; 2 pending · 2 unacknowledged". "not reported" only when there are such fans; without a
 * registry "12 fans seen (no registry): …" ("no registry yet" while it cannot be read), pending and
 * the adding-up left out.
 */
export function fansLine(count: Omit<FleetCount, "retired" | "openAlarms">): string {
  const { ok, warning, alarm, cleared, silent } = count.states;
  const states = `${ok} ok, ${warning} warning, ${alarm} alarm, ${cleared} cleared, ${silent} silent`;
  const unacknowledged = `${count.unacknowledged} unacknowledged`;
  if (count.source !== "registry") {
    const why = count.source === "seen" ? "no registry" : "no registry yet";
    return `${count.fans} fans seen (${why}): ${states} · ${unacknowledged}`;
  }
  const unreported = count.unreported > 0 ? `, ${count.unreported} not reported` : "";
  return `${count.fans} fans: ${states}${unreported}; ${count.pending} pending · ${unacknowledged}`;
}
