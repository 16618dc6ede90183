import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SampleRing } from "../../page/fan-series.js";
import { FleetView } from "../../page/fleet-view.js";

const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter", alarm: "fan/alarm" };

describe("a fan's series for its detail view", () => {
  it("keeps the newest samples, oldest first, and gives back what was put in (not float32's 612.29998779)", () => {
    const ring = new SampleRing(3, 2);
    assert.deepEqual(ring.columns(), { at: [], values: [[], []] });
    for (let n = 1; n <= 5; n++) ring.push(n * 1000, [612.3 + n, 0.123456]);
    assert.equal(ring.size, 3);
    assert.deepEqual(ring.columns(), {
      at: [3000, 4000, 5000],
      values: [
        [615.3, 616.3, 617.3],
        [0.123456, 0.123456, 0.123456],
      ],
    });
  });

  it("keeps each fan's last 300 readings and predictions with when they arrived, counts the recent faulty ones, and knows no unknown fan", () => {
    const clock = { now: 1_000_000 };
    const view = new FleetView(TOPICS, { now: () => clock.now, readingsFrom: "telemetry-for-tests" });
    for (let n = 0; n < 400; n++) {
      clock.now += 2_000;
      const reading = { rotation: 600, temperature: 40 + n / 10, vibration: 150, sound: 48 };
      view.receive(
        TOPICS.telemetry,
        Buffer.from(JSON.stringify({ deviceID: "7", timeStamp: "2026-12-07 10:00:00", ...reading })),
      );
      const fault = n % 4 === 0 ? 1 : 0;
      view.receive(
        TOPICS.anomaly,
        Buffer.from(JSON.stringify({ deviceID: "7", fault, probability: fault ? 0.9 : 0.1 })),
      );
    }
    const fan = view.series("7");
    assert.ok(fan !== undefined);
    assert.equal(fan.readings.at.length, 300);
    assert.equal(fan.readings.at.at(-1), clock.now);
    assert.equal(fan.readings.at[0], clock.now - 299 * 2_000);
    assert.equal(fan.readings.temperature.at(-1), 79.9);
    assert.equal(fan.predictions.probability.length, 300);
    assert.deepEqual(
      fan.view.recent,
      { faulty: 2, scored: 10 },
      "of the last ten (390 to 399), 392 and 396 said fault",
    );
    assert.equal(fan.view.history.rotation.length, 60, "the tiles keep their 60 points");
    assert.equal(view.series("8"), undefined);
  });

  it("names each fan's newest transition (what tells its view that the history changed), for as many fans as its cap", () => {
    const view = new FleetView(TOPICS, { maxFans: 2, readingsFrom: "telemetry-for-tests" });
    const transition = (deviceID: string, id: string, event: string) =>
      view.receive(
        TOPICS.alarm,
        Buffer.from(
          JSON.stringify({
            deviceID,
            alarmId: `${deviceID}@2026-12-07T10:00:00.000Z`,
            state: "alarm",
            severity: "major",
            cause: "vibration",
            contributions: null,
            probability: 0.9,
            eta: null,
            since: "2026-12-07T10:00:00.000Z",
            acknowledged: false,
            event,
            at: "2026-12-07T10:05:00.000Z",
            id,
          }),
        ),
      );
    transition("1", "1:1", "alarm");
    assert.deepEqual(view.series("1")?.lastTransition, { id: "1:1", event: "alarm", at: "2026-12-07T10:05:00.000Z" });
    transition("1", "1:2", "commented");
    assert.equal(view.series("1")?.lastTransition?.id, "1:2", "a comment changes no record, but this");
    view.receive(TOPICS.alarm, Buffer.from(JSON.stringify({ deviceID: "1", event: "commented" })));
    assert.equal(view.series("1")?.lastTransition?.id, "1:2", "not a transition: ignored");
    transition("2", "2:1", "alarm");
    transition("3", "3:1", "alarm");
    // Two fans at most: fan 3, beyond the cap, has no record here, and no transition is kept for it.
    assert.deepEqual(
      ["1", "2", "3"].map((id) => view.series(id)?.lastTransition?.id ?? null),
      ["1:2", "2:1", null],
    );
  });
});
