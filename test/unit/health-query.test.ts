import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_LIMIT, listFans, parseQuery } from "../../functions/health/query.js";
import type { HealthRecord } from "../../lib/domain/health.js";

function record(deviceID: string, state: HealthRecord["state"], acknowledged = false): HealthRecord {
  const open = state === "alarm" || state === "warning";
  return {
    deviceID,
    state,
    alarmId: open ? `${deviceID}@2026-11-01T00:00:00.000Z` : null,
    severity: state === "alarm" ? "major" : state === "warning" ? "minor" : "none",
    since: "2026-11-01T00:00:00.000Z",
    cause: open ? "vibration" : null,
    contributions: null,
    probability: state === "alarm" ? 0.9 : 0.1,
    eta: state === "warning" ? "2026-11-02T00:00:00.000Z" : null,
    lastSeen: "2026-11-01T00:00:00.000Z",
    acknowledged,
    acknowledgedBy: acknowledged ? "Ana" : null,
    note: null,
    shelvedUntil: null,
    shelvedBy: null,
    maintenance: null,
    assignedTo: null,
    finding: null,
  };
}

describe("GET /function/health: order and limit", () => {
  const fleet = [
    record("1", "ok"),
    record("12", "warning", true),
    record("3", "warning"),
    record("10", "alarm", true),
    record("20", "alarm"),
    record("4", "cleared"),
    record("5", "silent"),
    record("2", "alarm"),
    record("11", "warning"),
  ];

  it("lists open episodes first: unacknowledged alarms, acknowledged alarms, unacknowledged warnings, acknowledged warnings, then the rest, each by device ID", () => {
    const { fans, matched } = listFans(fleet, parseQuery({}));
    assert.deepEqual(
      fans.map((f) => `${f.deviceID}:${f.state}${f.acknowledged ? "+ack" : ""}`),
      [
        "2:alarm",
        "20:alarm",
        "10:alarm+ack",
        "3:warning",
        "11:warning",
        "12:warning+ack",
        "1:ok",
        "4:cleared",
        "5:silent",
      ],
    );
    assert.equal(matched, fleet.length);
  });

  it("lists at most ?limit= fans, the first in that order, says how many matched and counts the whole fleet", () => {
    const { fans, matched, counts } = listFans(fleet, parseQuery({ limit: "4" }));
    assert.deepEqual(
      fans.map((f) => f.deviceID),
      ["2", "20", "10", "3"],
    );
    assert.equal(matched, 9);
    assert.deepEqual(counts, { ok: 1, warning: 3, alarm: 3, cleared: 1, silent: 1 });
    const open = listFans(fleet, parseQuery({ state: "warning", limit: "2" }));
    assert.deepEqual([open.fans.map((f) => f.deviceID), open.matched], [["3", "11"], 3]);
  });

  it("lists 1,000 fans unless told otherwise", () => {
    const big = Array.from({ length: DEFAULT_LIMIT + 5 }, (_, i) => record(String(i), "ok"));
    const { fans, matched } = listFans(big, parseQuery({}));
    assert.equal(fans.length, DEFAULT_LIMIT);
    assert.equal(matched, DEFAULT_LIMIT + 5);
    assert.equal(listFans(big, parseQuery({ limit: "1000000" })).fans.length, DEFAULT_LIMIT + 5);
  });

  it("answers a limit that is not a whole number from 1 to 1,000,000 with a 400 naming limit", () => {
    for (const limit of ["0", "-1", "1.5", "ten", "1000001", ""]) {
      assert.throws(
        () => parseQuery({ limit }),
        (error: Error & { status?: number; field?: string }) =>
          error.field === "limit" && (error.status ?? 400) === 400,
        `limit=${limit}`,
      );
    }
  });
});
