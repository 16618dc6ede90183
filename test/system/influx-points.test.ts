import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { SCHEMA, toLines, type Source } from "../../connectors/influxdb/points.js";
import { deadLetter } from "../../lib/domain/dead-letter.js";
import { startInfluxDB, type Influx } from "../support/influxdb.js";

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const scored = (timeStamp: string | number) =>
  json({
    deviceID: "1",
    timeStamp,
    fault: 0,
    probability: 0.1,
    reading: { rotation: 600, temperature: 40, vibration: 150, sound: 50 },
  });

/** The points of a message, as one text (a dead letter has one; a prediction with its reading, two). */
function line(source: Source, payload: Buffer, arrivedAt: number): string {
  const result = toLines(source, payload, arrivedAt, "fan/messages");
  assert.ok(result.ok, result.ok ? "" : result.error);
  return result.lines.join("\n");
}

describe("points InfluxDB can store", () => {
  it("refuses a timestamp outside InfluxDB's range (1677-09-21 to 2262-04-11) as a bad point", () => {
    // lib/domain/telemetry.ts refuses such a time first (its own range is narrower); either way
    // the prediction and its reading are refused with a reason that names the timeStamp, and never written.
    for (const t of ["9999-12-31 23:59:59", "2262-04-12T00:00:00Z", 1e16]) {
      const result = toLines("prediction", scored(t), 0, "fan/messages");
      assert.equal(result.ok, false, String(t));
      assert.match(result.ok ? "" : result.error, /^prediction timeStamp: /);
    }
    const last = ` ${Date.UTC(2262, 3, 10)}000000`;
    assert.equal(line("prediction", scored("2262-04-10T00:00:00Z"), 0).split(last).length, 3, "both points at it");
    assert.match(line("prediction", scored("1970-01-01 00:00:00"), 5), / 0\n.* 0$/);
  });
});

describe("dead letters stored in InfluxDB 1.6", () => {
  let influx: Influx;
  before(async () => (influx = await startInfluxDB()));
  after(() => influx.stop());

  it("stores two dead letters of the same millisecond as two points, with the schema's tags (the error code when given) and fields", async () => {
    const at = Date.parse("2026-11-27T10:00:00.123Z");
    const first = {
      ...deadLetter(
        "predict: rotation 25000 is outside the sensor's limits",
        // A per-fan topic: tagged as fan/messages/+, stored in full as sourceTopic.
        "fan/messages/7",
        '{"deviceID":"7","rotation":25000}',
      ),
      code: "FANWATCH_READING_IMPLAUSIBLE",
    };
    const second = deadLetter("influx-writer: prediction fault: invalid", "fan/anomaly", 'line one\nline "two" \\ end');
    const outcome = await createLineWriter({ api: "v1", url: influx.url, database: "fan" }).write([
      line("deadletter", json(first), at),
      line("deadletter", json(second), at),
    ]);
    assert.deepEqual(outcome, { rejected: [] });

    const [series] = await influx.query(`SELECT * FROM deadletter ORDER BY time`);
    // InfluxDB lists fields and tags together, by name.
    const columns = [...Object.keys(SCHEMA.deadletter.fields), ...SCHEMA.deadletter.tags].sort();
    assert.deepEqual(series?.columns, ["time", ...columns]);
    assert.deepEqual(columns, ["code", "error", "payload", "sourceTopic", "topic"]);
    assert.equal(series?.values.length, 2);
    const [a, b] = series?.values ?? [];
    assert.deepEqual(a?.slice(1), [
      "FANWATCH_READING_IMPLAUSIBLE",
      first.error,
      first.payload,
      "fan/messages/7",
      "fan/messages/+",
    ]);
    assert.deepEqual(b?.slice(1), [null, second.error, second.payload, "fan/anomaly", "fan/anomaly"]);
    for (const row of [a, b])
      assert.match(String(row?.[0]), /^2026-11-27T10:00:00\.123\d*Z$/, "at the millisecond it arrived");

    const fields = await influx.query(`SHOW FIELD KEYS FROM deadletter`);
    assert.deepEqual(fields[0]?.values, Object.entries(SCHEMA.deadletter.fields));
    const tags = await influx.query(`SHOW TAG KEYS FROM deadletter`);
    assert.deepEqual(tags[0]?.values.flat(), [...SCHEMA.deadletter.tags].sort());
  });

  it("stores what is not a dead letter as one about itself, without a topic, never refusing it", async () => {
    const at = Date.parse("2026-11-27T11:00:00Z");
    const notJson = line("deadletter", Buffer.from("x".repeat(5000)), at);
    const wrongShape = line("deadletter", json({ error: 1, topic: "fan/messages" }), at);
    assert.deepEqual(
      await createLineWriter({ api: "v1", url: influx.url, database: "fan" }).write([notJson, wrongShape]),
      { rejected: [] },
    );
    const stored = await influx.query(
      `SELECT error, payload, topic FROM deadletter WHERE time >= '2026-11-27T11:00:00Z'`,
    );
    const values = stored[0]?.values ?? [];
    assert.equal(values.length, 2);
    assert.match(String(values[0]?.[1]), /^not a dead letter: not JSON: /);
    assert.equal(values[0]?.[2], `${"x".repeat(1024)}…`, "the payload truncated as a dead letter's is");
    assert.equal(values[0]?.[3], null);
    assert.equal(values[1]?.[1], "not a dead letter: error: Invalid input: expected string, received number");
  });
});
