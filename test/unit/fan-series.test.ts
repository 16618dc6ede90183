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
    const view = new FleetView(TOPICS, { now: () => clock.now });
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
});
