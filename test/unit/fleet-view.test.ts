import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import {
  transitionFrom,
  type AlarmTransition,
  type HealthEvent,
  type HealthRecord,
  type HealthState,
} from "../../lib/domain/health.js";
import { FleetHealth } from "../../page/fleet-health.js";
import { FleetView } from "../../page/fleet-view.js";
import { pollReplicas, replicasLine } from "../../page/function-replicas.js";

const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter", alarm: "fan/alarm" };

function reading(deviceID: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      deviceID,
      timeStamp: "2026-11-27 10:00:00",
      rotation: 612.3,
      temperature: 40.1,
      vibration: 151.7,
      sound: 48.9,
    }),
  );
}

function prediction(deviceID: string, fault: 0 | 1): Buffer {
  return Buffer.from(
    JSON.stringify({ deviceID, timeStamp: "2026-11-27 10:00:00", probability: fault === 1 ? 0.9 : 0.1, fault }),
  );
}

/** A view on a clock the test moves; the 12 fans of `fanwatch start` have sent two readings each. */
function viewWithFleet(options: { maxFans?: number; forgetAfterMs?: number } = {}) {
  const clock = { now: 0 };
  const view = new FleetView(TOPICS, { ...options, now: () => clock.now, readingsFrom: "telemetry-for-tests" });
  const real = Array.from({ length: 12 }, (_, i) => String(i + 1));
  for (let round = 0; round < 2; round++) for (const id of real) view.receive(TOPICS.telemetry, reading(id));
  for (const id of real) view.receive(TOPICS.anomaly, prediction(id, id === "1" ? 1 : 0));
  return { view, clock, real };
}

const ids = (view: FleetView) => view.snapshot().fans.map((f) => f.deviceID);

describe("the fleet view's memory", () => {
  it("keeps the 12 real fans on the page through 100,000 forged device ids, and never more fans than its cap", () => {
    const { view, real } = viewWithFleet({ maxFans: 1_000 });
    for (let i = 0; i < 100_000; i++) {
      view.receive(TOPICS.telemetry, reading(`forged-${i}`));
      view.receive(TOPICS.anomaly, prediction(`forged-${i}`, 1));
    }
    const snapshot = view.snapshot();
    assert.deepEqual(ids(view), real);
    assert.equal(snapshot.totals.fans, 12);
    assert.equal(snapshot.totals.readings, 24 + 100_000);
    assert.equal(snapshot.totals.predictions, 12 + 100_000);
    // Forged ids' predictions are counted, not listed: the feed shows health transitions only.
    assert.deepEqual(snapshot.feed, []);
    // Sent again in the same order, none is still a candidate when its second reading comes.
    for (let i = 98_000; i < 100_000; i++) view.receive(TOPICS.telemetry, reading(`forged-${i}`));
    assert.equal(view.snapshot().totals.fans, 12);
    // Forged ids that send two readings in a row become fans until the cap, and no further.
    for (let i = 0; i < 2_000; i++) for (let n = 0; n < 2; n++) view.receive(TOPICS.telemetry, reading(`twice-${i}`));
    assert.equal(view.snapshot().totals.fans, 1_000);
    for (const id of real) assert.ok(ids(view).includes(id), `fan ${id} is still on the page`);
    // What the other ids left behind is a capped list of candidates, not 100,000 entries.
    assert.equal(view.candidates, 1_000);
  });

  it("forgets a fan silent for longer than forgetAfterMs, and a newcomer takes its place on a full page", () => {
    const { view, clock, real } = viewWithFleet({ maxFans: 12, forgetAfterMs: 60_000 });
    // Full: a new fan waits, however often it reports.
    for (let i = 0; i < 5; i++) view.receive(TOPICS.telemetry, reading("13"));
    assert.equal(ids(view).includes("13"), false);
    // Fan 12 falls silent; the others and the newcomer go on reporting.
    for (let t = 1; t <= 7; t++) {
      clock.now = t * 10_000;
      for (const id of [...real.slice(0, 11), "13"]) view.receive(TOPICS.telemetry, reading(id));
      view.summary();
    }
    assert.deepEqual(ids(view), [...real.slice(0, 11)]);
    clock.now += 1_000;
    view.receive(TOPICS.telemetry, reading("13"));
    assert.deepEqual(ids(view), [...real.slice(0, 11), "13"]);
    assert.equal(view.snapshot().fans.find((f) => f.deviceID === "13")?.readings, 1);
  });

  it("counts bad input without tracking it", () => {
    const { view } = viewWithFleet();
    view.receive(TOPICS.telemetry, Buffer.from("not json"));
    view.receive(TOPICS.telemetry, Buffer.from('{"__proto__":{"x":1},"deviceID":"7"}'));
    view.receive(TOPICS.anomaly, Buffer.from("{}"));
    view.receive(TOPICS.deadletter, Buffer.from(JSON.stringify({ error: "x".repeat(1000) })));
    const snapshot = view.snapshot();
    assert.equal(snapshot.totals.fans, 12);
    assert.equal(snapshot.totals.readings, 26);
    assert.equal(snapshot.totals.deadLetters, 1);
    assert.equal(snapshot.deadLetters[0]?.error.length, 200);
  });
});

