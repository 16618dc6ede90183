import type { Command } from "commander";
import { StoreUnavailableError, UsageError } from "../lib/errors.js";
import { NATS_URL_SETTINGS, natsAddress, withNats, type CommandConnection } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, integer, type Io } from "./parse.js";

/** How the commands connect: a 10 s JetStream timeout (a backup reads in large batches). */
const CONNECTION: CommandConnection = {
  name: "fanwatch-nats-admin",
  timeoutMs: 10_000,
  unavailable: (message, cause) => new StoreUnavailableError(message, { cause }),
};
const WHY = "which NATS server?";

interface BackupOptions {
  out?: string;
  into?: string;
  keep?: number;
  stream: string[];
}

interface RestoreOptions {
  stream: string[];
  replace?: boolean;
}

const repeat = (value: string, previous: string[]) => [...previous, value];

/** `fanwatch nats backup|restore`: JetStream streams and KV buckets to files and back (docs/backup.md). */
export function addNatsCommand(program: Command, io: Io): void {
  const nats = program.command("nats").description("back up NATS JetStream's streams and buckets, and restore them");

  const backup = nats
    .command("backup")
    .description(
      "write every stream (KV buckets included) to a directory: its configuration and its messages up to its last sequence when read",
    )
    .option("--out <dir>", "the backup's directory (made if missing; must be empty)")
    .option("--into <dir>", "make the backup in a new directory nats-<UTC time> under this one")
    .option("--keep <n>", "with --into: then delete all but the newest n backups there", atLeast("--keep", 1))
    .option("--stream <name>", "only this stream (repeatable), e.g. FAN_HEALTH_EVENTS or KV_fan_health", repeat, []);
  const backupGiven = addSettingFlags(backup, NATS_URL_SETTINGS);
  addSettingsHelp(backup, [{ title: "Where NATS is (a flag beats its variable)", settings: NATS_URL_SETTINGS }]);
  backup.exitOverride();
  backup.action(async (opts: BackupOptions & Record<string, unknown>) => {
    if ((opts.out === undefined) === (opts.into === undefined))
      throw new UsageError("give --out <dir> or --into <dir> (one of them)");
    if (opts.keep !== undefined && opts.into === undefined) throw new UsageError("--keep is for --into");
    const where = natsAddress(backupGiven(opts), WHY);
    const [{ backupStreams }, { datedBackupDir, pruneBackups }] = await Promise.all([
      import("../lib/nats/backup.js"),
      import("../lib/nats/backup-keep.js"),
    ]);
    const dir = opts.out ?? datedBackupDir(opts.into as string);
    const began = Date.now();
    await withNats(where, CONNECTION, async ({ js, jsm, server }) => {
      const manifest = await backupStreams(js, jsm, dir, {
        streams: opts.stream,
        server,
        progress: {
          reading: (stream, n, total) => io.progress(`${stream}: ${n} of ${total} messages`),
          done: (s) => {
            io.progressDone();
            io.err(`${s.name}: ${s.messages} messages, ${mb(s.bytes)} of data, up to sequence ${s.lastSeq}`);
          },
        },
      });
      const messages = manifest.streams.reduce((sum, s) => sum + s.messages, 0);
      io.out(
        `backed up ${manifest.streams.length} streams, ${messages} messages, from NATS ${manifest.server} at ${where.shown} to ${dir} in ${seconds(began)}; each stream as of its last sequence when its reading began`,
      );
    });
    if (opts.into !== undefined && opts.keep !== undefined)
      for (const gone of await pruneBackups(opts.into, opts.keep)) io.err(`deleted the older backup ${gone}`);
  });

  const restore = nats
    .command("restore")
    .description(
      "create a backup's streams with their configuration and publish their messages in order (new sequence numbers and times)",
    )
    .argument("<dir>", "a directory written by fanwatch nats backup")
    .option("--stream <name>", "only this stream of the backup (repeatable)", repeat, [])
    .option("--replace", "delete a stream that holds messages and restore over it (else it is refused)");
  const restoreGiven = addSettingFlags(restore, NATS_URL_SETTINGS);
  addSettingsHelp(
    restore,
    [{ title: "Where NATS is (a flag beats its variable)", settings: NATS_URL_SETTINGS }],
    ["Stop health and the notifier first (scale them to 0): docs/backup.md."],
  );
  restore.exitOverride();
  restore.action(async (dir: string, opts: RestoreOptions & Record<string, unknown>) => {
    const where = natsAddress(restoreGiven(opts), WHY);
    const { restoreStreams } = await import("../lib/nats/restore.js");
    const began = Date.now();
    await withNats(where, CONNECTION, async ({ js, jsm }) => {
      const results = await restoreStreams(js, jsm, dir, {
        streams: opts.stream,
        replace: opts.replace === true,
        progress: {
          publishing: (stream, n, total) => io.progress(`${stream}: ${n} of ${total} messages`),
          done: (r) => {
            io.progressDone();
            const dropped = r.duplicates === 0 ? "" : `, ${r.duplicates} dropped as repeated message ids`;
            io.err(`${r.name}: published ${r.published}${dropped}; the stream holds ${r.stored}`);
          },
        },
      });
      const published = results.reduce((sum, r) => sum + r.published, 0);
      io.out(
        `restored ${results.length} streams, ${published} messages, from ${dir} to NATS at ${where.shown} in ${seconds(began)}`,
      );
    });
  });
}

function atLeast(flag: string, min: number): (value: string) => number {
  return (value) => {
    const n = integer(flag)(value);
    if (n < min) throw new UsageError(`${flag} must be at least ${min}`);
    return n;
  };
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
