import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  createContinuousQuery,
  DOWNSAMPLES,
  downsampleSelect,
  sameQuery,
  shardDuration,
  shownDuration,
} from "../../connectors/influxdb/downsampling.js";
import { SCHEMA } from "../../connectors/influxdb/points.js";
import { readSetupPlan } from "../../connectors/influxdb/setup-config.js";

describe("InfluxDB retention and downsampling definitions", () => {
  it("downsamples every measurement of the schema from the raw policy into the downsampled one", () => {
    assert.deepEqual(DOWNSAMPLES.map((d) => d.measurement).sort(), Object.keys(SCHEMA).sort());
    for (const d of DOWNSAMPLES) {
      const select = downsampleSelect("fan", d);
      assert.match(
        select,
        new RegExp(`INTO "fan"\\."downsampled"\\."${d.measurement}" FROM "fan"\\."autogen"\\."${d.measurement}"`),
      );
      assert.match(select, /GROUP BY time\(1m\), \*$/);
    }
    // Every sensor keeps its name for the mean: a panel reads the long range by naming the policy.
    const telemetry = DOWNSAMPLES.find((d) => d.measurement === "telemetry");
    for (const field of Object.keys(SCHEMA.telemetry.fields))
      assert.ok(telemetry?.select.includes(`mean("${field}") AS "${field}"`), field);
  });

  it("says durations as InfluxDB shows them, with the shard groups InfluxDB would pick", () => {
    assert.equal(shownDuration("30d"), "720h0m0s");
    assert.equal(shownDuration("104w"), "17472h0m0s");
    assert.equal(shownDuration("36h"), "36h0m0s");
    assert.deepEqual(["36h", "30d", "26w", "104w"].map(shardDuration), ["1h", "1d", "1d", "7d"]);
  });

  it("takes InfluxDB's rendering of a continuous query as the same query", () => {
    const ours = createContinuousQuery("fan", DOWNSAMPLES[2] ?? DOWNSAMPLES[0]!);
    const shown =
      "CREATE CONTINUOUS QUERY deadletter_1m ON fan RESAMPLE EVERY 1m FOR 10m BEGIN SELECT count(error) AS deadletters INTO fan.downsampled.deadletter FROM fan.autogen.deadletter GROUP BY time(1m), * END";
    assert.ok(sameQuery(shown, ours));
    assert.ok(!sameQuery(shown.replace("FOR 10m", "FOR 5m"), ours));
  });

  it("reads the plan: passwords required for the admin, optional per user, durations checked", () => {
    assert.throws(() => readSetupPlan({ INFLUX_URL: "http://i:8086" }), /INFLUX_ADMIN_PASSWORD/);
    const plan = readSetupPlan({ INFLUX_URL: "http://i:8086/", INFLUX_ADMIN_PASSWORD: "a", INFLUX_READ_PASSWORD: "r" });
    assert.deepEqual(plan, {
      url: "http://i:8086",
      database: "fan",
      admin: { username: "admin", password: "a" },
      reader: { username: "reader", password: "r" },
      rawRetention: "30d",
      downsampledRetention: "104w",
      waitMs: 120_000,
    });
    assert.throws(
      () => readSetupPlan({ INFLUX_URL: "http://i:8086", INFLUX_ADMIN_PASSWORD: "a", INFLUX_RAW_RETENTION: "1y" }),
      /INFLUX_RAW_RETENTION/,
    );
  });
});
