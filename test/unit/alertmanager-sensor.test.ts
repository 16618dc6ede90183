import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AlarmTransition, HealthEvent, SensorIssue } from "../../lib/domain/health.js";
import { alertsToSend, applyTransition } from "../../notifier/alertmanager/alerts.js";
import type { FanAlerts } from "../../notifier/alertmanager/model.js";

// A fan's sensor issue as the Alertmanager alert FanSensor (docs/notifier.md), on a fake clock.
const T0 = Date.UTC(2026, 11, 7, 8);
const iso = (ms: number) => new Date(ms).toISOString();
const OPTIONS = { now: T0 + 60_000, keepEndedMs: 600_000 };
const ISSUE: SensorIssue = { sensor: "temperature", cause: "stuck", value: 40.2, since: iso(T0) };

let seq = 0;
function tx(event: HealthEvent, at: number, fields: Partial<AlarmTransition> = {}) {
  const state = event === "alarm" || event === "cleared" || event === "silent" ? event : "ok";
  const t: AlarmTransition = {
    id: `7:${at}:${++seq}`,
    event,
    deviceID: "7",
    alarmId: event === "alarm" || event === "cleared" ? "7@ep1" : null,
    state,
    severity: state === "alarm" ? "major" : state === "silent" ? "minor" : "none",
    cause: state === "alarm" ? "vibration" : null,
    contributions: null,
    probability: 0.5,
    eta: null,
    since: iso(at),
    at: iso(at),
    acknowledged: false,
    site: "hall-2",
    ...fields,
  };
  return { transition: t, link: "http://page/ui/fans/7" };
}

function run(...notifications: Array<ReturnType<typeof tx>>): FanAlerts {
  let state: FanAlerts | undefined;
  for (const notification of notifications) state = applyTransition(state, notification, OPTIONS);
  assert.ok(state);
  return state;
}

const open = (state: FanAlerts) => state.open.map((a) => a.labels.alertname);

describe("Alertmanager target: a sensor issue is FanSensor", () => {
  it("opens FanSensor with the fan, severity warning, the sensor and why as its cause, and the site", () => {
    const state = run(tx("sensor", T0 + 1_000, { sensorIssue: ISSUE }));
    const [alert] = state.open;
    assert.deepEqual(alert?.labels, {
      alertname: "FanSensor",
      deviceID: "7",
      severity: "warning",
      cause: "temperature stuck",
      site: "hall-2",
      sensorSince: ISSUE.since,
    });
    assert.equal(alert?.startsAt, ISSUE.since);
    assert.equal(
      alert?.annotations.summary,
      `Fan 7 sensor temperature stuck at 40.2 since ${ISSUE.since}: check the sensor and its wiring, not the fan`,
    );
    const implausible = run(tx("sensor", T0, { sensorIssue: { ...ISSUE, sensor: "rotation", cause: "implausible" } }));
    assert.equal(implausible.open[0]?.labels.cause, "rotation implausible");
  });

  it("resolves it on sensor-cleared, with the same labels and an end", () => {
    const state = run(
      tx("sensor", T0 + 1_000, { sensorIssue: ISSUE }),
      tx("sensor-cleared", T0 + 30_000, { sensorIssue: ISSUE }),
    );
    assert.deepEqual(state.open, []);
    const [ended] = alertsToSend(state, OPTIONS.now, OPTIONS.keepEndedMs);
    assert.equal(ended?.labels.alertname, "FanSensor");
    assert.equal(ended?.labels.cause, "temperature stuck");
    assert.equal(ended?.endsAt, iso(T0 + 30_000));
  });

  it("lives beside the fan's own alerts: an alarm's clear and a silence leave it open, and it leaves them", () => {
    const state = run(
      tx("alarm", T0 + 1_000),
      tx("sensor", T0 + 2_000, { sensorIssue: ISSUE, alarmId: "7@ep1", state: "alarm", severity: "major" }),
      tx("silent", T0 + 3_000, { alarmId: "7@ep1" }),
      tx("cleared", T0 + 4_000),
    );
    assert.deepEqual(open(state), ["FanSensor"]);
    const cleared = run(
      tx("alarm", T0 + 1_000),
      tx("sensor", T0 + 2_000, { sensorIssue: ISSUE, alarmId: "7@ep1", state: "alarm", severity: "major" }),
      tx("sensor-cleared", T0 + 3_000, { sensorIssue: ISSUE, alarmId: "7@ep1", state: "alarm", severity: "major" }),
    );
    assert.deepEqual(open(cleared), ["FanAlarm"]);
  });

  it("opens a new occurrence for a new issue, and nothing twice for the same one delivered again", () => {
    const first = tx("sensor", T0 + 1_000, { sensorIssue: ISSUE });
    const again = run(first, first);
    assert.equal(again.open.length, 1);
    const next = { ...ISSUE, cause: "implausible" as const, since: iso(T0 + 50_000) };
    const state = run(
      first,
      tx("sensor-cleared", T0 + 10_000, { sensorIssue: ISSUE }),
      tx("sensor", T0 + 50_000, { sensorIssue: next }),
    );
    assert.deepEqual(
      state.open.map((a) => [a.labels.cause, a.labels.sensorSince]),
      [["temperature implausible", next.since]],
    );
  });
});