function record(deviceID: string, state: HealthState, extra: Partial<HealthRecord> = {}): HealthRecord {
  const open = state === "alarm" || state === "warning";
  return {
    deviceID,
    state,
    alarmId: open ? `${deviceID}-a1` : null,
    severity: state === "alarm" ? "major" : state === "warning" ? "minor" : "none",
    since: "2026-11-27T10:00:00.000Z",
    cause: open ? "vibration" : null,
    contributions: open ? { rotation: 0.01, temperature: 0.02, vibration: 0.6, sound: 0.03 } : null,
    probability: state === "alarm" ? 0.92 : state === "warning" ? 0.3 : 0.05,
    eta: state === "warning" ? "2026-11-27T10:20:00.000Z" : null,
    lastSeen: "2026-11-27T10:05:00.000Z",
    acknowledged: false,
    acknowledgedBy: null,
    note: null,
    shelvedUntil: null,
    shelvedBy: null,
    maintenance: null,
    assignedTo: null,
    finding: null,
    ...extra,
  };
}

function transition(r: HealthRecord, event: HealthEvent, at: string, extra: Partial<AlarmTransition> = {}): Buffer {
  const t: AlarmTransition = {
    ...transitionFrom(r, { event, at, id: `${r.alarmId ?? r.deviceID}-${event}-${at}` }),
    ...extra,
  };
  return Buffer.from(JSON.stringify(t));
}

/**
 * A stand-in for the health function's `GET /function/health` (the real one is tested in
 * health-function.test.ts and, through the page, in web-page.test.ts): it answers what `fans` holds.
 */
