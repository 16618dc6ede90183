import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { eventuallyValue } from "../support/eventually.js";
import { INFLUX_ADMIN, startInfluxDB, type Influx } from "../support/influxdb.js";
import { REPO_ROOT } from "../support/paths.js";
import { runCli } from "../support/process.js";

const run = promisify(execFile);
const S = 1_000_000_000n;
const FANS = 4;
const SECONDS = 900;
const WRITER = { username: "writer", password: "write-secret" };

/** The CronJob's script, as deploy/k3s/base/influxdb-backup.yaml runs it. */
async function cronJobScript(): Promise<string> {
  const text = await readFile(join(REPO_ROOT, "deploy/k3s/base/influxdb-backup.yaml"), "utf8");
  const cronJob = parseAllDocuments(text)
    .map((d) => d.toJS() as { kind: string; spec?: unknown })
    .find((d) => d.kind === "CronJob") as {
    spec: { jobTemplate: { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } } };
  };
  const script = cronJob.spec.jobTemplate.spec.template.spec.containers[0]?.args[0];
  assert.ok(script !== undefined);
  return script;
}

async function dump(influx: Influx, database = "fan"): Promise<unknown> {
  const response = await fetch(
    `${influx.url}/query?db=${database}&q=${encodeURIComponent("SELECT * FROM telemetry, prediction")}`,
    {
      headers: {
        authorization: `Basic ${Buffer.from(`${INFLUX_ADMIN.username}:${INFLUX_ADMIN.password}`).toString("base64")}`,
      },
    },
  );
  return ((await response.json()) as { results: Array<{ series: unknown }> }).results[0]?.series;
}

/** The restored points, once InfluxDB has opened the restored shards (it does so just after the restore answers). */
async function restored(influx: Influx, database: string, expected: unknown): Promise<unknown> {
  return eventuallyValue(
    `the points in ${database}`,
    () => dump(influx, database),
    (points) => points !== undefined && JSON.stringify(points) === JSON.stringify(expected),
    { timeoutMs: 10_000, paceMs: 100 },
  );
}

async function setup(influx: Influx, secrets: string) {
  return runCli(["influx-setup", "--influx-url", influx.url], {
    INFLUX_ADMIN_PASSWORD: INFLUX_ADMIN.password,
    INFLUX_WRITE_PASSWORD_FILE: join(secrets, "writer"),
    INFLUX_READ_PASSWORD_FILE: join(secrets, "reader"),
  });
}

