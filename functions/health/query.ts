import { z } from "zod";
import { HEALTH_STATES, type HealthRecord, type HealthState } from "../../lib/domain/health.js";
import { InputError } from "../../lib/errors.js";

/** `GET /function/health` filters: `?state=alarm,warning`, `?deviceID=3` (repeatable or comma separated), `?acknowledged=false`, and `?limit=N`. */
export interface HealthQuery {
  states: Set<HealthState> | undefined;
  deviceIDs: Set<string> | undefined;
  acknowledged: boolean | undefined;
  /** The most records listed (the first in the order below). */
  limit: number;
}

/**
 * Records listed when the caller sets no limit: a record is about 260 bytes, so a 100,000-fan
 * fleet listed whole is 26 MB, and the page reads the list every 5 s. 1,000 is what the page keeps
 * (and what a person can read); open episodes come first, so none is cut off before a quiet fan.
 * A caller that wants every fan asks for it (`?limit=1000000`).
 */
export const DEFAULT_LIMIT = 1_000;
export const MAX_LIMIT = 1_000_000;

const list = z.union([z.string(), z.array(z.string())]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);
const QuerySchema = z.object({
  state: list.pipe(z.array(z.enum(HEALTH_STATES))).optional(),
  // A device ID may hold a comma: ?deviceID= is repeatable and each value is one ID.
  deviceID: z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional(),
  acknowledged: z
    .enum(["true", "false"])
    .transform((v) => v === "true")
    .optional(),
  limit: z
    .string()
    .regex(/^\d+$/, "a whole number of records")
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_LIMIT))
    .optional(),
});

export function parseQuery(query: Record<string, string | string[] | undefined>): HealthQuery {
  const known = Object.fromEntries(Object.entries(query).filter(([k]) => k in QuerySchema.shape));
  const parsed = QuerySchema.safeParse(known);
  if (!parsed.success) {
    // The parameter, not the position inside its comma-separated list: ?state=broken names "state".
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? "query");
    throw new InputError(
      `${field}: ${issue?.message ?? "invalid"} (filters are state=${HEALTH_STATES.join(",")}, deviceID=<id>, acknowledged=true|false, limit=1..${MAX_LIMIT})`,
      field,
      { cause: parsed.error },
    );
  }
  const q = parsed.data;
  return {
    states: q.state === undefined || q.state.length === 0 ? undefined : new Set(q.state),
    deviceIDs: q.deviceID === undefined ? undefined : new Set(q.deviceID),
    acknowledged: q.acknowledged,
    limit: q.limit ?? DEFAULT_LIMIT,
  };
}

export interface HealthListing {
  fans: HealthRecord[];
  /** Fans that match the filters: more than `fans` holds when the limit cut the list. */
  matched: number;
  /** Every fan of the fleet by state, whatever the filters (a status line needs them with any list). */
  counts: Record<HealthState, number>;
}

/**
 * The first `limit` fans that match, open episodes first: unacknowledged alarms, acknowledged
 * alarms, unacknowledged warnings, acknowledged warnings; then every other fan. Within each, by
 * device ID in numeric-aware order ("2" before "10"): what an engineer looks at first comes first.
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
  const matched = fans.length;
  if (fans.length > query.limit) fans.length = query.limit;
  return { fans, matched, counts };
}

const collator = new Intl.Collator("en", { numeric: true });

function rank(r: HealthRecord): number {
  if (r.state === "alarm") return r.acknowledged ? 1 : 0;
  if (r.state === "warning") return r.acknowledged ? 3 : 2;
  return 4;
}

export function compareRecords(a: HealthRecord, b: HealthRecord): number {
  return rank(a) - rank(b) || collator.compare(a.deviceID, b.deviceID);
}
