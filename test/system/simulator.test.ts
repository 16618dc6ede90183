import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { seededRandom } from "../../simulation/rng.js";
import { FEATURES } from "../../lib/domain/features.js";
import { WORN_RANGES, drawReadings, fleetProfiles, rangesAt } from "../../simulation/fan-profiles.js";
import { createFleet, type SimulatedFan } from "../../simulation/fleet-model.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { eventually } from "../support/eventually.js";
import { Collector, isMarker, publishMarker } from "../support/mqtt-collector.js";
import { runCli } from "../support/process.js";

describe("fan profiles", () => {
  it("a degrading fan starts healthy and wears out towards the faulty ranges", () => {
    assert.deepEqual(rangesAt("degrading", 0), HEALTHY_RANGES);
    const worn = rangesAt("degrading", 1);
    assert.deepEqual(worn.rotation, { min: 400, max: 500 }, "rotation falls towards 400 rpm");
    assert.ok(
      worn.temperature.min >= HEALTHY_RANGES.temperature.max &&
        worn.vibration.min >= HEALTHY_RANGES.vibration.max &&
        worn.sound.min >= HEALTHY_RANGES.sound.max,
      "the rest rise out of the healthy ranges",
    );
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
    assert.deepEqual(fleetProfiles(5, { faulty: 1, degrading: 2 }), [
      "faulty",
      "degrading",
      "degrading",
      "healthy",
      "healthy",
    ]);
    assert.deepEqual(fleetProfiles(6, { faulty: 0, degrading: 0, bearing: 1, sudden: 1, noisy: 2 }), [
      "bearing",
      "sudden",
      "noisy",
      "noisy",
      "healthy",
      "healthy",
    ]);
    assert.throws(
      () => fleetProfiles(2, { faulty: 2, degrading: 1 }),
      /--faulty 2, --degrading 1 are more than the 2 fans/,
    );
  });
});

describe("fault shapes and ground truth", () => {
  const inHealthy = (r: Record<string, number>) =>
    FEATURES.every((f) => (r[f] as number) >= HEALTHY_RANGES[f].min && (r[f] as number) <= HEALTHY_RANGES[f].max);
  const fleet = (
    mix: { faulty?: number; degrading?: number; bearing?: number; sudden?: number; noisy?: number },
    fans = 1,
  ) =>
    createFleet({
      fans,
      faulty: 0,
      degrading: 0,
      ...mix,
      intervalMs: 2000,
      degradeMs: 600_000,
      onsetMs: 600_000,
      seed: 5,
    });

  it("a bearing fan's vibration alone wears out", () => {
    const worn = rangesAt("bearing", 1);
    assert.deepEqual(worn.vibration, { min: 200, max: 250 });
    for (const f of ["rotation", "temperature", "sound"] as const) assert.deepEqual(worn[f], HEALTHY_RANGES[f]);
  });

  it("a sudden fan is healthy until its failure, then faulty; its truth says when", () => {
    const [fan] = fleet({ sudden: 1 });
    assert.ok(fan);
    const fails = fan.truth.failsAtReading as number;
    assert.equal(fan.truth.shape, "sudden");
    assert.equal(fan.truth.wearStartsAtReading, null, "no wear before a sudden fault");
    assert.ok(fails > 0 && fails < 300, `fails within the 10-minute onset window, at reading ${fails}`);
    const readings = Array.from({ length: fails + 400 }, () => fan.next());
    assert.ok(readings.slice(0, fails).every(inHealthy), "healthy before");
    assert.ok(readings.slice(fails).filter((r) => !inHealthy(r)).length > 300, "mostly outside the healthy box after");
  });

  it("a wearing fan's truth gives the start of its wear and its failure one wear-out period later", () => {
    const [degrading, bearing] = fleet({ degrading: 1, bearing: 1 }, 2);
    assert.ok(degrading && bearing);
    for (const fan of [degrading, bearing])
      assert.equal(
        (fan.truth.failsAtReading as number) - (fan.truth.wearStartsAtReading as number),
        300,
        "10 minutes at 2 s",
      );
    const start = degrading.truth.wearStartsAtReading as number;
    const readings = Array.from({ length: start + 300 }, () => degrading.next());
    assert.ok(readings.slice(0, start).every(inHealthy), "healthy until the wear starts");
    assert.ok(
      readings.slice(-20).every((r) => !inHealthy(r)),
      "out of the healthy box once worn out",
    );
  });

  it("a noisy fan stays healthy but for rare single-reading spikes", () => {
    const [fan] = fleet({ noisy: 1 });
    assert.ok(fan);
    const readings = Array.from({ length: 50_000 }, () => fan.next());
    const spikes = readings.map((r, i) => (inHealthy(r) ? -1 : i)).filter((i) => i >= 0);
    assert.ok(spikes.length > 40 && spikes.length < 200, `${spikes.length} spikes in 50,000 readings`);
    assert.equal(fan.truth.failsAtReading, null);
  });

  it("the same seed gives the same readings and the same truth", () => {
    const a = fleet({ faulty: 1, degrading: 1, bearing: 1, sudden: 1, noisy: 1 }, 6);
    const b = fleet({ faulty: 1, degrading: 1, bearing: 1, sudden: 1, noisy: 1 }, 6);
    assert.deepEqual(
      a.map((f) => f.truth),
      b.map((f) => f.truth),
    );
    for (let i = 0; i < 6; i++)
      assert.deepEqual(
        Array.from({ length: 50 }, () => a[i]?.next()),
        Array.from({ length: 50 }, () => b[i]?.next()),
      );
  });
});

