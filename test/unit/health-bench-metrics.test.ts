import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AlarmTransition } from "../../lib/domain/health.js";
import { outcome, summarise, type Seen } from "../../bench/health/metrics.js";
import type { FanTruth } from "../../simulation/fleet-model.js";

const STEP = 2000;
const T0 = Date.UTC(2026, 0, 1);
const iso = (reading: number) => new Date(T0 + reading * STEP).toISOString();

/** A transition at reading `idx`, with the warning's fields given. */
function seen(idx: number, event: "warning" | "alarm", fields: Partial<AlarmTransition> = {}): Seen {
  return {
    idx,
    transition: {
      id: `t${idx}`,
      event,
      deviceID: "1",
      alarmId: "a1",
      state: event,
      severity: event === "alarm" ? "critical" : "minor",
      cause: "vibration",
      contributions: null,
      probability: 0.5,
      eta: null,
      since: iso(idx),
      at: iso(idx),
      acknowledged: false,
      site: "local",
      ...fields,
    },
  };
}

/** A pair drift of vibration and sound, wearing from reading 1,000 to 2,000. */
const truth: FanTruth = {
  deviceID: "1",
  shape: "drift-pair",
  wearStartsAtReading: 1000,
  failsAtReading: 2000,
  drifting: ["vibration", "sound"],
};

describe("health benchmark: warning position, sensors named and interval coverage", () => {
  it("places the first warning between the start of the wear (0) and the alarm (1), and checks the alarm against its interval", () => {
    const o = outcome(
      truth,
      3000,
      [
        seen(1400, "warning", {
          eta: iso(1900),
          etaInterval: { from: iso(1700), to: iso(2000), coverage: 0.8 },
          basis: "baseline",
          sensors: ["vibration", "sound"],
        }),
        seen(1800, "alarm"),
      ],
      STEP,
    );
    assert.equal(o.warningPosition, 0.5);
    assert.equal(o.alarmWithinInterval, true);
    assert.equal(o.intervalCoverage, 0.8);
    assert.equal(o.warningBasis, "baseline");
    assert.equal(o.warningNamedDrifting, true);
    assert.equal(o.periodHours, (1000 * STEP) / 3_600_000);
  });

  it("counts a fan not warned before its alarm at 1 and not warned; an alarm outside the interval is not covered", () => {
    const late = outcome(truth, 3000, [seen(1800, "alarm"), seen(1900, "warning")], STEP);
    assert.equal(late.warningPosition, 1);
    assert.equal(late.warnedAt, null);
    const missed = outcome(
      { ...truth, deviceID: "2" },
      3000,
      [seen(1200, "warning", { etaInterval: { from: iso(1300), to: iso(1500), coverage: 0.8 } }), seen(1600, "alarm")],
      STEP,
    );
    assert.equal(missed.alarmWithinInterval, false);
    assert.equal(missed.warningNamedDrifting, false, "the cause alone names one of the two drifting sensors");
    const plain = outcome({ ...truth, deviceID: "3" }, 3000, [seen(1500, "warning"), seen(1900, "alarm")], STEP);
    assert.equal(plain.alarmWithinInterval, null, "no interval: not judged");
    assert.equal(plain.warningBasis, null);

    const s = summarise([late, missed, plain]);
    const pair = s.shapes["drift-pair"];
    assert.ok(pair);
    assert.equal(pair.fans, 3);
    assert.equal(pair.warned, 2);
    assert.equal(pair.warningPositionEarliest, 200 / 600);
    assert.equal(pair.warningPositionMedian, 500 / 900);
    assert.equal(pair.warningPositionLatest, 1);
    assert.equal(pair.basisNone, 2);
    assert.deepEqual(s.allWearing.interval, {
      warned: 2,
      withInterval: 1,
      withoutInterval: 1,
      covered: 0,
      coverage: 0,
      statedCoverage: 0.8,
    });
  });

  it("takes the cause alone for the named sensors when a warning gives none, and needs it to be a drifting one", () => {
    const single = { ...truth, shape: "drift" as const, drifting: ["sound" as const] };
    const bySound = outcome(single, 3000, [seen(1500, "warning", { cause: "sound" }), seen(1900, "alarm")], STEP);
    assert.equal(bySound.warningNamedDrifting, true);
    const listedButBlamedElsewhere = outcome(
      single,
      3000,
      [seen(1500, "warning", { cause: "rotation", sensors: ["rotation", "sound"] }), seen(1900, "alarm")],
      STEP,
    );
    assert.equal(listedButBlamedElsewhere.warningNamedDrifting, false);
  });
});