async function healthStandIn(
  fans: () => HealthRecord[],
): Promise<{ url: string; requests: () => number; close: () => void }> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    if (req.url !== "/function/health") return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ fans: fans(), counts: {} }));
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/function/health`,
    requests: () => requests,
    close: () => server.close(),
  };
}

describe("the fleet view's fan health", () => {
  it("shows each fan's state, cause and ETA from the alarm topic, lists open alarms unacknowledged first, and feeds transitions, not predictions", () => {
    const { view } = viewWithFleet();
    const warning = record("3", "warning");
    const alarm = record("1", "alarm");
    const acknowledged = record("2", "alarm", {
      since: "2026-11-27T09:00:00.000Z",
      acknowledged: true,
      acknowledgedBy: "ann",
      note: "on it",
    });
    view.receive(TOPICS.alarm, transition(warning, "warning", "2026-11-27T10:00:00.000Z"));
    view.receive(
      TOPICS.alarm,
      transition(record("2", "alarm", { since: "2026-11-27T09:00:00.000Z" }), "alarm", "2026-11-27T10:00:01.000Z"),
    );
    view.receive(TOPICS.alarm, transition(alarm, "alarm", "2026-11-27T10:00:02.000Z"));
    view.receive(
      TOPICS.alarm,
      transition(acknowledged, "acknowledged", "2026-11-27T10:00:03.000Z", { by: "ann", note: "on it" }),
    );
    view.receive(TOPICS.alarm, transition(record("4", "ok"), "ok", "2026-11-27T10:00:04.000Z"));
    // Faulty predictions are not transitions: the feed does not grow with them.
    for (let i = 0; i < 50; i++) view.receive(TOPICS.anomaly, prediction("1", 1));

    const snapshot = view.snapshot();
    const fan = (id: string) => snapshot.fans.find((f) => f.deviceID === id);
    assert.equal(fan("3")?.state, "warning");
    assert.equal(fan("3")?.health?.cause, "vibration");
    assert.equal(fan("3")?.health?.eta, "2026-11-27T10:20:00.000Z");
    assert.equal(fan("1")?.state, "alarm");
    assert.equal(fan("2")?.health?.acknowledged, true);
    assert.equal(fan("4")?.state, "ok");
    assert.equal(fan("5")?.state, "unknown", "no record yet");
    assert.equal(fan("5")?.health, null);
    // Unacknowledged first (the alarm before the warning), the acknowledged alarm last.
    assert.deepEqual(
      snapshot.alarms.map((a) => [a.deviceID, a.state, a.acknowledged]),
      [
        ["1", "alarm", false],
        ["3", "warning", false],
        ["2", "alarm", true],
      ],
    );
    assert.deepEqual([snapshot.alarms[2]?.acknowledgedBy, snapshot.alarms[2]?.note], ["ann", "on it"]);
    assert.deepEqual(
      snapshot.feed.map((t) => [t.deviceID, t.event]),
      [
        ["4", "ok"],
        ["2", "acknowledged"],
        ["1", "alarm"],
        ["2", "alarm"],
        ["3", "warning"],
      ],
    );
    assert.deepEqual(snapshot.totals.states, { ok: 1, warning: 1, alarm: 2, cleared: 0, silent: 0 });
    assert.equal(snapshot.totals.openAlarms, 3);
    assert.equal(snapshot.totals.unacknowledged, 2);
    assert.deepEqual(view.summary().totals.states, snapshot.totals.states);
  });

  it("ignores what is not a transition on the alarm topic, and keeps at most 30 transitions and as many records as fans", () => {
    const { view } = viewWithFleet({ maxFans: 20 });
    view.receive(TOPICS.alarm, Buffer.from("not json"));
    view.receive(TOPICS.alarm, Buffer.from(JSON.stringify({ deviceID: "1", state: "alarm" })));
    view.receive(TOPICS.alarm, Buffer.from('{"__proto__":{"state":"alarm"}}'));
    assert.deepEqual(view.snapshot().feed, []);
    for (let i = 0; i < 1_000; i++)
      view.receive(TOPICS.alarm, transition(record(`forged-${i}`, "alarm"), "alarm", "2026-11-27T10:00:00.000Z"));
    const snapshot = view.snapshot();
    assert.equal(snapshot.feed.length, 30);
    assert.equal(snapshot.totals.openAlarms, 20, "records capped like the fans");
    assert.equal(snapshot.fans.length, 12);
  });

  it("reads every fan's record from the health function at start and again later, so a transition it missed is put right", async () => {
    let fans = [record("1", "alarm"), record("2", "ok")];
    const standIn = await healthStandIn(() => fans);
    const { view } = viewWithFleet();
    try {
      await view.readHealthFrom(standIn.url, { intervalMs: 3_600_000 });
      let snapshot = view.snapshot();
      assert.equal(snapshot.healthError, null);
      assert.deepEqual(
        snapshot.alarms.map((a) => a.deviceID),
        ["1"],
      );
      assert.equal(snapshot.fans.find((f) => f.deviceID === "1")?.state, "alarm");
      // Fan 1 was acknowledged and fan 2 went into warning while the view was not listening; a
      // record that is not one is skipped, the others kept.
      fans = [
        record("1", "alarm", { acknowledged: true, acknowledgedBy: "bob", note: null }),
        { deviceID: "broken", state: "panic" } as unknown as HealthRecord,
        record("2", "warning"),
      ];
      await view.readHealthFrom(standIn.url, { intervalMs: 3_600_000 });
      snapshot = view.snapshot();
      assert.deepEqual(
        snapshot.alarms.map((a) => [a.deviceID, a.acknowledged]),
        [
          ["2", false],
          ["1", true],
        ],
      );
      assert.deepEqual(snapshot.totals.states, { ok: 0, warning: 1, alarm: 1, cleared: 0, silent: 0 });
      assert.equal(standIn.requests(), 2);
    } finally {
      view.stop();
      standIn.close();
    }
  });

  it("says why the records cannot be read, and keeps what it has", async () => {
    const standIn = await healthStandIn(() => [record("1", "alarm")]);
    const { view } = viewWithFleet();
    try {
      await view.readHealthFrom(standIn.url, { intervalMs: 3_600_000 });
      await view.readHealthFrom(standIn.url.replace("/function/health", "/function/nope"), { intervalMs: 3_600_000 });
      const snapshot = view.snapshot();
      assert.match(snapshot.healthError ?? "", /answered 404 \(no health function in the stack\?\)/);
      assert.deepEqual(
        snapshot.alarms.map((a) => a.deviceID),
        ["1"],
      );
    } finally {
      view.stop();
      standIn.close();
    }
  });

  it("keeps a transition that arrives while a read is under way rather than the read's older record", () => {
    const clock = { now: 1_000 };
    const health = new FleetHealth(10, () => clock.now);
    const startedAt = clock.now;
    clock.now = 1_500;
    health.transition(
      JSON.parse(
        transition(record("1", "alarm", { acknowledged: true }), "acknowledged", "2026-11-27T10:00:03.000Z", {
          by: "ann",
        }).toString(),
      ),
    );
    health.replace([record("1", "alarm"), record("2", "ok")], startedAt);
    assert.equal(health.get("1")?.acknowledged, true);
    assert.equal(health.get("2")?.state, "ok");
    // The next read, begun after the transition, is the truth again.
    health.replace([record("1", "cleared")], 2_000);
    assert.equal(health.get("1")?.state, "cleared");
    assert.equal(health.get("2"), undefined);
  });
});

/**
 * A stand-in for the gateway's `GET /system/functions` with basic auth (the real gateway's answer
 * is read in start.test.ts and web-page.test.ts): it answers what `body` returns.
 */
async function functionsStandIn(body: () => string): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    if (req.headers.authorization !== "Basic YWRtaW46cw==") return void res.writeHead(401).end();
    res.writeHead(200, { "content-type": "application/json" }).end(body());
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/system/functions`,
    close: () => server.close(),
  };
}

