import { FEATURES } from "../../lib/domain/features.js";

/**
 * Retention and downsampling of database `fan` (docs/persistence.md, "Retention and downsampling").
 * Raw points live in `autogen`, InfluxDB's default policy, bounded here: Telegraf, the writer, the
 * dashboard and `fanwatch deadletters` name no policy and so keep writing and reading raw data. One
 * minute's aggregates go to `downsampled`, kept much longer, under the same measurement names, the
 * mean under the field's own name: a panel's query reads them by naming the policy
 * (`FROM "downsampled"."telemetry"`).
 */
export const RAW_POLICY = "autogen";
export const DOWNSAMPLED_POLICY = "downsampled";
/** The width of one aggregate. */
export const DOWNSAMPLE_INTERVAL = "1m";
/**
 * Each continuous query recomputes the last 10 minutes every minute: points that arrive late (a
 * broker or writer catching up after a restart, Telegraf's buffer after an InfluxDB outage) are
 * still counted if they are at most this late; older gaps are filled by `--backfill`.
 */
export const RESAMPLE_FOR = "10m";

/** An InfluxQL duration in hours, days or weeks (InfluxQL has no months or years). */
export const RETENTION_DURATION = /^[1-9]\d*[hdw]$/;

export interface Downsample {
  /** The continuous query's name. */
  name: string;
  measurement: string;
  /** `aggregate("field") AS "name"` terms. */
  select: string[];
}

const q = (name: string) => `"${name}"`;

/**
 * What is kept of each measurement, per fan (tags are kept: GROUP BY *): readings' mean and max of
 * each sensor and how many there were; predictions' fault share (the mean of 0/1, what the
 * dashboard plots), mean and max probability and how many; dead letters and health transitions
 * counted (their text is only in the raw policy).
 */
export const DOWNSAMPLES: readonly Downsample[] = [
  {
    name: "telemetry_1m",
    measurement: "telemetry",
    select: [
      ...FEATURES.flatMap((f) => [`mean(${q(f)}) AS ${q(f)}`, `max(${q(f)}) AS ${q(`${f}_max`)}`]),
      `count(${q(FEATURES[0])}) AS "readings"`,
    ],
  },
  {
    name: "prediction_1m",
    measurement: "prediction",
    select: [
      `mean("fault") AS "fault"`,
      `mean("probability") AS "probability"`,
      `max("probability") AS "probability_max"`,
      `count("fault") AS "predictions"`,
    ],
  },
  { name: "deadletter_1m", measurement: "deadletter", select: [`count("error") AS "deadletters"`] },
  { name: "health_1m", measurement: "health", select: [`count("alarmId") AS "transitions"`] },
];

/** The SELECT … INTO of one downsample, optionally limited to a time range (a backfill). */
export function downsampleSelect(database: string, d: Downsample, where?: string): string {
  return [
    `SELECT ${d.select.join(", ")}`,
    `INTO ${q(database)}.${q(DOWNSAMPLED_POLICY)}.${q(d.measurement)}`,
    `FROM ${q(database)}.${q(RAW_POLICY)}.${q(d.measurement)}`,
    ...(where === undefined ? [] : [`WHERE ${where}`]),
    `GROUP BY time(${DOWNSAMPLE_INTERVAL}), *`,
  ].join(" ");
}

export function createContinuousQuery(database: string, d: Downsample): string {
  return (
    `CREATE CONTINUOUS QUERY ${q(d.name)} ON ${q(database)} ` +
    `RESAMPLE EVERY ${DOWNSAMPLE_INTERVAL} FOR ${RESAMPLE_FOR} ` +
    `BEGIN ${downsampleSelect(database, d)} END`
  );
}

/**
 * InfluxDB shows a continuous query as it parsed it, quotes dropped where a name needs none and
 * keywords in its own case: two texts are the same query when they match once quotes, spaces and
 * case are set aside.
 */
export function sameQuery(a: string, b: string): boolean {
  const norm = (s: string) => s.replace(/"/g, "").replace(/\s+/g, " ").trim().toLowerCase();
  return norm(a) === norm(b);
}

/** "30d" → "720h0m0s", as SHOW RETENTION POLICIES shows a duration. */
export function shownDuration(duration: string): string {
  const n = Number(duration.slice(0, -1));
  const hours = { h: 1, d: 24, w: 168 }[duration.slice(-1) as "h" | "d" | "w"] * n;
  return `${hours}h0m0s`;
}

/**
 * The shard group duration InfluxDB itself would pick for a policy this long: 1 hour under 2 days,
 * 1 day up to 6 months, 7 days beyond. Set explicitly because altering `autogen` (infinite, 7-day
 * shards) to 30 days would otherwise keep 7-day shards, and data is dropped a whole shard at a time.
 */
export function shardDuration(duration: string): string {
  const hours = Number(shownDuration(duration).split("h")[0]);
  if (hours < 48) return "1h";
  if (hours <= 24 * 183) return "1d";
  return "7d";
}
