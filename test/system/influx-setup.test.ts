import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readWriterConfig } from "../../connectors/influxdb/config.js";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { INFLUX_ADMIN, startInfluxDB, type Influx } from "../support/influxdb.js";
import { REPO_ROOT } from "../support/paths.js";
import { runCli } from "../support/process.js";

const S = 1_000_000_000n; // nanoseconds in a second
const WRITE_PASSWORD = "write-secret";
const READ_PASSWORD = "read-secret";

/** `fanwatch influx-setup` as the K3s Job runs it: passwords from files, everything else defaulted. */
async function setup(influx: Influx, secrets: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return runCli(["influx-setup", "--influx-url", influx.url, ...args], {
    INFLUX_ADMIN_USERNAME: INFLUX_ADMIN.username,
    INFLUX_ADMIN_PASSWORD_FILE: join(secrets, "admin"),
    INFLUX_WRITE_PASSWORD_FILE: join(secrets, "writer"),
    INFLUX_READ_PASSWORD_FILE: join(secrets, "reader"),
    ...env,
  });
}

async function rows(influx: Influx, q: string): Promise<Array<Record<string, unknown>>> {
  return (await influx.query(q)).flatMap((series) =>
    (series.values ?? []).map((v) => ({
      ...series.tags,
      ...Object.fromEntries(series.columns.map((c, i) => [c, v[i]])),
    })),
  );
}