describe("the fleet view's replicas", () => {
  const auth = { authorization: "Basic YWRtaW46cw==" };

  it("reads each function's replicas from /system/functions with the gateway's credentials, in the gateway's order", async () => {
    const standIn = await functionsStandIn(() =>
      JSON.stringify([
        { name: "score", image: "fanwatch/score", replicas: 1, availableReplicas: 1, labels: {} },
        { name: "predict", replicas: 3, availableReplicas: 2 },
      ]),
    );
    const { view } = viewWithFleet();
    try {
      assert.deepEqual(view.summary().functions, { replicas: [], error: null });
      await view.readReplicasFrom(standIn.url, { intervalMs: 3_600_000, headers: auth });
      assert.deepEqual(view.snapshot().functions, {
        replicas: [
          { name: "score", replicas: 1, availableReplicas: 1 },
          { name: "predict", replicas: 3, availableReplicas: 2 },
        ],
        error: null,
      });
      assert.equal(replicasLine(view.summary().functions.replicas), "score 1, predict 2/3");
    } finally {
      view.stop();
      standIn.close();
    }
  });

  it("says why the replicas cannot be read (no credentials, not a function list) and keeps the last ones", async () => {
    let body = JSON.stringify([{ name: "predict", replicas: 2, availableReplicas: 2 }]);
    const standIn = await functionsStandIn(() => body);
    const { view } = viewWithFleet();
    const poll = pollReplicas(standIn.url, { intervalMs: 3_600_000, headers: auth });
    try {
      await view.readReplicasFrom(standIn.url, { intervalMs: 3_600_000 });
      assert.match(view.summary().functions.error ?? "", /answered 401/);
      await poll.read();
      body = JSON.stringify([{ name: "predict", replicas: "two" }]);
      await poll.read();
      assert.match(poll.current().error ?? "", /not a function list \(0\.replicas: /);
      assert.deepEqual(poll.current().functions, [{ name: "predict", replicas: 2, availableReplicas: 2 }]);
    } finally {
      poll.stop();
      view.stop();
      standIn.close();
    }
  });
});

describe("the fleet view's warnings: eta interval, basis and drifting sensors", () => {
  const drifting: Partial<HealthRecord> = {
    etaInterval: { from: "2026-11-27T12:00:00.000Z", to: "2026-11-27T15:00:00.000Z", coverage: 0.8 },
    basis: "baseline",
    sensors: ["vibration", "temperature"],
  };

  it("carries them from a warning's transition to the fan's health and the alarm list, and drops them when an alarm follows", () => {
    const { view } = viewWithFleet();
    const warning = record("3", "warning", drifting);
    view.receive(TOPICS.alarm, transition(warning, "warning", "2026-11-27T10:00:00.000Z"));
    const fan = () => view.snapshot().fans.find((f) => f.deviceID === "3");
    assert.deepEqual(fan()?.health?.etaInterval, drifting.etaInterval);
    assert.equal(fan()?.health?.basis, "baseline");
    assert.deepEqual(fan()?.health?.sensors, ["vibration", "temperature"]);
    const listed = view.snapshot().alarms.find((a) => a.deviceID === "3");
    assert.deepEqual(
      [listed?.etaInterval, listed?.basis, listed?.sensors],
      [drifting.etaInterval, "baseline", ["vibration", "temperature"]],
    );

    view.receive(TOPICS.alarm, transition(record("3", "alarm"), "alarm", "2026-11-27T10:05:00.000Z"));
    assert.deepEqual([fan()?.health?.etaInterval, fan()?.health?.basis, fan()?.health?.sensors], [null, null, null]);
  });

  it("shows none for a record from a health function that has no such fields yet", () => {
    const { view } = viewWithFleet();
    view.receive(TOPICS.alarm, transition(record("3", "warning"), "warning", "2026-11-27T10:00:00.000Z"));
    const health = view.snapshot().fans.find((f) => f.deviceID === "3")?.health;
    assert.equal(health?.eta, "2026-11-27T10:20:00.000Z");
    assert.deepEqual([health?.etaInterval, health?.basis, health?.sensors], [null, null, null]);
  });
});
