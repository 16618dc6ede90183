import { z } from "zod";
import { HEALTH_STATES, type HealthRecord, type HealthState } from "../../lib/health.js";
import { InputError } from "../../lib/errors.js";

/** `GET /function/health` filters: `?state=alarm,warning`, `?deviceID=3` (repeatable or comma separated), `?acknowledged=false`. */
export interface HealthQuery {
  states: Set<HealthState> | undefined;
  deviceIDs: Set<string> | undefined;
  acknowledged: boolean | undefined;
}

const list = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s !== ""));
const QuerySchema = z.object({
  state: list.pipe(z.array(z.enum(HEALTH_STATES))).optional(),
  // A device ID may hold a comma: ?deviceID= is repeatable and each value is one ID.
  deviceID: z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v])).optional(),
  acknowledged: z.enum(["true", "false"]).transform((v) => v === "true").optional(),
});

export function parseQuery(query: Record<string, string | string[] | undefined>): HealthQuery {
  const known = Object.fromEntries(Object.entries(query).filter(([k]) => k in QuerySchema.shape));
  const parsed = QuerySchema.safeParse(known);
  if (!parsed.success) {
    // The parameter, not the position inside its comma-separated list: ?state=broken names "state".
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? "query");
    throw new InputError(`${field}: ${issue?.message ?? "invalid"} (filters are state=${HEALTH_STATES.join(",")}, deviceID=<id>, acknowledged=true|false)`, field, { cause: parsed.error });
  }
  const q = parsed.data;
  return {
    states: q.state === undefined || q.state.length === 0 ? undefined : new Set(q.state),
    deviceIDs: q.deviceID === undefined ? undefined : new Set(q.deviceID),
    acknowledged: q.acknowledged,
  };
}

export interface HealthListing {
  fans: HealthRecord[];
  /** Every fan of the fleet by state, whatever the filters (a status line needs them with any list). */
  counts: Record<HealthState, number>;
}

/**
 * The fans that match, open alarms first (unacknowledged before acknowledged), then by device ID
 * in numeric-aware order ("2" before "10"): what an engineer looks at first comes first.
 */
export function listFans(records: Iterable<HealthRecord>, query: HealthQuery): HealthListing {
  const fans: HealthRecord[] = [];
  const counts = Object.fromEntries(HEALTH_STATES.map((s) => [s, 0])) as Record<HealthState, number>;
  for (const r of records) {
    counts[r.state]++;
    if (query.states !== undefined && !query.states.has(r.state)) continue;
    if (query.deviceIDs !== undefined && !query.deviceIDs.has(r.deviceID)) continue;
    if (query.acknowledged !== undefined && r.acknowledged !== query.acknowledged) continue;
    fans.push(r);
  }
  fans.sort(compareRecords);
  return { fans, counts };
}

const collator = new Intl.Collator("en", { numeric: true });

function rank(r: HealthRecord): number {
  if (r.state !== "alarm") return 2;
  return r.acknowledged ? 1 : 0;
}

export function compareRecords(a: HealthRecord, b: HealthRecord): number {
  return rank(a) - rank(b) || collator.compare(a.deviceID, b.deviceID);
}
