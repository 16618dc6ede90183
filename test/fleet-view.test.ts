import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FleetView } from "../runtime/fleet-view.js";

const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter" };

function reading(deviceID: string): Buffer {
  return Buffer.from(JSON.stringify({ deviceID, timeStamp: "2026-11-27 10:00:00", rotation: 612.3, temperature: 40.1, vibration: 151.7, sound: 48.9 }));
}

function prediction(deviceID: string, fault: 0 | 1): Buffer {
  return Buffer.from(JSON.stringify({ deviceID, timeStamp: "2026-11-27 10:00:00", probability: fault === 1 ? 0.9 : 0.1, fault }));
}

/** A view on a clock the test moves; the 12 fans of `fanwatch start` have sent two readings each. */
function viewWithFleet(options: { maxFans?: number; forgetAfterMs?: number } = {}) {
  const clock = { now: 0 };
  const view = new FleetView(TOPICS, { ...options, now: () => clock.now });
  const real = Array.from({ length: 12 }, (_, i) => String(i + 1));
  for (let round = 0; round < 2; round++) for (const id of real) view.receive(TOPICS.telemetry, reading(id));
  for (const id of real) view.receive(TOPICS.anomaly, prediction(id, id === "1" ? 1 : 0));
  return { view, clock, real };
}

const ids = (view: FleetView) => view.snapshot().fans.map((f) => f.deviceID);

describe("the fleet view's memory", () => {
  it("keeps the 12 real fans on the page through 100,000 forged device ids, and never more fans than its cap", () => {
    const { view, real } = viewWithFleet({ maxFans: 1_000 });
    for (let i = 0; i < 100_000; i++) {
      view.receive(TOPICS.telemetry, reading(`forged-${i}`));
      view.receive(TOPICS.anomaly, prediction(`forged-${i}`, 1));
    }
    const snapshot = view.snapshot();
    assert.deepEqual(ids(view), real);
    assert.equal(snapshot.totals.fans, 12);
    assert.equal(snapshot.totals.readings, 24 + 100_000);
    assert.equal(snapshot.totals.predictions, 12 + 100_000);
    // Forged ids' predictions are counted, not listed: the feed still shows the real faulty fan.
    assert.deepEqual(snapshot.feed.map((f) => f.deviceID), ["1"]);
    // Sent again in the same order, none is still a candidate when its second reading comes.
    for (let i = 98_000; i < 100_000; i++) view.receive(TOPICS.telemetry, reading(`forged-${i}`));
    assert.equal(view.snapshot().totals.fans, 12);
    // Forged ids that send two readings in a row become fans until the cap, and no further.
    for (let i = 0; i < 2_000; i++) for (let n = 0; n < 2; n++) view.receive(TOPICS.telemetry, reading(`twice-${i}`));
    assert.equal(view.snapshot().totals.fans, 1_000);
    for (const id of real) assert.ok(ids(view).includes(id), `fan ${id} is still on the page`);
    // What the other ids left behind is a capped list of candidates, not 100,000 entries.
    assert.equal(view.candidates, 1_000);
  });

  it("forgets a fan silent for longer than forgetAfterMs, and a newcomer takes its place on a full page", () => {
    const { view, clock, real } = viewWithFleet({ maxFans: 12, forgetAfterMs: 60_000 });
    // Full: a new fan waits, however often it reports.
    for (let i = 0; i < 5; i++) view.receive(TOPICS.telemetry, reading("13"));
    assert.equal(ids(view).includes("13"), false);
    // Fan 12 falls silent; the others and the newcomer go on reporting.
    for (let t = 1; t <= 7; t++) {
      clock.now = t * 10_000;
      for (const id of [...real.slice(0, 11), "13"]) view.receive(TOPICS.telemetry, reading(id));
      view.summary();
    }
    assert.deepEqual(ids(view), [...real.slice(0, 11)]);
    clock.now += 1_000;
    view.receive(TOPICS.telemetry, reading("13"));
    assert.deepEqual(ids(view), [...real.slice(0, 11), "13"]);
    assert.equal(view.snapshot().fans.find((f) => f.deviceID === "13")?.readings, 1);
  });

  it("counts bad input without tracking it", () => {
    const { view } = viewWithFleet();
    view.receive(TOPICS.telemetry, Buffer.from("not json"));
    view.receive(TOPICS.telemetry, Buffer.from('{"__proto__":{"x":1},"deviceID":"7"}'));
    view.receive(TOPICS.anomaly, Buffer.from("{}"));
    view.receive(TOPICS.deadletter, Buffer.from(JSON.stringify({ error: "x".repeat(1000) })));
    const snapshot = view.snapshot();
    assert.equal(snapshot.totals.fans, 12);
    assert.equal(snapshot.totals.readings, 26);
    assert.equal(snapshot.totals.deadLetters, 1);
    assert.equal(snapshot.deadLetters[0]?.error.length, 200);
  });
});