describe("own-level fans and drifts", () => {
  const width = (f: (typeof FEATURES)[number]) => HEALTHY_RANGES[f].max - HEALTHY_RANGES[f].min;
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const run = (fan: SimulatedFan, n: number) => Array.from({ length: n }, () => fan.next());

  it("today's fleets draw the very readings they drew before own levels and drifts existed", () => {
    const fleet = createFleet({
      fans: 6,
      faulty: 1,
      degrading: 1,
      bearing: 1,
      sudden: 1,
      noisy: 1,
      intervalMs: 2000,
      degradeMs: 600_000,
      onsetMs: 600_000,
      seed: 5,
    });
    const readings = fleet.map((fan) => run(fan, 201));
    assert.deepEqual(
      readings.map((r) => r[0]),
      [
        { rotation: 407.4, temperature: 51.5, vibration: 208.7, sound: 48.8 },
        { rotation: 535.4, temperature: 43.8, vibration: 153.7, sound: 49 },
        { rotation: 572.1, temperature: 43.2, vibration: 111.1, sound: 48 },
        { rotation: 528.6, temperature: 43.4, vibration: 199, sound: 47.7 },
        { rotation: 651.2, temperature: 39.8, vibration: 147.6, sound: 48.7 },
        { rotation: 648.5, temperature: 35.4, vibration: 126.3, sound: 50.5 },
      ],
    );
    assert.deepEqual(
      readings[1]?.[200],
      { rotation: 519.2, temperature: 40.7, vibration: 182.2, sound: 48.2 },
      "a degrading fan well into its wear",
    );
    assert.deepEqual(
      fleet.map((f) => [f.truth.wearStartsAtReading, f.truth.failsAtReading]),
      [
        [null, 0],
        [87, 387],
        [285, 585],
        [null, 208],
        [null, null],
        [null, null],
      ],
    );
  });

  it("each own-level fan reads within its own narrow range, inside the fleet's, the same for the same seed", () => {
    const options = { fans: 4, faulty: 0, degrading: 0, intervalMs: 2000, degradeMs: 1, onsetMs: 0, seed: 9 };
    const fleet = createFleet({ ...options, ownLevels: true });
    for (const fan of fleet) {
      const readings = run(fan, 3000);
      for (const f of FEATURES) {
        const own = fan.ranges.healthy[f];
        const half = (own.max - own.min) / 2;
        assert.ok(half >= 0.05 * width(f) - 1e-9 && half <= 0.1 * width(f) + 1e-9, `${f}: half-width ${half}`);
        assert.ok(own.min >= HEALTHY_RANGES[f].min + 0.15 * width(f) - 1e-9, `${f}: ${own.min} clear of the minimum`);
        assert.ok(own.max <= HEALTHY_RANGES[f].max - 0.15 * width(f) + 1e-9, `${f}: ${own.max} clear of the maximum`);
        const values = readings.map((r) => r[f]);
        assert.ok(
          values.every((v) => v >= own.min - 0.05 && v <= own.max + 0.05),
          `fan ${fan.deviceID} ${f} within ${own.min}..${own.max}`,
        );
        assert.ok(Math.max(...values) - Math.min(...values) > 1.5 * half, `${f} spreads over its own range`);
      }
    }
    const levels = fleet.map((fan) => fan.ranges.healthy.rotation.min);
    assert.equal(new Set(levels).size, 4, "every fan at its own level");
    const again = createFleet({ ...options, ownLevels: true });
    assert.deepEqual(
      run(again[0] as SimulatedFan, 50),
      run(createFleet({ ...options, ownLevels: true })[0] as SimulatedFan, 50),
    );
    assert.deepEqual(createFleet(options)[0]?.ranges.healthy, HEALTHY_RANGES, "off by default");
  });

  it("a noisy own-level fan still spikes beyond the fleet's range", () => {
    const [fan] = createFleet({
      fans: 1,
      faulty: 0,
      degrading: 0,
      noisy: 1,
      ownLevels: true,
      intervalMs: 2000,
      degradeMs: 1,
      onsetMs: 0,
      seed: 4,
    });
    assert.ok(fan);
    const outside = run(fan, 20_000).filter((r) =>
      FEATURES.some((f) => r[f] < HEALTHY_RANGES[f].min || r[f] > HEALTHY_RANGES[f].max),
    );
    assert.ok(outside.length > 10, `${outside.length} spikes in 20,000 readings`);
  });

  it("a drift moves its sensors' level to the middle of their worn range by the failure; the rest stay at their own level", () => {
    const fleet = createFleet({
      fans: 6,
      faulty: 0,
      degrading: 0,
      drift: 4,
      driftPair: 2,
      ownLevels: true,
      intervalMs: 2000,
      degradeMs: 600_000,
      onsetAfterMs: 600_000,
      onsetMs: 600_000,
      seed: 11,
    });
    assert.deepEqual(
      fleet.map((f) => f.truth.shape),
      ["drift", "drift", "drift", "drift", "drift-pair", "drift-pair"],
    );
    assert.deepEqual(
      new Set(fleet.slice(0, 4).flatMap((f) => f.truth.drifting)),
      new Set(FEATURES),
      "one fan per sensor",
    );
    const pairs = fleet.slice(4).map((f) => f.truth.drifting.slice().sort().join("+"));
    assert.equal(new Set(pairs).size, 2, `two different pairs: ${pairs.join(", ")}`);
    for (const fan of fleet) {
      const { wearStartsAtReading: start, failsAtReading: fails, drifting } = fan.truth;
      assert.ok(start !== null && start >= 300 && start < 600, `wear starts after 10 minutes healthy, at ${start}`);
      assert.equal(fails, start + 300, "fails one wear-out period later");
      const readings = run(fan, fails + 100);
      for (const f of FEATURES) {
        const own = fan.ranges.healthy[f];
        const level = (own.min + own.max) / 2;
        const before = mean(readings.slice(0, start).map((r) => r[f]));
        const worn = mean(readings.slice(fails).map((r) => r[f]));
        assert.ok(
          Math.abs(before - level) < 0.02 * width(f),
          `fan ${fan.deviceID} ${f} at its own level before the wear`,
        );
        if (drifting.includes(f)) {
          const target = (WORN_RANGES[f].min + WORN_RANGES[f].max) / 2;
          assert.ok(
            Math.abs(worn - target) < 0.02 * width(f),
            `fan ${fan.deviceID} ${f}: ${worn} at the worn middle ${target}`,
          );
          const halfway = mean(readings.slice(start + 140, start + 160).map((r) => r[f]));
          assert.ok(
            Math.abs(halfway - (level + target) / 2) < 0.05 * width(f),
            `${f} halfway at half the wear: ${halfway}`,
          );
        } else assert.ok(Math.abs(worn - level) < 0.02 * width(f), `fan ${fan.deviceID} ${f} stays at its own level`);
      }
    }
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
      const result = await runCli([
        "simulate",
        "--broker",
        broker.url,
        "--fans",
        "3",
        "--faulty",
        "1",
        "--degrading",
        "1",
        "--interval",
        "100",
        "--duration",
        "1",
        "--seed",
        "7",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /simulating 3 fans \(1 faulty, 1 degrading, 1 healthy\)/);
      // Every reading the broker acknowledged (QoS 1) before the simulator exited has reached the
      // collector once a marker published after them has: one topic, in order.
      await publishMarker(broker.url);
      await eventually("the marker collected", () => collector.on("fan/messages").some(isMarker));
      runs.push((collector.on("fan/messages") as Array<Record<string, unknown>>).filter((m) => !isMarker(m)));
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
    const values = (list: Array<Record<string, unknown>>, id: string) =>
      list
        .filter((m) => m.deviceID === id)
        .slice(0, 4)
        .map(({ timeStamp: _t, ...rest }) => rest);
    for (const id of ["1", "2", "3"]) assert.deepEqual(values(first, id), values(second, id), `fan ${id}`);
  });

  it("publishes each fan on its own topic with --per-fan-topics, as a fan bound to its credentials does", async () => {
    const collector = await Collector.start(broker.url, ["fan/messages/+", "fan/messages"]);
    try {
      const args = ["--broker", broker.url, "--fans", "2", "--interval", "100", "--duration", "1"];
      const result = await runCli(["simulate", ...args, "--per-fan-topics"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /topic fan\/messages\/<deviceID>/);
      for (const id of ["1", "2"])
        await eventually(`fan ${id}'s readings on fan/messages/${id}`, () =>
          collector.on(`fan/messages/${id}`).some((m) => (m as { deviceID?: string }).deviceID === id),
        );
      for (const id of ["1", "2"])
        assert.ok(
          collector.on(`fan/messages/${id}`).every((m) => (m as { deviceID?: string }).deviceID === id),
          `only fan ${id} on its topic`,
        );
      assert.equal(collector.on("fan/messages").length, 0, "nothing on the shared topic");
    } finally {
      await collector.stop();
    }
  });

  it("writes each fan's ground truth with --truth", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-truth-"));
    try {
      const file = join(dir, "truth.jsonl");
      const result = await runCli([
        "simulate",
        "--broker",
        broker.url,
        "--fans",
        "4",
        "--faulty",
        "1",
        "--degrading",
        "0",
        "--bearing",
        "1",
        "--sudden",
        "1",
        "--onset-minutes",
        "1",
        "--degrade-minutes",
        "2",
        "--interval",
        "100",
        "--duration",
        "0.5",
        "--truth",
        file,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /1 faulty, 1 bearing, 1 sudden, 1 healthy/);
      const truth = (await readFile(file, "utf8"))
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.deepEqual(
        truth.map((t) => [t.deviceID, t.shape]),
        [
          ["1", "faulty"],
          ["2", "bearing"],
          ["3", "sudden"],
          ["4", "healthy"],
        ],
      );
      const bearing = truth[1] as {
        wearStartsAtReading: number;
        failsAtReading: number;
        wearStartsAt: string;
        failsAt: string;
      };
      assert.equal(bearing.failsAtReading - bearing.wearStartsAtReading, 1200, "2 minutes of wear at 100 ms");
      assert.equal(Date.parse(bearing.failsAt) - Date.parse(bearing.wearStartsAt), 120_000);
      assert.equal(truth[3]?.failsAt, null, "a healthy fan never fails");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("simulates own-level drifting fans with --own-levels, --drift and --drift-pair; the truth names the drifting sensors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-truth-"));
    try {
      const file = join(dir, "truth.jsonl");
      const result = await runCli([
        "simulate",
        "--broker",
        broker.url,
        "--fans",
        "4",
        "--faulty",
        "0",
        "--degrading",
        "0",
        "--drift",
        "2",
        "--drift-pair",
        "1",
        "--own-levels",
        "--interval",
        "100",
        "--duration",
        "0.5",
        "--truth",
        file,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /2 drift, 1 drift-pair, 1 healthy/);
      const truth = (await readFile(file, "utf8"))
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { shape: string; drifting: string[] });
      assert.deepEqual(
        truth.map((t) => [t.shape, t.drifting.length]),
        [
          ["drift", 1],
          ["drift", 1],
          ["drift-pair", 2],
          ["healthy", 0],
        ],
      );
      assert.notDeepEqual(truth[0]?.drifting, truth[1]?.drifting, "two drift fans, two sensors");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a mix that does not fit the fleet", async () => {
    const result = await runCli(["simulate", "--broker", broker.url, "--fans", "2", "--faulty", "3"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--faulty 3, --degrading 2 are more than the 2 fans/);
  });
});
