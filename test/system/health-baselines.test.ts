import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { PublishedBaselineSchema, type PublishedBaseline } from "../../lib/domain/baseline.js";
import { FEATURES } from "../../lib/domain/features.js";
import type { PerSensor, Prediction } from "../../lib/domain/prediction.js";
import { encodeKey } from "../../lib/nats/keys.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson } from "../support/process.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";
import { eventuallyValue } from "../support/eventually.js";

/** Readings learnt before a baseline is ready: few, so that the test need not send thousands. */
const LEARN = 50;
const t0 = Date.UTC(2026, 11, 7, 9);
const STEP = 2_000;

/** Fan reading i: each sensor moving around the fan's own level (no value repeats long enough to look stuck). */
function reading(i: number): PerSensor {
  return {
    rotation: 640 + ((i * 7) % 21) - 10,
    temperature: 38 + (((i * 3) % 13) - 6) / 10,
    vibration: 130 + ((i * 5) % 15) - 7,
    sound: 49 + (((i * 2) % 9) - 4) / 10,
  };
}

/** Healthy predictions of readings `from`…`to − 1`, two seconds apart in reading time. */
function predictions(deviceID: string, from: number, to: number): Prediction[] {
  return Array.from({ length: to - from }, (_, k) => ({
    deviceID,
    fault: 0,
    probability: 0.02,
    timeStamp: t0 + (from + k) * STEP,
    reading: reading(from + k),
  }));
}

/** Per sensor, the mean of the first `count` readings: the level a baseline learnt from them holds. */
function meanLevels(count: number): PerSensor {
  const sums = { rotation: 0, temperature: 0, vibration: 0, sound: 0 };
  for (let i = 0; i < count; i++) for (const f of FEATURES) sums[f] += reading(i)[f];
  for (const f of FEATURES) sums[f] /= count;
  return sums;
}

async function send(url: string, body: unknown): Promise<void> {
  const answer = await postJson(url, body);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
}

describe("health publishes each fan's own baseline (real nats-server)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let broker: Broker;
  let one: HealthProcess;
  let two: HealthProcess;

  beforeEach(async () => {
    [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
    const env = {
      NATS_URL: nats.url,
      MQTT_URL: broker.url,
      HEALTH_BASELINE_READINGS: String(LEARN),
      HEALTH_SILENT_AFTER_MS: "3600000",
    };
    [one, two] = await Promise.all([startHealth(env), startHealth(env)]);
  });
  afterEach(async () => {
    await stopHealthProcesses();
    await Promise.all([nats?.stop(), broker?.stop()]);
  });

  /** The fan's entry in the KV bucket fan_baselines, parsed as its schema says (undefined while there is none). */
  async function kvBaseline(deviceID: string): Promise<PublishedBaseline | undefined> {
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open("fan_baselines");
      const entry = await kv.get(encodeKey(deviceID));
      return entry === null || entry.operation !== "PUT"
        ? undefined
        : PublishedBaselineSchema.parse(JSON.parse(entry.string()));
    } finally {
      await nc.close();
    }
  }

  async function getBaseline(url: string, query: string): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${url}/baseline?${query}`);
    return { status: response.status, body: (await response.json()) as unknown };
  }

  it("writes the fan's baseline to fan_baselines while it is learnt and once it is ready; GET /baseline answers the same", async () => {
    const id = "fan.b1"; // a dot: the key is encoded
    await send(one.url, predictions(id, 0, 20));
    const learning = await eventuallyValue(
      `${id}'s baseline in fan_baselines while it is learnt`,
      () => kvBaseline(id),
      (b) => b !== undefined,
    );
    assert.deepEqual(
      [learning?.deviceID, learning?.state, learning?.needs, learning?.reason, learning?.readyAt, learning?.frozen],
      [id, "learning", LEARN, "new", null, false],
    );

    await send(one.url, predictions(id, 20, LEARN + 10));
    const ready = await eventuallyValue(
      `${id}'s baseline ready in fan_baselines`,
      () => kvBaseline(id),
      (b) => b?.state === "ready",
    );
    assert.ok(ready);
    assert.deepEqual(
      [ready.readings, ready.since, ready.readyAt, ready.frozen],
      [LEARN, new Date(t0).toISOString(), new Date(t0 + (LEARN - 1) * STEP).toISOString(), false],
      "ready with its 50th reading",
    );
    const levels = meanLevels(LEARN);
    for (const f of FEATURES) {
      const { level, spread } = ready.sensors[f];
      assert.ok(Math.abs(level - levels[f]) < 0.01, `${f}: level ${level}, the readings' mean ${levels[f]}`);
      assert.ok(spread > 0, `${f}: spread ${spread}`);
    }

    // Either replica answers the baseline as the rules hold it: the same levels and spreads.
    for (const h of [one, two]) {
      const answer = await eventuallyValue(
        `GET /baseline?deviceID=${id} on ${h.url} ready`,
        () => getBaseline(h.url, `deviceID=${encodeURIComponent(id)}`),
        (a) => a.status === 200 && (a.body as PublishedBaseline).state === "ready",
      );
      const served = PublishedBaselineSchema.parse(answer.body);
      assert.deepEqual(
        [served.deviceID, served.state, served.readyAt, served.sensors],
        [id, "ready", ready.readyAt, ready.sensors],
      );
    }

    // Vibration beyond its fleet range now and then: a warning, which freezes the baseline.
    const spiky = predictions(id, LEARN + 10, LEARN + 30).map((p, k) =>
      k % 5 === 0 && p.reading ? { ...p, reading: { ...p.reading, vibration: 205 } } : p,
    );
    await send(one.url, spiky);
    const frozen = await eventuallyValue(
      `${id}'s baseline frozen in fan_baselines`,
      () => kvBaseline(id),
      (b) => b?.frozen === true,
    );
    assert.equal(frozen?.state, "ready");
    // Healthy readings while the warning stays open (its quiet period): the baseline does not move.
    await send(one.url, predictions(id, LEARN + 30, LEARN + 100));
    const held = await getBaseline(one.url, `deviceID=${encodeURIComponent(id)}`);
    assert.equal(held.status, 200, JSON.stringify(held.body));
    const heldBaseline = PublishedBaselineSchema.parse(held.body);
    assert.deepEqual(
      [heldBaseline.frozen, heldBaseline.updatedAt, heldBaseline.sensors],
      [true, frozen?.updatedAt, frozen?.sensors],
      "held as it was when it froze",
    );
  });

  it("GET /baseline answers 404 for a fan health has not seen, and 400 without a deviceID", async () => {
    await send(one.url, predictions("b2", 0, 5));
    const unknown = await getBaseline(one.url, "deviceID=nobody");
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal((unknown.body as { code: string }).code, "FANWATCH_HEALTH_NOT_FOUND");
    const missing = await getBaseline(one.url, "");
    assert.equal(missing.status, 400, JSON.stringify(missing.body));
    assert.equal((missing.body as { field: string }).field, "deviceID");
  });
});
