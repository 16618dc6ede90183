import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { FEATURES } from "../../lib/domain/features.js";
import { UsageError } from "../../lib/errors.js";
import { HOT_TEMPERATURE, fleetProfiles } from "../../simulation/fan-profiles.js";
import { createFleet, type FleetModelOptions } from "../../simulation/fleet-model.js";
import { addFleetOptions, fleetOptions, type FleetFlags } from "../../cli/simulate-command.js";

const base: FleetModelOptions = {
  fans: 6,
  faulty: 1,
  degrading: 1,
  intervalMs: 1000,
  degradeMs: 60_000,
  onsetMs: 0,
  seed: 5,
};

function within(value: number, range: { min: number; max: number }): boolean {
  return value >= range.min && value <= range.max;
}

describe("the simulator's hot fans (--hot)", () => {
  it("puts hot fans after every other shape, so that a fleet without them is as it was", () => {
    assert.deepEqual(fleetProfiles(6, { faulty: 1, degrading: 1, noisy: 1, hot: 2 }), [
      "faulty",
      "degrading",
      "noisy",
      "hot",
      "hot",
      "healthy",
    ]);
    const before = createFleet(base).map((fan) => Array.from({ length: 20 }, () => fan.next()));
    const withHot = createFleet({ ...base, hot: 2 });
    // The faulty and degrading fans read as before; fans 3 and 4 are now hot.
    for (const i of [0, 1])
      assert.deepEqual(
        Array.from({ length: 20 }, () => withHot[i]?.next()),
        before[i],
      );
    assert.deepEqual(
      withHot.map((f) => f.profile),
      ["faulty", "degrading", "hot", "hot", "healthy", "healthy"],
    );
  });

  it("reads a hot fan's temperature at 56–58 °C and its other sensors in the healthy ranges, and its truth says healthy", () => {
    for (const ownLevels of [false, true]) {
      const [fan] = createFleet({ ...base, faulty: 0, degrading: 0, hot: 1, ownLevels });
      assert.ok(fan);
      assert.equal(fan.profile, "hot");
      assert.deepEqual([fan.truth.failsAtReading, fan.truth.wearStartsAtReading, fan.truth.drifting], [null, null, []]);
      for (let n = 0; n < 500; n++) {
        const reading = fan.next();
        assert.ok(within(reading.temperature, HOT_TEMPERATURE), `temperature ${reading.temperature}`);
        assert.ok(reading.temperature > HEALTHY_RANGES.temperature.max);
        for (const f of FEATURES.filter((f) => f !== "temperature"))
          assert.ok(within(reading[f], HEALTHY_RANGES[f]), `${f} ${reading[f]} (own levels: ${ownLevels})`);
      }
    }
  });

  it("takes --hot on simulate and start's fleet options, and refuses a count that does not fit or is negative", () => {
    const parse = (args: string[]): FleetFlags => {
      const command = addFleetOptions(new Command().exitOverride(), { fans: 12, faulty: 2, degrading: 2 });
      command.parse(args, { from: "user" });
      return command.opts<FleetFlags>();
    };
    assert.equal(fleetOptions(parse(["--hot", "3"])).hot, 3);
    assert.equal(fleetOptions(parse([])).hot, 0);
    assert.throws(
      () => fleetOptions(parse(["--fans", "4", "--faulty", "1", "--hot", "4"])),
      (error: unknown) =>
        error instanceof UsageError &&
        /--faulty 1, --degrading 2, --hot 4 are more than the 4 fans/.test(error.message) &&
        /4 fans/.test(error.message),
    );
    assert.throws(() => fleetOptions(parse(["--hot", "-1"])), /cannot be negative/);
  });
});
