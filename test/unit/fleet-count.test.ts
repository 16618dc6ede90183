import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { transitionFrom, type HealthRecord, type HealthState } from "../../lib/domain/health.js";
import { RegistryCache } from "../../lib/registry/cache.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { countFleet, fansLine } from "../../page/fleet-count.js";
import { FleetHealth } from "../../page/fleet-health.js";
import { FleetView } from "../../page/fleet-view.js";

const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter", alarm: "fan/alarm" };

function record(deviceID: string, state: HealthState, acknowledged = false): HealthRecord {
  const open = state === "alarm" || state === "warning";
  return {
    deviceID,
    state,
    alarmId: open ? `${deviceID}-a1` : null,
    severity: state === "alarm" ? "major" : state === "warning" ? "minor" : "none",
    since: "2026-12-07T10:00:00.000Z",
    cause: open ? "vibration" : null,
    contributions: null,
    probability: open ? 0.9 : 0.05,
    eta: null,
    lastSeen: "2026-12-07T10:05:00.000Z",
    acknowledged,
    acknowledgedBy: acknowledged ? "ana" : null,
    note: null,
    shelvedUntil: null,
    shelvedBy: null,
    maintenance: null,
    assignedTo: null,
    finding: null,
  };
}

/** The issue's fleet: 12 registered fans, one of them never reported, one retired, two pending, and forged ids in health. */
async function issueFleet(): Promise<{ registry: MemoryFanRegistry; cache: RegistryCache; records: HealthRecord[] }> {
  const registry = new MemoryFanRegistry();
  const cache = new RegistryCache(registry);
  await cache.start();
  for (let i = 1; i <= 13; i++) await registry.add(String(i), {}, "test");
  await registry.retire("13", "test");
  assert.equal(await registry.markPending("p1", 10), "pending");
  assert.equal(await registry.markPending("p2", 10), "pending");
  const states: HealthState[] = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "alarm", "alarm", "silent"];
  const records = states.map((state, i) => record(String(i + 1), state, i === 8));
  // Fan 12 has no record; the retired fan, a pending fan and a forged id have records that must not count.
  records.push(record("13", "silent"), record("p1", "alarm"), record("ghost-9", "alarm"));
  return { registry, cache, records };
}

describe("counting the fleet from the registry", () => {
  it("counts the active fans; every state plus the unreported adds up to them, pending beside", async () => {
    const { cache, records } = await issueFleet();
    const count = countFleet(records, cache, 99);
    assert.equal(count.source, "registry");
    assert.equal(count.fans, 12);
    assert.deepEqual(count.states, { ok: 8, warning: 0, alarm: 2, cleared: 0, silent: 1 });
    assert.equal(count.unreported, 1);
    assert.equal(count.pending, 2);
    assert.equal(count.retired, 1);
    assert.equal(count.unacknowledged, 1, "the forged and the pending fan's alarms are not anyone's to acknowledge");
    const sum = Object.values(count.states).reduce((a, b) => a + b, 0) + count.unreported;
    assert.equal(sum, count.fans);
    assert.equal(
      fansLine(count),
      "12 fans: 8 ok, 0 warning, 2 alarm, 0 cleared, 1 silent, 1 not reported; 2 pending · 1 unacknowledged",
    );
  });

  it("retiring a fan takes it out of the counts; approving a pending one brings it in", async () => {
    const { registry, cache, records } = await issueFleet();
    await registry.retire("11", "test"); // the silent one
    await registry.approve("p1", "test"); // in alarm
    const count = countFleet(records, cache, 0);
    assert.equal(count.fans, 12);
    assert.deepEqual(count.states, { ok: 8, warning: 0, alarm: 3, cleared: 0, silent: 0 });
    assert.equal(count.pending, 1);
    assert.equal(
      fansLine(count),
      "12 fans: 8 ok, 0 warning, 3 alarm, 0 cleared, 0 silent, 1 not reported; 1 pending · 2 unacknowledged",
    );
  });

  it("without a registry counts as before and says so", async () => {
    const { records } = await issueFleet();
    const count = countFleet(records, undefined, 12);
    assert.equal(count.source, "seen");
    assert.equal(count.fans, 12);
    assert.deepEqual(count.states, { ok: 8, warning: 0, alarm: 4, cleared: 0, silent: 2 });
    assert.equal(
      fansLine(count),
      "12 fans seen (no registry): 8 ok, 0 warning, 4 alarm, 0 cleared, 2 silent · 3 unacknowledged",
    );
  });

  it("while the page's registry cannot be read yet counts as seen and says it is coming", async () => {
    const { records } = await issueFleet();
    const view = new FleetView(TOPICS, { readingsFrom: "predictions" });
    view.awaitRegistry();
    assert.equal(view.snapshot().totals.source, "awaiting-registry");
    const count = countFleet(records, undefined, 12, true);
    assert.equal(
      fansLine(count),
      "12 fans seen (no registry yet): 8 ok, 0 warning, 4 alarm, 0 cleared, 2 silent · 3 unacknowledged",
    );
  });
});

