import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newHealthRecord, transitionFrom, type HealthEvent, type HealthRecord } from "../../lib/domain/health.js";
import { applyTransition } from "../../notifier/alertmanager/alerts.js";
import type { FanAlerts } from "../../notifier/alertmanager/model.js";

// A warning's eta interval, basis and drifting sensors in the FanWarning alert (docs/alertmanager.md).
const AT = "2026-01-01T00:00:00.000Z";
const OPTIONS = { now: Date.parse(AT) + 60_000, keepEndedMs: 600_000 };

const WARNING: HealthRecord = {
  ...newHealthRecord("7", AT),
  state: "warning",
  alarmId: "7@ep1",
  severity: "minor",
  cause: "vibration",
  probability: 0.41,
  eta: "2026-01-01T03:00:00.000Z",
  etaInterval: { from: "2026-01-01T02:00:00.000Z", to: "2026-01-01T05:00:00.000Z", coverage: 0.8 },
  basis: "baseline",
  sensors: ["vibration", "temperature"],
};

let seq = 0;
function notification(record: HealthRecord, event: HealthEvent, at = AT) {
  return {
    transition: transitionFrom(record, { event, at, id: `7:${Date.parse(at)}:${++seq}`, site: "hall-2" }),
    link: "http://page/ui/fans/7",
  };
}

function warningAlert(...notifications: Array<ReturnType<typeof notification>>) {
  let state: FanAlerts | undefined;
  for (const n of notifications) state = applyTransition(state, n, OPTIONS);
  const alert = state?.open.find((a) => a.labels.alertname === "FanWarning");
  assert.ok(alert, "a FanWarning is open");
  return alert;
}

describe("Alertmanager target: a warning's eta interval, basis and drifting sensors", () => {
  it("says when the alarm is expected (in hours and as times, with the coverage) and what drifts from the fan's own baseline", () => {
    const alert = warningAlert(notification(WARNING, "warning"));
    assert.equal(
      alert.annotations.summary,
      "Fan 7 warning: vibration, p=0.41, alarm expected in 2–5 h (between 2026-01-01 02:00 and 05:00 UTC, 80% interval); vibration and temperature drifting from the fan's own baseline",
    );
    assert.equal(alert.annotations.etaFrom, "2026-01-01T02:00:00.000Z");
    assert.equal(alert.annotations.etaTo, "2026-01-01T05:00:00.000Z");
    assert.equal(alert.annotations.etaCoverage, "0.8");
    assert.equal(alert.annotations.basis, "baseline");
    assert.equal(alert.annotations.sensors, "vibration,temperature");
  });

  it("keeps the interval out of the labels: a new interval refreshes the alert, it opens no other", () => {
    const later = {
      ...WARNING,
      etaInterval: { from: "2026-01-01T01:00:00.000Z", to: "2026-01-01T02:30:00.000Z", coverage: 0.8 },
    };
    const first = notification(WARNING, "warning");
    const alert = warningAlert(first, notification(later, "acknowledged", "2026-01-01T00:10:00.000Z"));
    assert.deepEqual(Object.keys(alert.labels).sort(), [
      "alarmId",
      "alertname",
      "cause",
      "deviceID",
      "severity",
      "site",
    ]);
    assert.match(alert.annotations.summary ?? "", /alarm expected in 1–2 h \(between 2026-01-01 01:00 and 02:30 UTC/);
  });

  it("says a fan without a baseline was judged against the fleet's ranges", () => {
    const alert = warningAlert(notification({ ...WARNING, basis: "fleet-range", sensors: ["vibration"] }, "warning"));
    assert.match(
      alert.annotations.summary ?? "",
      /80% interval\); vibration drifting; judged against the fleet's healthy ranges$/,
    );
    assert.equal(alert.annotations.basis, "fleet-range");
  });

  it("dates the interval's end when it falls on the next day, and counts minutes when it is near", () => {
    const overnight = {
      ...WARNING,
      etaInterval: { from: "2026-01-01T22:30:00.000Z", to: "2026-01-02T01:15:00.000Z", coverage: 0.8 },
    };
    assert.match(
      warningAlert(notification(overnight, "warning", "2026-01-01T21:00:00.000Z")).annotations.summary ?? "",
      /in 2–4 h \(between 2026-01-01 22:30 and 2026-01-02 01:15 UTC, 80% interval\)/,
    );
    const near = {
      ...WARNING,
      etaInterval: { from: "2026-01-01T00:20:00.000Z", to: "2026-01-01T01:15:00.000Z", coverage: 0.8 },
    };
    assert.match(warningAlert(notification(near, "warning")).annotations.summary ?? "", /in 20–75 min \(/);
  });

  it("reads as before for a warning without them (published before they existed) and for an alarm", () => {
    const { etaInterval: _i, basis: _b, sensors: _s, ...older } = WARNING;
    const alert = warningAlert(notification(older, "warning"));
    assert.equal(
      alert.annotations.summary,
      "Fan 7 warning: vibration, p=0.41, alarm expected by 2026-01-01T03:00:00.000Z",
    );
    for (const key of ["etaFrom", "etaTo", "etaCoverage", "basis", "sensors"])
      assert.equal(alert.annotations[key], undefined, key);
    const alarm = applyTransition(
      undefined,
      notification({ ...older, state: "alarm", severity: "major", eta: null, probability: 0.93 }, "alarm"),
      OPTIONS,
    ).open[0];
    assert.equal(alarm?.annotations.summary, "Fan 7 alarm: vibration, p=0.93");
  });
});
