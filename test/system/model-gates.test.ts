import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { newHealthRecord, transitionFrom } from "../../lib/domain/health.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { bundleArtifacts, bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { goldenReadings, makeGoldenSet } from "../../lib/models/golden.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import type { ModelBundle, ShadowComparison } from "../../lib/models/schemas.js";
import { ensureEvidenceStream, episodeEvidenceSubject, type EvidenceReading } from "../../lib/nats/evidence.js";
import type { JetStreamAccess } from "../../lib/models/gate-sources.js";
import { ensureHealthEventsStream, healthEventSubject } from "../../lib/nats/health-events.js";
import { siteGates } from "../../cli/model-gates.js";
import { startNats, type TestNats } from "../support/nats.js";
import { runCli } from "../support/process.js";
import { MODEL_DIR } from "../support/paths.js";

const SITE = "plant-a";
const DAY = 86_400_000;

/**
 * Readings a second apart. A sound of 52.5 dB is a fault the shipped model is sure of only to
 * 0.9999: faulty by its threshold (0.5), healthy by a threshold of 0.999999; 48 dB is a healthy fan's.
 */
function readings(n: number, sound: number, start: number): EvidenceReading[] {
  return Array.from({ length: n }, (_, i) => ({
    at: new Date(start + i * 1_000).toISOString(),
    rotation: 600,
    temperature: 40,
    vibration: 150,
    sound,
    probability: 0.5,
    fault: 1,
  }));
}

