import { DOWNSAMPLES, downsampleSelect, RAW_POLICY } from "./downsampling.js";
import type { Series } from "./influx-http.js";

/**
 * Downsampling raw points that the continuous queries never saw (they look back 10 minutes only):
 * the history already there when `influx-setup` first bounds `autogen` (an upgrade), or a stretch
 * asked for with `--backfill`. One `SELECT … INTO` per continuous query and UTC day, so that
 * InfluxDB never holds more than a day of raw points in memory for one query, and a line per day
 * says how far it got.
 */

/** One InfluxQL statement, as the admin. */
export type Run = (statement: string, options?: { timeoutMs?: number }) => Promise<Series[]>;

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** A day of 10 fans at 1 Hz takes about a second (docs/persistence.md); this leaves room for a slow disk. */
const DAY_QUERY_TIMEOUT_MS = 300_000;

export const floorTo = (ms: number, unit: number) => Math.floor(ms / unit) * unit;
export const floorMinute = (ms: number) => floorTo(ms, MINUTE);

/** The rows of every series; InfluxDB leaves `values` out of an empty one (no continuous query yet). */
export function rows(series: Series[]): unknown[][] {
  return series.flatMap((s) => (s.values as unknown[][] | undefined) ?? []);
}

/**
 * The start of the oldest shard group of the raw policy, or undefined when it has none (no point
 * yet): read from InfluxDB's metadata, so that finding it scans no data. Its points start within
 * that shard group (7 days by default for the infinite `autogen`): the first days may be empty.
 */
export async function oldestRawShard(run: Run, database: string): Promise<number | undefined> {
  let oldest: number | undefined;
  for (const series of await run("SHOW SHARDS")) {
    if (series.name !== database) continue;
    const policy = series.columns.indexOf("retention_policy");
    const start = series.columns.indexOf("start_time");
    for (const row of rows([series])) {
      if (row[policy] !== RAW_POLICY) continue;
      const at = Date.parse(String(row[start]));
      if (Number.isFinite(at) && (oldest === undefined || at < oldest)) oldest = at;
    }
  }
  return oldest;
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const instant = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

/**
 * Every continuous query's SELECT … INTO over [from, to), a UTC day at a time. `from` and `to` are
 * whole minutes (a partial minute's aggregate would overwrite the continuous query's whole one).
 * Reports one line per day and one total per continuous query.
 */
export async function backfill(
  run: Run,
  database: string,
  span: { from: number; to: number },
  say: (line: string) => void,
): Promise<void> {
  const totals = new Map(DOWNSAMPLES.map((d) => [d.name, 0]));
  const days = Math.max(0, Math.ceil((span.to - floorTo(span.from, DAY)) / DAY));
  let done = 0;
  for (let start = span.from; start < span.to; start = floorTo(start, DAY) + DAY) {
    const end = Math.min(floorTo(start, DAY) + DAY, span.to);
    const where = `time >= '${instant(start)}' AND time < '${instant(end)}'`;
    let written = 0;
    for (const d of DOWNSAMPLES) {
      const result = await run(downsampleSelect(database, d, where), { timeoutMs: DAY_QUERY_TIMEOUT_MS });
      const n = Number(rows(result)[0]?.[1] ?? 0);
      totals.set(d.name, (totals.get(d.name) ?? 0) + n);
      written += n;
    }
    done += 1;
    say(`backfilled ${day(start)}: ${written} aggregates (day ${done} of ${days})`);
  }
  for (const [name, n] of totals) say(`backfilled ${name}: ${n} aggregates`);
}

/** "720h0m0s" (as SHOW RETENTION POLICIES shows a duration) in ms; "0s", infinite, as Infinity. */
export function shownMs(shown: unknown): number {
  const match = /^(\d+)h(\d+)m(\d+)s$/.exec(String(shown));
  if (match === null) return Infinity;
  const [hours, minutes, seconds] = match.slice(1).map(Number) as [number, number, number];
  return ((hours * 60 + minutes) * 60 + seconds) * 1000;
}
