import type { ShadowComparison } from "./schemas.js";

/** A site's shadow against its active model, added up over the predict replicas that compared them. */
export interface ComparisonTotals {
  site: string;
  active: string;
  shadow: string;
  /** Predict replicas whose records are counted. */
  replicas: number;
  /** Records of this shadow against another active model (before a promote or rollback): not counted. */
  stale: number;
  since: string | null;
  at: string | null;
  readings: number;
  agreed: number;
  /** agreed / readings; null before any reading. */
  agreement: number | null;
  alarms: { active: number; shadow: number };
  /** Fans whose alarms the shadow would have opened, or closed, that the active model did not. */
  fans: { opened: string[]; closed: string[] };
  /** Each replica's ratio weighted by its readings; null where none measured it. */
  cost: { cpuRatio: number | null; latencyRatio: number | null };
}

/**
 * Adds up the predict replicas' records of `shadow` against `active` (records against another
 * active model are stale: counted apart). `fanwatch model compare`, the promotion gates and the
 * page's Models panel all read a shadow through this sum.
 */
export function sumComparisons(
  records: readonly ShadowComparison[],
  active: string,
  shadow: string,
  site: string,
): ComparisonTotals {
  const counted = records.filter((r) => r.active === active && r.shadow === shadow);
  const readings = counted.reduce((n, r) => n + r.readings, 0);
  const agreed = counted.reduce((n, r) => n + r.agreed, 0);
  const union = (pick: (r: ShadowComparison) => string[]) =>
    [...new Set(counted.flatMap(pick))].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const times = (pick: (r: ShadowComparison) => string) => counted.map(pick).sort();
  return {
    site,
    active,
    shadow,
    replicas: counted.length,
    stale: records.length - counted.length,
    since: times((r) => r.since)[0] ?? null,
    at: times((r) => r.at).at(-1) ?? null,
    readings,
    agreed,
    agreement: readings === 0 ? null : agreed / readings,
    alarms: {
      active: counted.reduce((n, r) => n + r.alarms.active, 0),
      shadow: counted.reduce((n, r) => n + r.alarms.shadow, 0),
    },
    fans: { opened: union((r) => r.fans.opened), closed: union((r) => r.fans.closed) },
    cost: {
      cpuRatio: weighted(counted, (r) => r.cost.cpuRatio),
      latencyRatio: weighted(counted, (r) => r.cost.latencyRatio),
    },
  };
}

function weighted(records: readonly ShadowComparison[], pick: (r: ShadowComparison) => number | null): number | null {
  let sum = 0;
  let weight = 0;
  for (const r of records) {
    const value = pick(r);
    if (value === null || r.readings === 0) continue;
    sum += value * r.readings;
    weight += r.readings;
  }
  return weight === 0 ? null : sum / weight;
}
