import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AlarmTransition, HealthRecord } from "../../lib/domain/health.js";
import { FleetHealth } from "../../page/fleet-health.js";

const EPISODE = "7@2026-11-27T10:00:00.000Z";

const alarm: HealthRecord = {
  deviceID: "7",
  state: "alarm",
  alarmId: EPISODE,
  severity: "major",
  since: "2026-11-27T10:00:00.000Z",
  cause: "vibration",
  contributions: null,
  probability: 0.93,
  eta: null,
  lastSeen: "2026-11-27T10:05:00.000Z",
  acknowledged: true,
  acknowledgedBy: "ann",
  note: null,
  shelvedUntil: null,
  shelvedBy: null,
  maintenance: null,
  assignedTo: null,
  finding: null,
};

let seq = 0;
function transition(event: AlarmTransition["event"], fields: Partial<AlarmTransition> = {}): AlarmTransition {
  const { deviceID, alarmId, state, severity, cause, contributions, probability, eta, since, acknowledged } = alarm;
  return {
    ...{ deviceID, alarmId, state, severity, cause, contributions, probability, eta, since, acknowledged },
    id: `7:${++seq}`,
    event,
    at: `2026-11-27T11:00:0${seq % 10}.000Z`,
    site: "local",
    ...fields,
  };
}

describe("the page's fleet health: notes on an episode", () => {
  it("takes the assignee and the finding of the record's episode from their transitions, and a note on an older one into the feed only", () => {
    const fleet = new FleetHealth(10, () => 0);
    fleet.replace([alarm], 0);
    assert.ok(fleet.transition(transition("assigned", { to: "bo", by: "ann" })));
    assert.ok(fleet.transition(transition("commented", { note: "rattles", by: "ann" })));
    const found = transition("finding", { result: "confirmed", part: "bearing", sensor: "vibration", by: "bo" });
    assert.ok(fleet.transition(found));
    const old = transition("finding", { alarmId: "7@2026-11-01T00:00:00.000Z", result: "false-alarm", by: "cy" });
    assert.ok(fleet.transition(old));
    const record = fleet.get("7");
    assert.deepEqual(
      [record?.state, record?.alarmId, record?.acknowledgedBy, record?.assignedTo, record?.finding],
      [
        "alarm",
        EPISODE,
        "ann",
        "bo",
        { result: "confirmed", part: "bearing", sensor: "vibration", note: null, by: "bo", at: found.at },
      ],
    );
    assert.deepEqual(
      fleet.snapshot().feed.map((t) => t.event),
      ["finding", "finding", "commented", "assigned"],
    );
  });

  it("keeps the assignee and the finding through the clear, and drops them when a new episode opens", () => {
    const fleet = new FleetHealth(10, () => 0);
    fleet.replace([{ ...alarm, assignedTo: "bo" }], 0);
    fleet.transition(transition("cleared", { state: "cleared", severity: "none" }));
    fleet.transition(transition("ok", { state: "ok", alarmId: null, severity: "none", acknowledged: false }));
    assert.equal(fleet.get("7")?.assignedTo, "bo");
    fleet.transition(transition("alarm", { alarmId: "7@2026-11-28T00:00:00.000Z", acknowledged: false }));
    assert.deepEqual([fleet.get("7")?.assignedTo, fleet.get("7")?.finding], [null, null]);
  });

  it("keeps a warning's eta interval, basis and drifting sensors through an acknowledgement, and forgets them when it clears", () => {
    const fleet = new FleetHealth(10, () => 0);
    const interval = { from: "2026-11-27T12:00:00.000Z", to: "2026-11-27T15:00:00.000Z", coverage: 0.8 };
    const warning = { state: "warning", severity: "minor", acknowledged: false } as const;
    fleet.transition(
      transition("warning", { ...warning, etaInterval: interval, basis: "fleet-range", sensors: ["vibration"] }),
    );
    // Health's acknowledgement carries the record's fields (transitionFrom).
    fleet.transition(
      transition("acknowledged", {
        ...warning,
        acknowledged: true,
        etaInterval: interval,
        basis: "fleet-range",
        sensors: ["vibration"],
        by: "ann",
      }),
    );
    const kept = fleet.get("7");
    assert.deepEqual([kept?.etaInterval, kept?.basis, kept?.sensors], [interval, "fleet-range", ["vibration"]]);
    fleet.transition(transition("cleared", { state: "cleared", severity: "none" }));
    const cleared = fleet.get("7");
    assert.deepEqual([cleared?.etaInterval, cleared?.basis, cleared?.sensors], [null, null, null]);
  });

  it("keeps the model that moved the fan from its transitions, through a note, and none from a health that names none", () => {
    const fleet = new FleetHealth(10, () => 0);
    fleet.transition(transition("alarm", { model: "fan-aaaaaaaaaaaaaaaa" }));
    assert.equal(fleet.get("7")?.model, "fan-aaaaaaaaaaaaaaaa");
    fleet.transition(transition("commented", { by: "ann", note: "on it" }));
    assert.equal(fleet.get("7")?.model, "fan-aaaaaaaaaaaaaaaa", "a note changes no model");
    fleet.transition(transition("cleared", { state: "cleared", severity: "none", model: "fan-bbbbbbbbbbbbbbbb" }));
    assert.equal(fleet.get("7")?.model, "fan-bbbbbbbbbbbbbbbb");
    fleet.transition(transition("ok", { state: "ok", alarmId: null, severity: "none" }));
    assert.equal(fleet.get("7")?.model, null);
  });
});
