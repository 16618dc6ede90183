import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { INFLUX_ADMIN, startInfluxDB, type Influx } from "../support/influxdb.js";
import { runCli } from "../support/process.js";

const MINUTE = 60;
const DAY = 24 * 60 * MINUTE;

async function setup(influx: Influx) {
  return runCli(["influx-setup", "--influx-url", influx.url], { INFLUX_ADMIN_PASSWORD: INFLUX_ADMIN.password });
}

async function rows(influx: Influx, q: string): Promise<Array<Record<string, unknown>>> {
  return (await influx.query(q)).flatMap((series) =>
    (series.values ?? []).map((v) => ({
      ...series.tags,
      ...Object.fromEntries(series.columns.map((c, i) => [c, v[i]])),
    })),
  );
}

/** Writes line protocol (seconds) into the default policy as the admin, as an older fanwatch's writers did. */
async function write(influx: Influx, lines: string[]): Promise<void> {
  const answer = await fetch(`${influx.url}/write?db=fan&precision=s`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${INFLUX_ADMIN.username}:${INFLUX_ADMIN.password}`).toString("base64")}`,
    },
    body: lines.join("\n"),
  });
  assert.equal(answer.status, 204, await answer.text());
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");

describe("fanwatch influx-setup on an InfluxDB that an older fanwatch filled (autogen unbounded)", () => {
  let influx: Influx;
  // Whole minutes: 40 days ago (to be dropped by the 30-day policy) and 1 day ago (kept raw, but
  // never seen by the continuous queries, which did not exist).
  const now = Math.floor(Date.now() / 1000 / MINUTE) * MINUTE;
  const old = now - 40 * DAY;
  const recent = now - DAY;
  before(async () => {
    influx = await startInfluxDB({ auth: true }); // the admin and `fan`, autogen infinite
    const lines: string[] = [];
    for (const start of [old, recent])
      for (let s = 0; s < 2 * MINUTE; s += 10) {
        lines.push(`telemetry,deviceID=1 rotation=${1000 + s},temperature=40,vibration=0.5,sound=60 ${start + s}`);
        lines.push(`telemetry,deviceID=2 rotation=500,temperature=30,vibration=0.1,sound=50 ${start + s}`);
      }
    for (let s = 0; s < MINUTE; s += 10)
      lines.push(`prediction,deviceID=1,model=m1 fault=${s === 0 ? 1 : 0}i,probability=0.5 ${old + s}`);
    await write(influx, lines);
  });
  after(async () => influx.stop());

  it("downsamples the history a day at a time before it bounds autogen to 30 days", async () => {
    const before = await rows(influx, "SHOW RETENTION POLICIES ON fan");
    assert.deepEqual(
      before.map((r) => [r.name, r.duration]),
      [["autogen", "0s"]],
    );

    const run = await setup(influx);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    // The order is the point: aggregates' policy and continuous queries, the history, then the bound.
    assert.deepEqual(lines.slice(0, 5), [
      "created policy downsampled (104w)",
      "created continuous query telemetry_1m",
      "created continuous query prediction_1m",
      "created continuous query deadletter_1m",
      "created continuous query health_1m",
    ]);
    assert.match(
      lines[5] ?? "",
      /^downsampling the raw points from \d{4}-\d\d-\d\dT00:00Z to (\S+) into downsampled, a day at a time, before autogen is cut to 30d$/,
    );
    assert.equal(/ to (\S+) into/.exec(lines[5] ?? "")?.[1], iso(now).replace(":00Z", "Z"));
    const days = lines.filter((l) => /^backfilled \d{4}-\d\d-\d\d: \d+ aggregates \(day \d+ of \d+\)$/.test(l));
    // From the oldest shard group's start (7-day groups) up to today.
    assert.ok(days.length >= 41 && days.length <= 48, `${days.length} days`);
    assert.match(days.at(-1) ?? "", /\(day (\d+) of \1\)$/);
    const perDay = days.map((l) => Number(/: (\d+) aggregates/.exec(l)?.[1]));
    assert.equal(
      perDay.reduce((a, b) => a + b, 0),
      9,
    );
    assert.deepEqual(lines.slice(6 + days.length), [
      "backfilled telemetry_1m: 8 aggregates", // 2 fans × 2 minutes, twice
      "backfilled prediction_1m: 1 aggregates",
      "backfilled deadletter_1m: 0 aggregates",
      "backfilled health_1m: 0 aggregates",
      "set policy autogen to 30d",
    ]);

    const policies = await rows(influx, "SHOW RETENTION POLICIES ON fan");
    assert.deepEqual(
      policies.map((r) => [r.name, r.duration, r.default]),
      [
        ["autogen", "720h0m0s", true],
        ["downsampled", "17472h0m0s", false],
      ],
    );
    const telemetry = await rows(
      influx,
      `SELECT "rotation", "rotation_max", "readings" FROM "downsampled"."telemetry" GROUP BY "deviceID"`,
    );
    assert.deepEqual(
      telemetry.map((r) => [r.deviceID, r.time, r.rotation, r.rotation_max, r.readings]),
      [
        ["1", iso(old), 1025, 1050, 6], // mean of 1000, 1010, …, 1050
        ["1", iso(old + MINUTE), 1085, 1110, 6],
        ["1", iso(recent), 1025, 1050, 6],
        ["1", iso(recent + MINUTE), 1085, 1110, 6],
        ["2", iso(old), 500, 500, 6],
        ["2", iso(old + MINUTE), 500, 500, 6],
        ["2", iso(recent), 500, 500, 6],
        ["2", iso(recent + MINUTE), 500, 500, 6],
      ],
    );
    const predictions = await rows(influx, `SELECT "fault", "predictions" FROM "downsampled"."prediction"`);
    assert.deepEqual(
      predictions.map((r) => [r.time, r.fault, r.predictions]),
      [[iso(old), 1 / 6, 6]],
    );

    const again = await setup(influx);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing changed/, "bounded now: no second backfill");
  });
});
