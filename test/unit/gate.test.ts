import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deviceIdOf, Gate, PASS } from "../../connectors/mqtt/gate.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";

const record = (id: string, state: FanRecord["state"], limits?: FanRecord["limits"]): FanRecord => ({
  id,
  name: "",
  site: "",
  location: "",
  type: "",
  tags: [],
  state,
  created: "2026-12-07T10:00:00.000Z",
  ...(limits === undefined ? {} : { limits }),
});

const records = new Map<string, FanRecord>([
  ["1", record("1", "active")],
  ["cold", record("cold", "active", { temperature: { min: -10, max: 60 } })],
  ["p", record("p", "pending")],
  ["r", record("r", "retired")],
]);

const gate = (allowUnbound = false) =>
  new Gate({ telemetryTopic: "fan/messages", allowUnbound, record: (id) => records.get(id) });

const reading = (deviceID: unknown, over: Record<string, unknown> = {}) => ({
  deviceID,
  rotation: 600,
  temperature: 40,
  vibration: 150,
  sound: 49,
  ...over,
});

describe("the registry gate's verdicts (connectors/mqtt/gate.ts)", () => {
  it("tells the telemetry topic, a fan's own topic and other topics apart", () => {
    const g = gate();
    assert.deepEqual(g.topicKind("fan/messages"), { kind: "bare" });
    assert.deepEqual(g.topicKind("fan/messages/7"), { kind: "fan", id: "7" });
    assert.deepEqual(g.topicKind("fan/messages/7/x"), { kind: "none" });
    assert.deepEqual(g.topicKind("fan/messages/"), { kind: "none" });
    assert.deepEqual(g.topicKind("fan/anomaly"), { kind: "none" });
  });

  it("reads the deviceID as predict does: a number as its text, a string trimmed", () => {
    assert.equal(deviceIdOf({ deviceID: 7 }), "7");
    assert.equal(deviceIdOf({ deviceID: " 7 " }), "7");
    assert.equal(deviceIdOf({ deviceID: "" }), undefined);
    assert.equal(deviceIdOf({ deviceID: {} }), undefined);
    assert.equal(deviceIdOf("7"), undefined);
  });

  it("passes an active fan's plausible reading on its own topic, and on the bare topic only when unbound fans are allowed", () => {
    assert.equal(gate().judge({ kind: "fan", id: "1" }, reading("1")), PASS);
    assert.equal(gate().judge({ kind: "fan", id: "1" }, reading(1)), PASS);
    assert.equal(gate(true).judge({ kind: "bare" }, reading("1")), PASS);
    const refused = gate(false).judge({ kind: "bare" }, reading("1"));
    assert.equal(refused.kind === "refuse" && refused.refusal, "unbound");
  });

  it("refuses another fan's deviceID on a fan's topic, and a reading without one", () => {
    const mismatch = gate().judge({ kind: "fan", id: "1" }, reading("2"));
    assert.equal(mismatch.kind === "refuse" && mismatch.code, "FANWATCH_IDENTITY_MISMATCH");
    const none = gate().judge({ kind: "fan", id: "1" }, { rotation: 1 });
    assert.equal(none.kind === "refuse" && none.code, "FANWATCH_DEVICE_ID_INVALID");
  });

  it("holds a pending fan's reading, refuses a retired one's, leaves an unknown id to the policy", () => {
    assert.deepEqual(gate().judge({ kind: "fan", id: "p" }, reading("p")), { kind: "hold", id: "p" });
    const retired = gate().judge({ kind: "fan", id: "r" }, reading("r"));
    assert.equal(retired.kind === "refuse" && retired.refusal, "retired");
    assert.deepEqual(gate().judge({ kind: "fan", id: "x" }, reading("x")), { kind: "unknown", id: "x" });
  });

  it("judges plausibility with the fan's own limits over the defaults, and leaves non-numbers to predict", () => {
    const far = gate().judge({ kind: "fan", id: "1" }, reading("1", { rotation: 1e308 }));
    assert.equal(far.kind === "implausible" && far.found.sensor, "rotation");
    assert.equal(gate().judge({ kind: "fan", id: "1" }, reading("1", { temperature: 80 })), PASS);
    const hot = gate().judge({ kind: "fan", id: "cold" }, reading("cold", { temperature: 80 }));
    assert.equal(hot.kind === "implausible" && hot.found.limit.max, 60);
    assert.equal(gate().judge({ kind: "fan", id: "1" }, reading("1", { rotation: "fast" })), PASS);
  });
});
