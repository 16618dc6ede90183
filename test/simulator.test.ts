import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { HEALTHY_RANGES } from "../lib/fan-ranges.js";
import { seededRandom } from "../lib/rng.js";
import { drawReadings, fleetProfiles, rangesAt } from "../runtime/fan-profiles.js";
import { startMosquitto, type Broker } from "./support/mosquitto.js";
import { Collector } from "./support/mqtt-collector.js";
import { runCli } from "./support/process.js";

describe("fan profiles", () => {
  it("a degrading fan starts healthy and wears out towards the faulty ranges", () => {
    assert.deepEqual(rangesAt("degrading", 0), HEALTHY_RANGES);
    const worn = rangesAt("degrading", 1);
    assert.deepEqual(worn.rotation, { min: 400, max: 500 }, "rotation falls towards 400 rpm");
    assert.ok(worn.temperature.min >= HEALTHY_RANGES.temperature.max && worn.vibration.min >= HEALTHY_RANGES.vibration.max && worn.sound.min >= HEALTHY_RANGES.sound.max, "the rest rise out of the healthy ranges");
    const half = rangesAt("degrading", 0.5);
    assert.ok(half.rotation.max < HEALTHY_RANGES.rotation.max && half.rotation.max > worn.rotation.max);
    assert.deepEqual(rangesAt("degrading", 7), worn, "wear stops at worn out");
  });

  it("draws one-decimal readings, the same for the same seed", () => {
    const a = drawReadings("healthy", 0, seededRandom(3));
    assert.deepEqual(a, drawReadings("healthy", 0, seededRandom(3)));
    for (const value of Object.values(a)) assert.equal(Math.round(value * 10) / 10, value);
  });

  it("mixes a fleet from the flags, or says why not", () => {
    assert.deepEqual(fleetProfiles(5, 1, 2), ["faulty", "degrading", "degrading", "healthy", "healthy"]);
    assert.throws(() => fleetProfiles(2, 2, 1), /more than the 2 fans/);
  });
});

describe("fanwatch simulate against a real Mosquitto", { timeout: 60_000 }, () => {
  let broker: Broker;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await broker?.stop();
  });

  it("publishes the reference payload for every fan, and the same readings for the same seed", async () => {
    const runs = [];
    for (let run = 0; run < 2; run++) {
      const collector = await Collector.start(broker.url, ["fan/messages"]);
      const result = await runCli(["simulate", "--broker", broker.url, "--fans", "3", "--faulty", "1", "--degrading", "1", "--interval", "100", "--duration", "1", "--seed", "7"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /simulating 3 fans \(1 faulty, 1 degrading, 1 healthy\)/);
      await new Promise((resolve) => setTimeout(resolve, 200));
      runs.push(collector.on("fan/messages") as Array<Record<string, unknown>>);
      await collector.stop();
    }
    const [first, second] = runs as [Array<Record<string, unknown>>, Array<Record<string, unknown>>];
    assert.ok(first.length >= 15, `${first.length} readings from 3 fans in 1 s at 100 ms`);
    assert.deepEqual(new Set(first.map((m) => m.deviceID)), new Set(["1", "2", "3"]));
    for (const m of first) {
      assert.deepEqual(Object.keys(m), ["deviceID", "timeStamp", "rotation", "temperature", "vibration", "sound"]);
      assert.match(String(m.timeStamp), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    }
    // Per fan: the order in which fans' timers fire differs between runs on a busy machine.
    const values = (list: Array<Record<string, unknown>>, id: string) => list.filter((m) => m.deviceID === id).slice(0, 4).map(({ timeStamp: _t, ...rest }) => rest);
    for (const id of ["1", "2", "3"]) assert.deepEqual(values(first, id), values(second, id), `fan ${id}`);
  });

  it("refuses a mix that does not fit the fleet", async () => {
    const result = await runCli(["simulate", "--broker", broker.url, "--fans", "2", "--faulty", "3"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--faulty 3 and --degrading 2 are more than the 2 fans/);
  });
});
