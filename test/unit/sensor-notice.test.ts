import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSensorNotice, sensorNotice, SensorNoticeSchema } from "../../lib/domain/sensor-notice.js";

describe("sensorNotice", () => {
  it("builds a valid notice that keeps the reading's timeStamp", () => {
    const notice = sensorNotice("fan.3", "2026-01-01T00:00:00Z", { sensor: "rotation", value: 25_000 });
    assert.deepEqual(SensorNoticeSchema.parse(notice), {
      deviceID: "fan.3",
      timeStamp: "2026-01-01T00:00:00Z",
      implausible: { sensor: "rotation", value: 25_000, code: "FANWATCH_READING_IMPLAUSIBLE" },
    });
    assert.ok(isSensorNotice(notice));
  });

  it("leaves timeStamp out when the reading had none", () => {
    const notice = sensorNotice("7", undefined, { sensor: "rotation", value: -1 });
    assert.equal(Object.hasOwn(notice, "timeStamp"), false);
  });
});
