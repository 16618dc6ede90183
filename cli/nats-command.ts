import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Command } from "commander";
import { ConfigError, StoreUnavailableError, UsageError } from "../lib/errors.js";
import { readSettingsFrom } from "../lib/infra/settings.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import { NOTIFIER_SETTINGS } from "../notifier/config.js";
import { addSettingFlags, addSettingsHelp, integer, type Io } from "./parse.js";

/** Where NATS is: the notifier's NATS_URL and --nats, as `fanwatch notifications` reads it (credentials go in the URL). */
const NATS_ADMIN_SETTINGS = { NATS_URL: NOTIFIER_SETTINGS.NATS_URL };

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
  const backupGiven = addSettingFlags(backup, NATS_ADMIN_SETTINGS);
  addSettingsHelp(backup, [{ title: "Where NATS is (a flag beats its variable)", settings: NATS_ADMIN_SETTINGS }]);
  backup.exitOverride();
  backup.action(async (opts: BackupOptions & Record<string, unknown>) => {
    if ((opts.out === undefined) === (opts.into === undefined))
      throw new UsageError("give --out <dir> or --into <dir> (one of them)");
    if (opts.keep !== undefined && opts.into === undefined) throw new UsageError("--keep is for --into");
    const where = natsAddress(backupGiven(opts));
    const [{ backupStreams }, { datedBackupDir, pruneBackups }] = await Promise.all([
      import("../lib/nats/backup.js"),
      import("../lib/nats/backup-keep.js"),
    ]);
    const dir = opts.out ?? datedBackupDir(opts.into as string);
    const began = Date.now();
    await withNats(where, async ({ js, jsm, server }) => {
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
  const restoreGiven = addSettingFlags(restore, NATS_ADMIN_SETTINGS);
  addSettingsHelp(
    restore,
    [{ title: "Where NATS is (a flag beats its variable)", settings: NATS_ADMIN_SETTINGS }],
    ["Stop health and the notifier first (scale them to 0): docs/backup.md."],
  );
  restore.exitOverride();
  restore.action(async (dir: string, opts: RestoreOptions & Record<string, unknown>) => {
    const where = natsAddress(restoreGiven(opts));
    const { restoreStreams } = await import("../lib/nats/restore.js");
    const began = Date.now();
    await withNats(where, async ({ js, jsm }) => {
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

interface NatsAddress {
  url: string;
  from: string;
  shown: string;
}

function natsAddress(given: { NATS_URL?: string | undefined }): NatsAddress {
  const { values, from } = readSettingsFrom(NATS_ADMIN_SETTINGS, undefined, given);
  if (values.NATS_URL === undefined) throw new ConfigError("NATS_URL is not set (or --nats): which NATS server?");
  return { url: values.NATS_URL, from: from.NATS_URL ?? "NATS_URL", shown: redactUrl(values.NATS_URL) };
}

/** Connects once, without reconnecting (a command says NATS is away rather than waiting), runs `work`, closes. */
async function withNats(
  where: NatsAddress,
  work: (nats: { js: JetStreamClient; jsm: JetStreamManager; server: string }) => Promise<void>,
): Promise<void> {
  const [{ connect }, { jetstream, jetstreamManager }] = await Promise.all([
    import("@nats-io/transport-node"),
    import("@nats-io/jetstream"),
  ]);
  const unavailable = (what: string, error: unknown) =>
    new StoreUnavailableError(`${what} at ${where.shown} (${where.from}): ${(error as Error).message}`, {
      cause: error,
    });
  const nc = await connect({ servers: where.url, timeout: 5_000, reconnect: false, name: "fanwatch-nats-admin" }).catch(
    (error: unknown) => {
      throw unavailable("cannot reach NATS", error);
    },
  );
  try {
    const jsm = await jetstreamManager(nc, { timeout: 10_000 }).catch((error: unknown) => {
      throw unavailable("no JetStream on NATS", error);
    });
    await work({ js: jetstream(nc, { timeout: 10_000 }), jsm, server: nc.info?.version ?? "unknown" });
  } finally {
    await nc.close();
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