describe("InfluxDB backup and restore (docs/persistence.md) with Debian's influxd", () => {
  let source: Influx;
  let fresh: Influx;
  let existing: Influx;
  const started: Influx[] = [];
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "fanwatch-influx-backup-"));
    await writeFile(join(work, "writer"), "write-secret");
    await writeFile(join(work, "reader"), "read-secret");
    // One after the other: a server that failed to start must not leave the others running (the
    // file would never end), and `after` stops those that did.
    const launch = async (options: Parameters<typeof startInfluxDB>[0]) => {
      const influx = await startInfluxDB(options);
      started.push(influx);
      return influx;
    };
    source = await launch({ auth: true });
    // Empty, as a new volume with only the admin (what the image makes at first start).
    fresh = await launch({ auth: true, createDatabase: false });
    existing = await launch({ auth: true, createDatabase: false });
    assert.equal((await setup(source, work)).code, 0);
    const start = BigInt(Math.floor(Date.now() / 1000) - SECONDS - 60);
    const lines: string[] = [];
    for (let i = 0n; i < BigInt(SECONDS); i++)
      for (let fan = 1; fan <= FANS; fan++) {
        lines.push(
          `telemetry,deviceID=${fan} rotation=${1500 + Number(i % 7n)},temperature=40.5,vibration=0.5,sound=61 ${(start + i) * S}`,
        );
        lines.push(
          `prediction,deviceID=${fan},model=m1 fault=${i % 10n === 0n ? 1 : 0}i,probability=0.${i % 10n} ${(start + i) * S}`,
        );
      }
    const writer = createLineWriter({ api: "v1", url: source.url, database: "fan", ...WRITER });
    assert.deepEqual(await writer.write(lines), { rejected: [] });
  });
  after(async () => {
    await Promise.all(started.map((influx) => influx.stop()));
    await rm(work, { recursive: true, force: true });
  });

  /**
   * docs/persistence.md, "Restore", step by step: Telegraf stopped (nothing writes here), `DROP
   * DATABASE "fan"` as the admin (what `kubectl exec influxdb-0 -- influx …` sends; a no-op where
   * there is none), the CronJob's own script with RESTORE set (the one-off restore Job), then
   * influx-setup (the Job, deleted and applied again).
   */
  async function restoreAsDocumented(target: Influx, backups: string, name: string) {
    const dropped = await fetch(`${target.url}/query`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${INFLUX_ADMIN.username}:${INFLUX_ADMIN.password}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ q: 'DROP DATABASE "fan"' }).toString(),
    });
    assert.equal(dropped.status, 200, await dropped.text());
    const env = { ...process.env, INFLUX_RPC: target.rpc, BACKUP_DIR: backups, RESTORE: name };
    const started = performance.now();
    const { stdout } = await run("/bin/sh", ["-c", await cronJobScript()], { env });
    assert.match(stdout, new RegExp(`restore of ${name} done`));
    const took = Math.round(performance.now() - started);
    const points = await dump(source);
    assert.deepEqual(await restored(target, "fan", points), points);
    const rerun = await setup(target, work);
    assert.equal(rerun.code, 0, rerun.stderr);
    return { took, setup: rerun.stdout };
  }

  it("restores as documented into an InfluxDB whose volume is empty, and into one whose setup Job already made `fan`", async (t) => {
    const backups = join(work, "documented");
    await run("mkdir", ["-p", backups]);
    const started = performance.now();
    const { stdout } = await run("/bin/sh", ["-c", await cronJobScript()], {
      env: { ...process.env, INFLUX_RPC: source.rpc, BACKUP_DIR: backups, KEEP: "7" },
    });
    t.diagnostic(`backup of ${FANS * SECONDS * 2} points: ${Math.round(performance.now() - started)} ms`);
    const name = /backup (\S+) done; kept: (\S+)$/m.exec(stdout)?.[1] ?? "";
    assert.match(stdout, new RegExp(`kept: ${name}$`, "m"), "the log names the backups kept");

    // An empty volume: no `fan` (the image no longer creates it: deploy/k3s/base/influxdb.yaml has no INFLUXDB_DB).
    const intoEmpty = await restoreAsDocumented(fresh, backups, name);
    t.diagnostic(`restore into an empty InfluxDB: ${intoEmpty.took} ms`);
    // A portable restore brings databases, policies and shards; not users, not continuous queries.
    assert.match(intoEmpty.setup, /created continuous query telemetry_1m/);
    assert.match(intoEmpty.setup, /created user reader\ngranted READ to reader/);
    const policies = await fresh.query("SHOW RETENTION POLICIES ON fan");
    assert.deepEqual(
      policies[0]?.values.map((v) => [v[0], v[1]]),
      [
        ["autogen", "720h0m0s"],
        ["downsampled", "17472h0m0s"],
      ],
    );

    // The usual case on K3s: the setup Job ran on the new volume before the restore, so `fan`
    // exists, with its continuous queries and a few points written since.
    const made = await setup(existing, work);
    assert.match(made.stdout, /created continuous query telemetry_1m/);
    const since = createLineWriter({ api: "v1", url: existing.url, database: "fan", ...WRITER });
    assert.deepEqual(await since.write([`telemetry,deviceID=99 rotation=1 ${BigInt(Date.now()) * 1_000_000n}`]), {
      rejected: [],
    });
    const overExisting = await restoreAsDocumented(existing, backups, name);
    t.diagnostic(`drop and restore over an existing fan: ${overExisting.took} ms`);
    assert.match(overExisting.setup, /created continuous query telemetry_1m/, "DROP DATABASE took its queries");
    const listed = await runCli(["deadletters", "--influx-url", existing.url], {
      INFLUX_USERNAME: "reader",
      INFLUX_PASSWORD: "read-secret",
    });
    assert.equal(listed.code, 0, listed.stderr);
  });

  it("restores one database under a new name beside the live one, and refuses to overwrite a database", async () => {
    const backup = join(work, "fan-only");
    await run("influxd", ["backup", "-portable", "-db", "fan", "-host", source.rpc, backup]);
    await run("influxd", ["restore", "-portable", "-db", "fan", "-newdb", "fan_restored", "-host", source.rpc, backup]);
    const points = await dump(source);
    assert.deepEqual(await restored(source, "fan_restored", points), points);
    await assert.rejects(
      run("influxd", ["restore", "-portable", "-db", "fan", "-host", source.rpc, backup]),
      /database may already exist/,
    );
  });

  it("runs the CronJob's script: a backup per run, the newest KEEP kept, none left partial", async () => {
    const dir = join(work, "cron");
    const script = await cronJobScript();
    const env = { ...process.env, INFLUX_RPC: source.rpc, BACKUP_DIR: dir, KEEP: "2" };
    await run("mkdir", ["-p", dir]);
    await writeFile(join(dir, "20000101T000000Z.partial"), "a backup cut short");
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { stdout } = await run("/bin/sh", ["-c", script], { env });
      names.push(/backup (\S+) done/.exec(stdout)?.[1] ?? "");
      await sleep(1100); // the backups are named by the second
    }
    assert.deepEqual((await readdir(dir)).sort(), names.slice(1).sort());
    const restoredFromCron = join(dir, names[2] ?? "");
    await run("influxd", [
      "restore",
      "-portable",
      "-db",
      "fan",
      "-newdb",
      "fan_cron",
      "-host",
      source.rpc,
      restoredFromCron,
    ]);
    const points = await dump(source);
    assert.deepEqual(await restored(source, "fan_cron", points), points);
  });
});