describe("fanwatch influx-setup against a real InfluxDB 1.6 with authentication on", () => {
  let influx: Influx;
  let secrets: string;
  before(async () => {
    // No user at all, as a fresh InfluxDB with auth-enabled: setup creates the admin.
    influx = await startInfluxDB({ auth: true, users: false });
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-influx-secrets-"));
    await writeFile(join(secrets, "admin"), `${INFLUX_ADMIN.password}\n`);
    await writeFile(join(secrets, "writer"), `${WRITE_PASSWORD}\n`);
    await writeFile(join(secrets, "reader"), `${READ_PASSWORD}\n`);
  });
  after(async () => {
    await influx.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it("creates the admin, the database, both policies, the continuous queries and both users", async () => {
    const first = await setup(influx, secrets);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(first.stdout.trim().split("\n"), [
      "created the admin admin",
      // Where aggregates go and what writes them before the raw policy is bounded (nothing to
      // downsample on a new InfluxDB: influx-upgrade.test.ts has the history of an older one).
      "created policy downsampled (104w)",
      "created continuous query telemetry_1m",
      "created continuous query prediction_1m",
      "created continuous query deadletter_1m",
      "created continuous query health_1m",
      "set policy autogen to 30d",
      "created user writer",
      "granted WRITE to writer",
      "created user reader",
      "granted READ to reader",
    ]);
    assert.deepEqual(
      (await rows(influx, "SHOW RETENTION POLICIES ON fan")).map((r) => [
        r.name,
        r.duration,
        r.shardGroupDuration,
        r.default,
      ]),
      [
        ["autogen", "720h0m0s", "24h0m0s", true],
        ["downsampled", "17472h0m0s", "168h0m0s", false],
      ],
    );
    const cqs = await rows(influx, "SHOW CONTINUOUS QUERIES");
    assert.deepEqual(
      cqs.map((r) => r.name),
      ["telemetry_1m", "prediction_1m", "deadletter_1m", "health_1m"],
    );
    assert.match(
      String(cqs[0]?.query),
      /RESAMPLE EVERY 1m FOR 10m BEGIN SELECT mean\(rotation\) AS rotation, max\(rotation\) AS rotation_max/,
    );
    assert.match(
      String(cqs[0]?.query),
      /INTO fan\.downsampled\.telemetry FROM fan\.autogen\.telemetry GROUP BY time\(1m\), \*/,
    );
  });

  it("changes nothing when run again", async () => {
    const before = [
      await rows(influx, "SHOW RETENTION POLICIES ON fan"),
      await rows(influx, "SHOW CONTINUOUS QUERIES"),
      await rows(influx, "SHOW USERS"),
      await rows(influx, "SHOW GRANTS FOR writer"),
      await rows(influx, "SHOW GRANTS FOR reader"),
    ];
    const again = await setup(influx, secrets);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /is set up already: nothing changed/);
    assert.deepEqual(
      [
        await rows(influx, "SHOW RETENTION POLICIES ON fan"),
        await rows(influx, "SHOW CONTINUOUS QUERIES"),
        await rows(influx, "SHOW USERS"),
        await rows(influx, "SHOW GRANTS FOR writer"),
        await rows(influx, "SHOW GRANTS FOR reader"),
      ],
      before,
    );
  });

  it("follows a new retention and a rotated password, and refuses a wrong admin password", async () => {
    await writeFile(join(secrets, "reader-new"), "rotated");
    const changed = await setup(influx, secrets, ["--raw-retention", "14d"], {
      INFLUX_READ_PASSWORD_FILE: join(secrets, "reader-new"),
    });
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual(changed.stdout.trim().split("\n"), ["set policy autogen to 14d", "set the password of reader"]);
    const back = await setup(influx, secrets);
    assert.deepEqual(back.stdout.trim().split("\n"), ["set policy autogen to 30d", "set the password of reader"]);

    const wrong = await setup(influx, secrets, [], { INFLUX_ADMIN_PASSWORD_FILE: join(secrets, "reader") });
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(
      wrong.stderr,
      /refused the admin's credentials .*check INFLUX_ADMIN_USERNAME and INFLUX_ADMIN_PASSWORD/,
    );
  });

  it("lets the write user write and the read user read, nobody without credentials", async () => {
    const anonymous = await fetch(`${influx.url}/write?db=fan`, {
      method: "POST",
      body: "telemetry,deviceID=9 rotation=1",
    });
    assert.equal(anonymous.status, 401);
    // The writer's settings, its password from a file (INFLUX_PASSWORD_FILE) as in a container.
    const target = readWriterConfig({
      INFLUX_URL: influx.url,
      INFLUX_USERNAME: "writer",
      INFLUX_PASSWORD_FILE: join(secrets, "writer"),
    }).influx;
    const t = (BigInt(Date.now()) / 1000n) * S;
    const lines = [`deadletter,topic=fan/messages error="predict: bad",payload="{}" ${t}`];
    assert.deepEqual(await createLineWriter(target).write(lines), { rejected: [] });
    // Written into the raw policy, the default: what Telegraf, which names none, does too.
    assert.equal((await rows(influx, `SELECT count("error") FROM "autogen"."deadletter"`))[0]?.count, 1);

    const asReader = { INFLUX_USERNAME: "reader", INFLUX_PASSWORD_FILE: join(secrets, "reader") };
    const listed = await runCli(["deadletters", "--influx-url", influx.url, "--json"], asReader);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /"error":"predict: bad"/);
    const refused = await runCli(["deadletters", "--influx-url", influx.url]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /InfluxDB refused the credentials \(401/);
    const writerReads = await runCli(["deadletters", "--influx-url", influx.url], {
      INFLUX_USERNAME: "writer",
      INFLUX_PASSWORD: WRITE_PASSWORD,
    });
    assert.equal(writerReads.code, 1, "the write user may not read");
  });

  it("downsamples readings and predictions into one-minute means, maxima and counts (--backfill)", async () => {
    const target = readWriterConfig({
      INFLUX_URL: influx.url,
      INFLUX_USERNAME: "writer",
      INFLUX_PASSWORD: WRITE_PASSWORD,
    }).influx;
    // Two whole minutes, ending 5 minutes ago: fan 1 turns 1000 + i rpm at second i, fan 2 a constant 500.
    const start = (BigInt(Date.now()) / 60_000n - 7n) * 60n;
    const lines: string[] = [];
    for (let i = 0; i < 120; i++) {
      const at = (start + BigInt(i)) * S;
      lines.push(`telemetry,deviceID=1 rotation=${1000 + i},temperature=40,vibration=0.5,sound=60 ${at}`);
      lines.push(`telemetry,deviceID=2 rotation=500,temperature=30,vibration=0.1,sound=50 ${at}`);
      lines.push(
        `prediction,deviceID=1,model=m1 fault=${i % 4 === 0 ? 1 : 0}i,probability=${i % 4 === 0 ? 0.9 : 0.1} ${at}`,
      );
    }
    assert.deepEqual(await createLineWriter(target).write(lines), { rejected: [] });

    const backfill = await setup(influx, secrets, ["--backfill", "1h"]);
    assert.equal(backfill.code, 0, backfill.stderr);
    assert.match(backfill.stdout, /backfilled telemetry_1m: 4 aggregates/);
    assert.match(backfill.stdout, /backfilled prediction_1m: 2 aggregates/);

    const minute = (m: number) =>
      new Date(Number((start + BigInt(60 * m)) * 1000n)).toISOString().replace(".000Z", "Z");
    const telemetry = await rows(
      influx,
      `SELECT "rotation", "rotation_max", "temperature", "readings" FROM "downsampled"."telemetry" GROUP BY "deviceID"`,
    );
    assert.deepEqual(
      telemetry.map((r) => [r.deviceID, r.time, r.rotation, r.rotation_max, r.temperature, r.readings]),
      [
        ["1", minute(0), 1029.5, 1059, 40, 60], // mean of 1000…1059
        ["1", minute(1), 1089.5, 1119, 40, 60],
        ["2", minute(0), 500, 500, 30, 60],
        ["2", minute(1), 500, 500, 30, 60],
      ],
    );
    const predictions = await rows(influx, `SELECT * FROM "downsampled"."prediction"`);
    assert.deepEqual(
      predictions.map((r) => [r.time, r.deviceID, r.model, r.fault, r.probability_max, r.predictions]),
      [
        [minute(0), "1", "m1", 0.25, 0.9, 60], // every fourth reading a fault
        [minute(1), "1", "m1", 0.25, 0.9, 60],
      ],
    );
    // The dashboard's kind of query over the downsampled policy: the same field names.
    const fleet = await rows(influx, `SELECT mean("rotation") FROM "downsampled"."telemetry" WHERE time >= ${start}s`);
    assert.equal(fleet[0]?.mean, (1029.5 + 1089.5 + 500 + 500) / 4);
  });
  it("lets Grafana's read user run every dashboard query after setup, on the raw policy and on the downsampled one", async () => {
    const dashboard = JSON.parse(
      await readFile(join(REPO_ROOT, "deploy/grafana/dashboards/fanwatch.json"), "utf8"),
    ) as {
      panels: Array<{ title: string; targets: Array<{ query: string }> }>;
      annotations: { list: Array<{ query: string }> };
    };
    const asReader = async (q: string) => {
      const response = await fetch(`${influx.url}/query?db=fan&q=${encodeURIComponent(q)}`, {
        headers: { authorization: `Basic ${Buffer.from(`reader:${READ_PASSWORD}`).toString("base64")}` },
      });
      const text = await response.text();
      assert.equal(response.status, 200, text);
      const body = JSON.parse(text) as { results: Array<{ error?: string }> };
      assert.equal(body.results[0]?.error, undefined, q);
      return text;
    };
    const fill = (q: string) =>
      q
        .replaceAll("$timeFilter", "time > now() - 15m")
        .replaceAll("$__interval", "10s")
        .replaceAll("$__range", "15m")
        .replaceAll("/^$deviceID$/", "/^(1|2)$/");
    const queries = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.query)),
      ...dashboard.annotations.list.map((a) => a.query),
    ];
    assert.ok(queries.length >= 10);
    for (const query of queries) await asReader(fill(query));
    // A long range reads the same fields from the downsampled policy.
    const long = fill(
      `SELECT mean("rotation") FROM "downsampled"."telemetry" WHERE $timeFilter GROUP BY time($__interval), "deviceID"`,
    );
    assert.match(await asReader(long), /"deviceID":"1"/);
  });
});
