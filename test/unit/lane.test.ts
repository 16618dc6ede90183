import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Lane } from "../../connectors/mqtt/lane.js";

/** Lets every promise callback that can run, run: the lane's permits are handed out in callbacks. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

/** Asks for `count` permits, each recorded in `granted` under its number when it comes. */
function ask(lane: Lane<never>, count: number, signal = new AbortController().signal) {
  const granted: number[] = [];
  const attempts = Array.from({ length: count }, (_, n) => lane.acquire(signal).then(() => void granted.push(n)));
  return { granted, attempts };
}

// One function's share of the connector: its limit follows the function's replicas.
describe("a function's lane", () => {
  it("lets `limit` attempts go at once, and the next in the order they asked as each one ends", async () => {
    const lane = new Lane<never>("predict", 2);
    const { granted } = ask(lane, 5);
    await settled();
    assert.deepEqual(granted, [0, 1]);
    lane.release();
    await settled();
    assert.deepEqual(granted, [0, 1, 2]);
    lane.release();
    lane.release();
    await settled();
    assert.deepEqual(granted, [0, 1, 2, 3, 4]);
    assert.equal(lane.completed, 3, "attempts finished, whatever their outcome");
  });

  it("after a scale-down, lets the attempts out no more than the new limit at a time", async () => {
    const lane = new Lane<never>("predict", 4);
    const { granted } = ask(lane, 4);
    await settled();
    assert.deepEqual(granted, [0, 1, 2, 3]);
    assert.equal(lane.setLimit(1), false, "the limit fell");
    const retries = ask(lane, 2);
    lane.release();
    lane.release();
    lane.release();
    await settled();
    assert.deepEqual(retries.granted, [], "one attempt of the old four is still out: that is the new limit");
    lane.release();
    await settled();
    assert.deepEqual(retries.granted, [0], "then one at a time");
    lane.release();
    await settled();
    assert.deepEqual(retries.granted, [0, 1]);
  });

  it("lets waiting attempts go at once when the limit rises, and says it rose so that more batches are taken", async () => {
    const lane = new Lane<never>("predict", 1);
    const { granted } = ask(lane, 3);
    await settled();
    assert.deepEqual(granted, [0]);
    assert.equal(lane.setLimit(3), true);
    await settled();
    assert.deepEqual(granted, [0, 1, 2]);
  });

  it("takes no new batch while its batches in flight are at the limit", () => {
    const lane = new Lane<never>("predict", 2);
    lane.batchTaken();
    assert.equal(lane.hasRoom, true);
    lane.batchTaken();
    assert.deepEqual([lane.hasRoom, lane.batches], [false, 2]);
    lane.batchFinished();
    assert.equal(lane.hasRoom, true);
  });

  it("gives up on the attempts waiting when the connector stops, with its reason", async () => {
    const lane = new Lane<never>("predict", 1);
    const stop = new AbortController();
    const { granted, attempts } = ask(lane, 3, stop.signal);
    await settled();
    stop.abort(new Error("the connector is stopping"));
    const outcomes = await Promise.allSettled(attempts);
    assert.deepEqual(granted, [0]);
    assert.deepEqual(
      outcomes.map((o) => (o.status === "rejected" ? (o.reason as Error).message : "granted")),
      ["granted", "the connector is stopping", "the connector is stopping"],
    );
    await assert.rejects(lane.acquire(stop.signal), /the connector is stopping/, "and lets no new one wait");
  });
});