describe("the fleet view with a registry", () => {
  const reading = { rotation: 612.3, temperature: 40.1, vibration: 151.7, sound: 48.9 };
  const send = (view: FleetView, topic: string, message: unknown) =>
    view.receive(topic, Buffer.from(JSON.stringify(message)));

  it("takes readings from predictions, skips sensor notices, shows only registered fans, counts refusals by code", async () => {
    const { cache } = await issueFleet();
    const view = new FleetView(TOPICS, { readingsFrom: "predictions" });
    view.useRegistry(cache);
    // The telemetry topic is not a source: a forged fan publishing there never appears.
    for (let n = 0; n < 3; n++) send(view, TOPICS.telemetry, { deviceID: "ghost-1", ...reading });
    for (let n = 0; n < 3; n++)
      for (const deviceID of ["1", "p1", "13", "ghost-2"])
        send(view, TOPICS.anomaly, { deviceID, fault: 0, probability: 0.1, reading });
    send(view, TOPICS.anomaly, {
      deviceID: "1",
      implausible: { sensor: "rotation", value: 25_000, code: "FANWATCH_READING_IMPLAUSIBLE" },
    });
    send(view, TOPICS.deadletter, { error: "fan x is unknown", code: "FANWATCH_DEVICE_UNKNOWN" });
    send(view, TOPICS.deadletter, { error: "too many pending", code: "FANWATCH_REGISTRY_FULL" });
    send(view, TOPICS.deadletter, { error: "not a reading" });
    const snapshot = view.snapshot();
    assert.deepEqual(
      snapshot.fans.map((f) => [f.deviceID, f.registration, f.readings]),
      [
        ["1", "active", 2],
        ["p1", "pending", 2],
      ],
      "the first prediction makes a candidate, the second a fan; retired and forged ids get no tile",
    );
    assert.deepEqual(snapshot.fans[0]?.history.rotation, [612.3, 612.3]);
    assert.equal(snapshot.totals.predictions, 12, "the sensor notice is no prediction");
    assert.equal(snapshot.totals.readings, 12);
    assert.equal(snapshot.totals.sensorNotices, 1);
    assert.equal(snapshot.totals.deadLetters, 3);
    assert.equal(snapshot.totals.refused.FANWATCH_DEVICE_UNKNOWN, 1);
    assert.equal(snapshot.totals.refused.FANWATCH_REGISTRY_FULL, 1);
    assert.equal(snapshot.totals.refused.FANWATCH_IDENTITY_MISMATCH, 0);
    assert.equal(snapshot.totals.fans, 12);
    assert.equal(snapshot.totals.pending, 2);
  });
});

describe("a fan's sensor issue", () => {
  it("is read from health's record, tolerated when absent, opened and cleared by health's sensor transitions", () => {
    const health = new FleetHealth(10, () => 0);
    const issue = {
      sensor: "rotation" as const,
      cause: "stuck" as const,
      since: "2026-12-07T18:02:00.000Z",
      value: 612,
    };
    health.replace([{ ...record("1", "ok"), sensorIssue: issue }, record("2", "alarm")], 0);
    assert.deepEqual(health.sensorIssue("1"), issue);
    assert.equal(health.sensorIssue("2"), null, "a record without the field (an older health) has none");
    // A sensor issue opens on fan 2 beside its alarm, which stays; fan 1's clears.
    const opened = transitionFrom(record("2", "alarm"), {
      event: "sensor",
      at: "2026-12-07T18:05:00.000Z",
      id: "t-1",
      sensorIssue: { ...issue, sensor: "vibration", cause: "implausible" },
    });
    assert.equal(health.transition(JSON.parse(JSON.stringify(opened))), true);
    assert.equal(health.sensorIssue("2")?.sensor, "vibration");
    assert.equal(health.get("2")?.state, "alarm", "a sensor issue is not a fan fault: the fan's state stays");
    const cleared = transitionFrom(record("1", "ok"), {
      event: "sensor-cleared",
      at: "2026-12-07T18:06:00.000Z",
      id: "t-2",
      sensorIssue: issue,
    });
    health.transition(JSON.parse(JSON.stringify(cleared)));
    assert.equal(health.sensorIssue("1"), null);
    assert.equal(health.get("1")?.state, "ok");
  });
});
