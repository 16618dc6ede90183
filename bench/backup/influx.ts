import { mkdtemp, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { startInfluxDB, type Influx } from "../../test/support/influxdb.js";
import { measure, median, ratio } from "./measure.js";

const INFLUXD = "/usr/bin/influxd";
const FANS = 20;
/** A reading every 5 s per fan: 1,000,000 points are 20 fans over 2.9 days (the shards are 7 days: one or two). */
const EVERY_S = 5;
const BATCH = 10_000;

export interface InfluxSettings {
  points: number;
  rounds: number;
}

export interface InfluxRun {
  seconds: number;
  pointsPerSecond: number;
}

export interface InfluxResult {
  kind: "influx";
  points: number;
  backupMb: number;
  /** Medians over the rounds. */
  backup: InfluxRun & { peakRssMb: number };
  restore: InfluxRun & { peakRssMb: number; untilQueryableSeconds: number };
  /** The baselines: a full scan (`SELECT count(*)`) of the points, and writing them over HTTP. */
  scan: InfluxRun;
  write: InfluxRun;
  /** Backup and restore times as multiples of the scan's and the write's. */
  backupTimeRatioToScan: number | null;
  restoreTimeRatioToWrite: number | null;
}

/**
 * `influxd backup -portable` of database fan holding `points` telemetry points, and `influxd restore
 * -portable` of it into an empty InfluxDB (docs/persistence.md), each round against a baseline of
 * the same points: a full scan on the source, and writing them into a fresh InfluxDB (batches of
 * 10,000 lines, two at a time). The restore also counts until every point answers a query.
 */
export async function runInflux(
  settings: InfluxSettings,
  work: string,
  progress: (line: string) => void,
): Promise<InfluxResult> {
  const source = await startInfluxDB();
  try {
    const loaded = await writePoints(source, settings.points);
    progress(`influx: source loaded with ${settings.points} points in ${loaded.toFixed(1)} s`);
    // Untimed: the first backup snapshots the cache to TSM files; the rounds then measure the same work.
    await measure(INFLUXD, [
      "backup",
      "-portable",
      "-db",
      "fan",
      "-host",
      source.rpc,
      await mkdtemp(join(work, "warm-")),
    ]);
    const rounds: Array<{
      backup: number;
      backupRss: number;
      restore: number;
      restoreRss: number;
      queryable: number;
      scan: number;
      write: number;
    }> = [];
    let backupBytes = 0;
    for (let round = 1; round <= settings.rounds; round++) {
      const scanStarted = performance.now();
      const counted = await count(source);
      const scan = (performance.now() - scanStarted) / 1000;
      if (counted !== settings.points) throw new Error(`the source holds ${counted} of ${settings.points} points`);

      const dir = await mkdtemp(join(work, "influx-"));
      const backup = await measure(INFLUXD, ["backup", "-portable", "-db", "fan", "-host", source.rpc, dir]);
      backupBytes = await sizeOf(dir);

      const scratch = await startInfluxDB();
      const write = await writePoints(scratch, settings.points).finally(() => scratch.stop());

      const target = await startInfluxDB({ createDatabase: false });
      let restore;
      let queryable;
      try {
        const started = performance.now();
        restore = await measure(INFLUXD, ["restore", "-portable", "-db", "fan", "-host", target.rpc, dir]);
        while ((await count(target).catch(() => 0)) !== settings.points) {
          if (performance.now() - started > 60_000)
            throw new Error("the restored points did not all answer within 60 s");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        queryable = (performance.now() - started) / 1000;
      } finally {
        await target.stop();
      }
      const r = {
        backup: backup.seconds,
        backupRss: backup.peakRssMb,
        restore: restore.seconds,
        restoreRss: restore.peakRssMb,
        queryable,
        scan,
        write,
      };
      rounds.push(r);
      console.log(JSON.stringify({ kind: "influx-round", round, points: settings.points, backupBytes, ...r }));
      progress(
        `influx round ${round}: backup ${r.backup.toFixed(2)} s (${mb(backupBytes)} MB), scan ${r.scan.toFixed(2)} s; restore ${r.restore.toFixed(2)} s (all points answer after ${r.queryable.toFixed(2)} s), write ${r.write.toFixed(2)} s`,
      );
    }
    const m = (pick: (r: (typeof rounds)[number]) => number) => median(rounds.map(pick));
    const rate = (seconds: number): InfluxRun => ({
      seconds: Math.round(seconds * 1000) / 1000,
      pointsPerSecond: Math.round(settings.points / seconds),
    });
    return {
      kind: "influx",
      points: settings.points,
      backupMb: mb(backupBytes),
      backup: { ...rate(m((r) => r.backup)), peakRssMb: m((r) => r.backupRss) },
      restore: {
        ...rate(m((r) => r.restore)),
        peakRssMb: m((r) => r.restoreRss),
        untilQueryableSeconds: Math.round(m((r) => r.queryable) * 1000) / 1000,
      },
      scan: rate(m((r) => r.scan)),
      write: rate(m((r) => r.write)),
      backupTimeRatioToScan: ratio(
        m((r) => r.backup),
        m((r) => r.scan),
      ),
      restoreTimeRatioToWrite: ratio(
        m((r) => r.restore),
        m((r) => r.write),
      ),
    };
  } finally {
    await source.stop();
  }
}

async function count(influx: Influx): Promise<number> {
  const series = await influx.query("SELECT count(*) FROM telemetry");
  return Number(series[0]?.values[0]?.[1] ?? 0);
}

/** Writes the points into database fan, two batches at a time; resolves to the seconds it took. */
async function writePoints(influx: Influx, points: number): Promise<number> {
  const started = performance.now();
  const end = Math.floor(Date.now() / 1000) - 3_600;
  const perFan = Math.ceil(points / FANS);
  const start = end - perFan * EVERY_S;
  let next = 0;
  const batch = (): string | undefined => {
    if (next >= points) return undefined;
    const lines: string[] = [];
    for (const stop = Math.min(points, next + BATCH); next < stop; next++) {
      const fan = next % FANS;
      const i = Math.floor(next / FANS);
      // Sensor noise (a fixed sequence): regular values would compress to nearly nothing in TSM files.
      const r = noise(next);
      lines.push(
        `telemetry,deviceID=fan-${fan} rotation=${Math.round(1500 + r * 40)},temperature=${(40 + r * 3).toFixed(2)},vibration=${(0.5 + noise(next + points) * 0.2).toFixed(4)},sound=${(61 + r * 4).toFixed(1)} ${start + i * EVERY_S}`,
      );
    }
    return lines.join("\n");
  };
  const worker = async () => {
    for (let body = batch(); body !== undefined; body = batch()) {
      const response = await fetch(`${influx.url}/write?db=fan&precision=s`, { method: "POST", body });
      if (response.status !== 204)
        throw new Error(`InfluxDB refused a write: ${response.status} ${await response.text()}`);
    }
  };
  await Promise.all([worker(), worker()]);
  return (performance.now() - started) / 1000;
}

async function sizeOf(dir: string): Promise<number> {
  let sum = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }))
    if (entry.isFile()) sum += (await stat(join(dir, entry.name))).size;
  return sum;
}

/** A number in [0, 1) that looks random and is the same for the same n. */
function noise(n: number): number {
  const x = Math.sin(n * 12.9898) * 43_758.5453;
  return x - Math.floor(x);
}

const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
