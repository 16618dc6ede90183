// npm run bench:backup — the backups of issue 23 (docs/backup.md, docs/persistence.md), each
// against a floor measured in the same run, on real servers of this machine:
//   nats    `fanwatch nats backup` of FAN_HEALTH_EVENTS and FAN_EVIDENCE (N messages, 4:1) and the KV
//           bucket fan_health (10,000 keys), against reading the same streams through an ordered
//           consumer and doing nothing; `fanwatch nats restore` into an empty nats-server, against
//           publishing the same messages with plain JetStream publish (floor.ts). Each run is a
//           process of its own: seconds, messages/s, MB/s of message data, peak RSS.
//   influx  `influxd backup -portable` and `influxd restore -portable` of database fan holding P points
//           (Debian's influxd), against a full scan (`SELECT count(*)`) and writing the same points.
// Rounds alternate; medians are reported. Progress goes to stderr; stdout gets one JSON line per
// round and a summary line last.
//   --short          N 20,000 and P 200,000 (well under a minute); default N 100,000, P 1,000,000
//   --parts a,b      only these: nats, influx
//   BENCH_ROUNDS     rounds (default 3)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runInflux, type InfluxResult } from "./influx.js";
import { runNats, type NatsResult } from "./nats.js";

const { values } = parseArgs({
  options: { short: { type: "boolean", default: false }, parts: { type: "string", default: "nats,influx" } },
});
const parts = values.parts.split(",");
const unknown = parts.filter((p) => p !== "nats" && p !== "influx");
if (unknown.length > 0) throw new RangeError(`unknown parts ${unknown.join(", ")}; the parts are nats, influx`);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const settings = values.short
  ? { nats: { events: 20_000, keys: 10_000, rounds }, influx: { points: 200_000, rounds } }
  : { nats: { events: 100_000, keys: 10_000, rounds }, influx: { points: 1_000_000, rounds } };

const progress = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const work = await mkdtemp(join(tmpdir(), "fanwatch-bench-backup-"));
const started = Date.now();
progress(`bench:backup${values.short ? " --short" : ""}: ${parts.join(", ")}, ${rounds} rounds; files in ${work}`);
let nats: NatsResult | undefined;
let influx: InfluxResult | undefined;
try {
  if (parts.includes("nats")) {
    nats = await runNats(settings.nats, work, progress);
    progress(
      `nats: backup ${nats.backup.fanwatch.messagesPerSecond}/s, ${nats.backup.timeRatioToFloor}× the read floor's time; restore ${nats.restore.fanwatch.messagesPerSecond}/s, ${nats.restore.timeRatioToFloor}× the publish floor's`,
    );
  }
  if (parts.includes("influx")) {
    influx = await runInflux(settings.influx, work, progress);
    progress(
      `influx: backup ${influx.backup.pointsPerSecond} points/s (${influx.backupTimeRatioToScan}× a full scan's time); restore ${influx.restore.pointsPerSecond} points/s (${influx.restoreTimeRatioToWrite}× writing them)`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
console.log(
  JSON.stringify({
    kind: "summary",
    short: values.short,
    rounds,
    nats: nats ?? null,
    influx: influx ?? null,
    totalMs: Date.now() - started,
  }),
);
progress(`done in ${Math.round((Date.now() - started) / 1000)} s`);