describe("promotion gates against a real nats-server: the registry's models, health's streams, predict's comparisons", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let access: JetStreamAccess;
  let registry: ModelRegistry;
  let active: string;
  /** The shipped model again as another version: the same answers. */
  let same: string;
  /** The shipped weights with a threshold just under 1: it calls almost nothing faulty. */
  let blind: string;

  async function finding(deviceID: string, alarmId: string, result: "confirmed" | "false-alarm", at: number) {
    const t = transitionFrom(newHealthRecord(deviceID, new Date(at).toISOString()), {
      event: "finding",
      at: new Date(at).toISOString(),
      id: `${alarmId}#finding-${at}`,
      site: SITE,
      alarmId,
      by: "ben",
      result,
    });
    await jetstream(nc).publish(healthEventSubject(SITE, deviceID), JSON.stringify(t));
  }

  async function evidence(deviceID: string, alarmId: string, kept: EvidenceReading[]) {
    const message = { deviceID, alarmId, part: "lead", readings: kept, total: kept.length };
    await jetstream(nc).publish(episodeEvidenceSubject(SITE, deviceID, alarmId), JSON.stringify(message));
  }

  async function blindVersion(shipped: ModelBundle, parent: string): Promise<ModelBundle> {
    const metadata = { ...shipped.metadata, threshold: 0.999999 };
    const model = await ScoringModel.fromArtifacts(bundleArtifacts({ ...shipped, metadata }, "blind"), "blind");
    try {
      return { ...shipped, parent, metadata, golden: makeGoldenSet(model, goldenReadings()) };
    } finally {
      model.dispose();
    }
  }

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    access = { js: jetstream(nc), jsm: await jetstreamManager(nc) };
    registry = await ModelRegistry.open(access.js);
    const shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
    active = (await registry.push(shipped, "test")).id;
    same = (await registry.push({ ...shipped, parent: active }, "test")).id;
    blind = (await registry.push(await blindVersion(shipped, active), "test")).id;
    assert.equal(active, bundleId(encodeBundle(shipped)));

    const jsm = await jetstreamManager(nc);
    await ensureHealthEventsStream(jsm, { maxAgeMs: 30 * DAY, replicas: 1 });
    await ensureEvidenceStream(jsm, { maxAgeMs: 30 * DAY, replicas: 1 });
    const now = Date.now();
    // Fan 7: a worn bearing, confirmed. Fan hot-1: alarmed for running hot, a false alarm.
    await evidence("7", "7@a", readings(30, 52.5, now - DAY));
    await finding("7", "7@a", "confirmed", now - DAY + 3_600_000);
    await evidence("hot-1", "hot-1@a", readings(30, 48, now - DAY));
    await finding("hot-1", "hot-1@a", "false-alarm", now - DAY + 3_600_000);

    const comparison = (shadow: string, closed: string[]): ShadowComparison => ({
      site: SITE,
      replica: "predict-1",
      active,
      shadow,
      since: new Date(now - DAY).toISOString(),
      at: new Date(now).toISOString(),
      readings: 5_000,
      agreed: 4_900,
      alarms: { active: 3, shadow: 3 - closed.length },
      fans: { opened: [], closed },
      cost: { cpuRatio: 1.2, latencyRatio: 1.1 },
    });
    await registry.putComparison(comparison(same, ["hot-1"]));
    await registry.putComparison(comparison(blind, ["hot-1", "7", "3"]));
  });

  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("passes a candidate that answers the golden sets as well, still alarms on the confirmed fault and closes only the false alarm's fan", async () => {
    const { gates, dispose } = siteGates(access, registry, {
      windowMs: 7 * DAY,
      maxAlarmChange: 0,
      minShadowReadings: 1_000,
      autoPromoteAfterMs: DAY,
    });
    try {
      const results = await gates({ site: SITE, active, candidate: same });
      assert.deepEqual(
        results.map((r) => [r.gate, r.passed, r.detail]),
        [
          ["golden-accuracy", true, results[0]?.detail],
          ["confirmed-faults", true, "1 of 1 confirmed-fault episodes of the last 7d still alarmed"],
          [
            "alarm-change",
            true,
            "0 fans without a finding would alarm differently ≤ 0 (MODEL_GATE_MAX_ALARM_CHANGE); alarms 3 → 2 over 5000 readings",
          ],
        ],
      );
      assert.match(results[0]?.detail ?? "", /^candidate (\d\.\d{3}) ≥ active \1 on 200 labelled readings/);
    } finally {
      dispose();
    }
  });

  it("fails a candidate that misses faults, naming each gate's numbers", async () => {
    const { gates, dispose } = siteGates(access, registry, {
      windowMs: 7 * DAY,
      maxAlarmChange: 0,
      minShadowReadings: 1_000,
      autoPromoteAfterMs: DAY,
    });
    try {
      const [golden, confirmed, change] = await gates({ site: SITE, active, candidate: blind });
      assert.equal(golden?.passed, false, golden?.detail);
      assert.match(golden?.detail ?? "", /^candidate \d\.\d{3} < active \d\.\d{3} on 200 labelled readings/);
      assert.equal(confirmed?.passed, false);
      assert.equal(
        confirmed?.detail,
        "0 of 1 confirmed-fault episodes of the last 7d still alarmed; missed: 7@a (30 readings, no alarm)",
      );
      assert.equal(change?.passed, false);
      assert.match(change?.detail ?? "", /^1 fans without a finding would alarm differently > 0 .*closed: 3;/);
    } finally {
      dispose();
    }
  });

  it("looks only at the window: findings older than MODEL_GATE_WINDOW are not counted", async () => {
    const { gates, dispose } = siteGates(access, registry, {
      windowMs: 60_000,
      maxAlarmChange: 0,
      minShadowReadings: 1_000,
      autoPromoteAfterMs: DAY,
    });
    try {
      const [, confirmed] = await gates({ site: SITE, active, candidate: blind });
      assert.deepEqual(confirmed, {
        gate: "confirmed-faults",
        passed: true,
        detail: "no confirmed-fault episode in the last 1m",
      });
    } finally {
      dispose();
    }
  });

  it("fanwatch model auto-promote: a shadow that failed a gate stays a shadow; one that passes every gate becomes the active model", async () => {
    const env = { MODEL_AUTO_PROMOTE_AFTER: "1h", MODEL_GATE_MAX_ALARM_CHANGE: "0" };
    const args = ["model", "auto-promote", "--nats", nats.url, "--site", SITE];
    const first = { previous: null, reason: "promote", by: "test", forced: false, note: null } as const;
    const revision = await registry.setPointer(
      SITE,
      { ...first, active, shadow: blind, at: new Date().toISOString() },
      0,
    );

    const refused = await runCli(args, env);
    assert.equal(refused.code, 0, refused.stderr);
    assert.match(refused.stdout, /FAILED {2}golden-accuracy: candidate/);
    assert.match(
      refused.stdout,
      new RegExp(`shadow ${blind} not promoted: it failed golden-accuracy, confirmed-faults, alarm-change`),
    );
    assert.equal((await registry.pointer(SITE))?.pointer.active, active);

    const shadowing = { ...first, active, shadow: same, at: new Date().toISOString(), reason: "shadow" } as const;
    await registry.setPointer(SITE, shadowing, revision);
    const promoted = await runCli([...args, "--json"], env);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.equal((JSON.parse(promoted.stdout) as { outcome: string }).outcome, "promoted");
    const pointer = (await registry.pointer(SITE))?.pointer;
    assert.equal(pointer?.active, same);
    assert.equal(pointer?.previous, active);
    assert.equal(pointer?.shadow, null);
    assert.equal(pointer?.reason, "auto-promote");
    assert.match(
      pointer?.note ?? "",
      /^golden-accuracy: candidate .*; confirmed-faults: 1 of 1 .*; alarm-change: 0 fans/,
    );

    const nothing = await runCli(args, env);
    assert.match(nothing.stdout, new RegExp(`site ${SITE} has no shadow model: nothing to promote`));
  });

  it("fanwatch model auto-promote waits for MODEL_AUTO_PROMOTE_AFTER, and says there is no registry without NATS_URL", async () => {
    const current = await registry.pointer(SITE);
    assert.ok(current);
    await registry.setPointer(SITE, { ...current.pointer, shadow: blind, reason: "shadow" }, current.revision);
    const early = await runCli(["model", "auto-promote", "--nats", nats.url, "--site", SITE], {
      MODEL_AUTO_PROMOTE_AFTER: "48h",
    });
    assert.equal(early.code, 0, early.stderr);
    assert.match(early.stdout, new RegExp(`shadow ${blind} of site ${SITE}: no comparison yet of the 2880 min`));
    const none = await runCli(["model", "auto-promote"], { NATS_URL: "" });
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /NATS_URL is not set/);
  });
});
