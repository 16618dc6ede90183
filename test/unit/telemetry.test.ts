import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { parseTelemetry, parseTimestamp, TIMESTAMP_MAX_MS } from "../../lib/domain/telemetry.js";

const withTime = (timeStamp: unknown) =>
  parseTelemetry({ deviceID: "1", timeStamp, rotation: 600, temperature: 40, vibration: 150, sound: 48 });

describe("timeStamp", () => {
  it("accepts the reference format, ISO 8601 and epoch milliseconds, as UTC unless an offset says otherwise", () => {
    assert.equal(parseTimestamp("2020-10-02 10:00:00"), Date.UTC(2020, 9, 2, 10));
    assert.equal(parseTimestamp("2020-10-02T10:00:00Z"), Date.UTC(2020, 9, 2, 10));
    const zone = process.env.TZ;
    process.env.TZ = "America/New_York"; // Node applies a changed TZ at once
    try {
      assert.equal(
        parseTimestamp("2020-10-02T10:00:00"),
        Date.UTC(2020, 9, 2, 10),
        "no offset: UTC, whatever the host's time zone",
      );
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
    assert.equal(parseTimestamp("2020-10-02T10:00:00.250+02:00"), Date.UTC(2020, 9, 2, 8, 0, 0, 250));
    assert.equal(parseTimestamp(1601632800000), 1601632800000);
  });

  it("accepts 1970-01-01 to 2262-04-11 00:00:00 UTC and refuses the rest, saying so", () => {
    assert.equal(parseTimestamp(0), 0);
    assert.equal(parseTimestamp("1970-01-01 00:00:00"), 0);
    assert.equal(parseTimestamp("2262-04-11 00:00:00"), TIMESTAMP_MAX_MS);
    assert.equal(parseTimestamp(TIMESTAMP_MAX_MS), TIMESTAMP_MAX_MS);
    for (const outside of [
      "9999-12-31 23:59:59",
      "2262-04-11 00:00:01",
      "1969-12-31 23:59:59",
      "1677-09-21T00:13:00Z",
      -1,
      TIMESTAMP_MAX_MS + 1,
      Number.MAX_SAFE_INTEGER,
    ]) {
      assert.equal(parseTimestamp(outside), undefined, String(outside));
      const result = withTime(outside);
      assert.ok(!result.ok);
      assert.equal(
        result.error,
        "timeStamp: must be between 1970-01-01 and 2262-04-11 00:00:00 (UTC), the times InfluxDB can store",
      );
      assert.equal(result.field, "timeStamp");
    }
  });

  it("refuses dates that do not exist, which Date.parse would roll over", () => {
    assert.equal(parseTimestamp("2020-02-29 10:00:00"), Date.UTC(2020, 1, 29, 10), "a leap day");
    for (const [impossible, reason] of [
      ["2020-02-31 10:00:00", "2020-02 has no day 31"],
      ["2019-02-29 10:00:00", "2019-02 has no day 29"],
      ["2020-04-31T00:00:00Z", "2020-04 has no day 31"],
    ] as const) {
      assert.equal(parseTimestamp(impossible), undefined, impossible);
      assert.deepEqual(withTime(impossible), { ok: false, error: `timeStamp: ${reason}`, field: "timeStamp" });
    }
    for (const malformed of [
      "2020-13-01 00:00:00",
      "2020-01-01 25:00:00",
      "2020-01-01",
      "yesterday",
      "+010000-01-01T00:00:00Z",
      "2020-01-01T10:00:00 garbage",
      true,
    ]) {
      const result = withTime(malformed);
      assert.ok(!result.ok, String(malformed));
      assert.equal(result.error, "timeStamp: must be YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds");
    }
  });
});

describe("parseUntrustedJson", () => {
  it("parses UTF-8 bytes, multi-byte characters included", () => {
    assert.deepEqual(parseUntrustedJson(Buffer.from('{"deviceID":"Lüfter-7 ☃"}')), { deviceID: "Lüfter-7 ☃" });
  });

  it("refuses bytes that are not UTF-8 rather than decoding them to U+FFFD", () => {
    const latin1 = Buffer.from('{"deviceID":"L\u00fcfter"}', "latin1");
    assert.throws(() => parseUntrustedJson(latin1), { name: "SyntaxError", message: "not valid UTF-8 text" });
    const truncated = Buffer.from('{"deviceID":"☃"}').subarray(0, 14);
    assert.throws(() => parseUntrustedJson(Buffer.concat([truncated, Buffer.from('"}')])), /not valid UTF-8 text/);
  });

  it("refuses prototype keys", () => {
    assert.throws(() => parseUntrustedJson('{"__proto__":{"x":1}}'), /forbidden prototype property/i);
  });
});
