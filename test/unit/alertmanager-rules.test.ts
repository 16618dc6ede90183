import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { AlarmTransition, HealthEvent } from "../../lib/domain/health.js";
import { alertsToSend, applyTransition, transitionOrder } from "../../notifier/alertmanager/alerts.js";
import {
  EMAIL_SUBJECT,
  GROUP_BY,
  INHIBIT_RULES,
  localAlertmanagerConfig,
  PAGING_MATCHER,
  PAGING_REPEAT_INTERVAL,
  ROUTE_TIMING,
} from "../../notifier/alertmanager/config.js";
import type { FanAlerts } from "../../notifier/alertmanager/model.js";
import { keyOf, planSilences, silenceKey, type ExistingSilence } from "../../notifier/alertmanager/silences.js";
import { REPO_ROOT } from "../support/paths.js";

// The rules from transitions to alerts and silences, on a fake clock (docs/alertmanager.md).
const T0 = Date.UTC(2026, 11, 1, 8);
const iso = (ms: number) => new Date(ms).toISOString();
const OPTIONS = { now: T0, keepEndedMs: 60_000 };

let n = 0;
/** A transition of fan 7 as health makes it: its id `<deviceID>:<at ms>:<per-fan sequence>`, the sequence rising. */
function tx(event: HealthEvent, fields: Partial<AlarmTransition> & { seq?: number } = {}) {
  const state = (["ok", "warning", "alarm", "cleared", "silent"] as const).find((s) => s === event) ?? "alarm";
  const { seq = ++n, ...rest } = fields;
  const at = rest.at ?? iso(T0);
  const t: AlarmTransition = {
    id: `7:${Date.parse(at)}:${seq}`,
    event,
    deviceID: "7",
    alarmId: "7@ep1",
    state,
    severity: state === "warning" ? "minor" : state === "alarm" ? "major" : "none",
    cause: "vibration",
    contributions: null,
    probability: 0.93,
    eta: null,
    since: iso(T0),
    at: iso(T0),
    acknowledged: false,
    site: "local",
    ...rest,
  };
  return { transition: t, link: "http://page/?fan=7" };
}

/** Applies the transitions in order, as the target does. */
function run(...notifications: Array<ReturnType<typeof tx>>): FanAlerts {
  let state: FanAlerts | undefined;
  for (const notification of notifications) state = applyTransition(state, notification, OPTIONS);
  assert.ok(state);
  return state;
}

const names = (alerts: FanAlerts["open"]) => alerts.map((a) => `${a.labels.alertname}/${a.labels.severity}`);

describe("Alertmanager target: transitions to alerts", () => {
  it("opens the episode's alert with fixed labels, the readable summary and the link", () => {
    const state = run(tx("alarm", { since: iso(T0 - 5_000) }));
    const [alert] = state.open;
    assert.deepEqual(alert?.labels, {
      alertname: "FanAlarm",
      deviceID: "7",
      severity: "major",
      cause: "vibration",
      site: "local",
      alarmId: "7@ep1",
    });
    assert.equal(alert?.annotations.summary, "Fan 7 alarm: vibration, p=0.93");
    assert.equal(alert?.annotations.link, "http://page/?fan=7");
    assert.equal(alert?.startsAt, iso(T0 - 5_000));
    assert.equal(alert?.endsAt, undefined);
  });

  it("names the model behind the latest transition in an annotation, never a label: a promotion makes no new alert", () => {
    const raised = run(tx("alarm", { model: "fan-aaaaaaaaaaaaaaaa" }));
    assert.equal(raised.open[0]?.annotations.model, "fan-aaaaaaaaaaaaaaaa");
    assert.equal(raised.open[0]?.labels.model, undefined);
    // A warning raised by one model, escalated by the next one's prediction after a promotion.
    const later = run(
      tx("warning", { model: "fan-aaaaaaaaaaaaaaaa" }),
      tx("escalated", { state: "warning", severity: "major", model: "fan-bbbbbbbbbbbbbbbb" }),
    );
    assert.deepEqual(
      later.open.map((a) => [a.labels.alertname, a.annotations.model]),
      [["FanWarning", "fan-bbbbbbbbbbbbbbbb"]],
    );
    assert.equal(run(tx("alarm")).open[0]?.annotations.model, undefined, "no model known, no annotation");
  });

  it("ends the warning when the alarm replaces it, and both alerts when the episode clears", () => {
    const warned = run(tx("warning"));
    assert.deepEqual(names(warned.open), ["FanWarning/minor"]);
    const alarmed = applyTransition(warned, tx("alarm", { at: iso(T0 + 1_000), since: iso(T0 + 1_000) }), OPTIONS);
    assert.deepEqual(names(alarmed.open), ["FanAlarm/major"]);
    assert.deepEqual(names(alarmed.ended), ["FanWarning/minor"]);
    assert.equal(alarmed.ended[0]?.endsAt, iso(T0 + 1_000));
    const cleared = applyTransition(alarmed, tx("cleared", { at: iso(T0 + 2_000) }), OPTIONS);
    assert.deepEqual(cleared.open, []);
    assert.deepEqual(names(cleared.ended), ["FanWarning/minor", "FanAlarm/major"]);
  });

  it("on escalation ends the minor alert and opens the major one from now", () => {
    const state = run(tx("warning"), tx("escalated", { state: "warning", severity: "major", at: iso(T0 + 3_000) }));
    assert.deepEqual(names(state.open), ["FanWarning/major"]);
    assert.equal(state.open[0]?.startsAt, iso(T0 + 3_000));
    assert.deepEqual(names(state.ended), ["FanWarning/minor"]);
  });

  it("keeps the episode's alert open while the fan is silent, and ends FanSilent when it reports again", () => {
    const silent = run(tx("alarm"), tx("silent", { state: "silent", since: iso(T0 + 60_000), at: iso(T0 + 60_000) }));
    assert.deepEqual(names(silent.open), ["FanAlarm/major", "FanSilent/minor"]);
    assert.equal(silent.open[1]?.labels.silentSince, iso(T0 + 60_000));
    const back = applyTransition(silent, tx("alarm", { at: iso(T0 + 70_000) }), OPTIONS);
    assert.deepEqual(names(back.open), ["FanAlarm/major"]);
    assert.equal(back.open[0]?.startsAt, silent.open[0]?.startsAt, "the same alert, not a new one");
    assert.deepEqual(names(back.ended), ["FanSilent/minor"]);
  });

  it("changes nothing for a transition it applied before, and opens nothing for an episode that cleared", () => {
    const alarm = tx("alarm");
    const once = run(alarm);
    assert.equal(applyTransition(once, alarm, OPTIONS), once);
    const cleared = applyTransition(once, tx("cleared"), OPTIONS);
    const late = applyTransition(cleared, tx("alarm", { id: "7:late" }), OPTIONS);
    assert.deepEqual(late.open, [], "a redriven alarm of a closed episode does not reopen it");
  });

  it("a late clear of an earlier episode (a redriven dead letter) ends nothing of the episode open now", () => {
    // Fan 7's first episode cleared at T0+10s, but that transition became a dead letter; the fan's
    // second episode came after it. Its clear, redriven later, is older and lower in the fan's sequence.
    const ep1 = { alarmId: "7@ep1" };
    const ep2 = { alarmId: "7@ep2", at: iso(T0 + 20_000), since: iso(T0 + 20_000) };
    const lateClear = tx("cleared", { ...ep1, at: iso(T0 + 10_000), seq: 2 });
    const state = run(tx("alarm", { ...ep1, seq: 1 }), tx("alarm", { ...ep2, seq: 3 }));
    const after = applyTransition(state, lateClear, OPTIONS);
    assert.deepEqual(names(after.open), ["FanAlarm/major"]);
    assert.equal(after.open[0]?.labels.alarmId, "7@ep2", "the second episode's alarm is still open");
    assert.deepEqual(after.ended, state.ended, "nothing more ended: Alertmanager is sent no resolve");
    assert.deepEqual(after.silences, state.silences);
    assert.ok(after.applied.includes(lateClear.transition.id), "remembered: a second redrive changes nothing either");
  });

  it("two health replicas' appends out of order: a late warning after its episode's alarm neither ends the alarm nor opens a warning", () => {
    const warning = tx("warning", { seq: 4, at: iso(T0 + 1_000), since: iso(T0 + 1_000) });
    const alarm = tx("alarm", { seq: 5, at: iso(T0 + 2_000), since: iso(T0 + 2_000) });
    const state = run(alarm, warning);
    assert.deepEqual(names(state.open), ["FanAlarm/major"]);
    assert.deepEqual(state.ended, [], "the alarm was not ended (no false resolve)");
    // Nor does a late acknowledgement or shelving of it make a silence.
    const lateShelve = tx("shelved", { seq: 4, at: iso(T0 + 1_500), until: iso(T0 + 3_600_000) });
    assert.deepEqual(applyTransition(state, lateShelve, OPTIONS).silences, []);
  });

  it("applies a transition whose sequence restarted (health lost its record of the fan) when it is newer", () => {
    const state = run(
      tx("alarm", { seq: 40, at: iso(T0) }),
      tx("cleared", { seq: 0, at: iso(T0 + 60_000) }), // health's sequence for the fan starts again
    );
    assert.deepEqual(state.open, []);
    assert.deepEqual(names(state.ended), ["FanAlarm/major"]);
    const again = applyTransition(state, tx("alarm", { alarmId: "7@ep2", seq: 1, at: iso(T0 + 70_000) }), OPTIONS);
    assert.deepEqual(names(again.open), ["FanAlarm/major"]);
  });

  it("sends ended alerts with their endsAt for the keep period only", () => {
    const state = run(tx("alarm"), tx("cleared", { at: iso(T0) }));
    assert.equal(alertsToSend(state, T0 + 1_000, 60_000).length, 1);
    assert.equal(alertsToSend(state, T0 + 61_000, 60_000).length, 0);
  });
});

describe("Alertmanager target: the order of a fan's transitions", () => {
  const at = "2026-12-07T06:20:08.213Z";
  const ms = Date.parse(at);
  const of = (id: string) => transitionOrder({ id, at } as AlarmTransition);

  it("reads health's id, <deviceID>:<at ms>:<sequence>, from the right (a device ID may hold colons)", () => {
    assert.deepEqual(of(`line:3:${ms}:44`), { at: ms, seq: 44 });
  });

  it("does not take another id that merely ends in two numbers for health's: its time decides alone", () => {
    // Read as health's, "…:44:679187" would be a transition of 1970 and count as late.
    assert.deepEqual(of(`fan-3:${ms}:44:679187`), { at: ms, seq: null });
    assert.deepEqual(of("fan-3:7"), { at: ms, seq: null });
  });
});

describe("Alertmanager target: transitions to silences", () => {
  it("acknowledging wants a silence of the acknowledged alert, open-ended, carrying its key", () => {
    const state = run(tx("alarm"), tx("acknowledged", { acknowledged: true, by: "alice", note: "on it" }));
    const [ack] = state.silences;
    assert.equal(ack?.kind, "ack");
    assert.equal(ack?.endsAt, null);
    assert.deepEqual(ack?.matchers, [
      { name: "alertname", value: "FanAlarm" },
      { name: "deviceID", value: "7" },
      { name: "site", value: "local" },
      { name: "alarmId", value: "7@ep1" },
    ]);
    assert.equal(
      keyOf({ createdBy: "fanwatch", comment: ack?.comment ?? "" }),
      silenceKey("local", "7", "ack", "7@ep1"),
    );
    assert.match(ack?.comment ?? "", /^Acknowledged by alice: on it/);
  });

  it("drops the acknowledgement of a warning when health raises it to an alarm (health unacknowledges it)", () => {
    const state = run(
      tx("warning"),
      tx("acknowledged", { state: "warning", severity: "minor", acknowledged: true, by: "alice" }),
      tx("alarm", { acknowledged: false }),
    );
    assert.deepEqual(state.silences, []);
    assert.deepEqual(names(state.open), ["FanAlarm/major"]);
  });

  it("shelving wants a silence of the fan until `until`; the clear ends it but not a maintenance window", () => {
    const until = iso(T0 + 3_600_000);
    const shelved = run(
      tx("alarm"),
      tx("shelved", { until, by: "carol" }),
      tx("maintenance", { from: iso(T0 + 10_000), until: iso(T0 + 7_200_000), by: "bob" }),
    );
    assert.deepEqual(
      shelved.silences.map((s) => [s.kind, s.startsAt, s.endsAt, s.matchers.map((m) => m.name).join()]),
      [
        ["shelve", iso(T0), until, "deviceID,site"],
        ["maintenance", iso(T0 + 10_000), iso(T0 + 7_200_000), "deviceID,site"],
      ],
    );
    const cleared = applyTransition(shelved, tx("cleared"), OPTIONS);
    assert.deepEqual(
      cleared.silences.map((s) => s.kind),
      ["maintenance"],
    );
  });

  it("resumed drops the shelving that ran out", () => {
    const until = iso(T0 + 1_000);
    const state = run(tx("alarm"), tx("shelved", { until }), tx("resumed", { at: iso(T0 + 1_000) }));
    assert.deepEqual(state.silences, []);
  });
});

describe("Alertmanager target: reconciling silences", () => {
  const now = T0;
  const wanted = run(tx("alarm"), tx("acknowledged", { acknowledged: true, by: "alice" })).silences;
  const existing = (fields: Partial<ExistingSilence>): ExistingSilence => ({
    id: "b",
    state: "active",
    comment: wanted[0]?.comment ?? "",
    createdBy: "fanwatch",
    startsAt: iso(now - 1_000),
    endsAt: iso(now + 3_000_000),
    matchers: (wanted[0]?.matchers ?? []).map((m) => ({ ...m, isRegex: false, isEqual: true })),
    ...fields,
  });
  const plan = (present: ExistingSilence[]) =>
    planSilences(wanted, present, { now, openEndedMs: 3_600_000 }).map((op) =>
      op.op === "expire" ? `expire ${op.id}` : `${op.op}${op.op === "update" ? ` ${op.silence.id}` : ""}`,
    );

  it("creates a missing silence, leaves a right one, renews one running out, expires duplicates and leftovers", () => {
    assert.deepEqual(plan([]), ["create"]);
    assert.deepEqual(plan([existing({})]), []);
    assert.deepEqual(plan([existing({ endsAt: iso(now + 60_000) })]), ["update b"]);
    assert.deepEqual(plan([existing({}), existing({ id: "a" })]), ["expire b"], "the smaller id stays");
    const leftover = existing({ id: "c", comment: "old [fanwatch/local/7/shelve/0123456789ab]" });
    assert.deepEqual(plan([existing({}), leftover]), ["expire c"]);
  });

  it("never touches a silence someone else made", () => {
    assert.deepEqual(plan([existing({}), existing({ id: "z", createdBy: "alice" })]), []);
  });

  it("keeps an active silence's start when it changes its end (Alertmanager updates it in place only then)", () => {
    const ops = planSilences(wanted, [existing({ endsAt: iso(now + 60_000) })], { now, openEndedMs: 3_600_000 });
    assert.equal(ops[0]?.op === "update" ? ops[0].silence.startsAt : "", iso(now - 1_000));
  });
});

describe("Alertmanager configuration", () => {
  const shipped = parse(readFileSync(join(REPO_ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8")) as {
    route: Record<string, unknown> & { routes: Array<Record<string, unknown>> };
    inhibit_rules: unknown[];
  };

  it("the shipped file and fanwatch start's share the grouping, intervals, paging route and inhibition", () => {
    const local = parse(localAlertmanagerConfig()) as typeof shipped;
    for (const config of [shipped, local]) {
      assert.deepEqual(config.route.group_by, [...GROUP_BY]);
      for (const [key, value] of Object.entries(ROUTE_TIMING)) assert.equal(config.route[key], value, key);
      const paging = config.route.routes.find((r) => JSON.stringify(r.matchers) === JSON.stringify([PAGING_MATCHER]));
      assert.equal(paging?.repeat_interval, PAGING_REPEAT_INTERVAL);
      // The shipped file adds the platform's own (deploy/prometheus): fanwatch start runs no Prometheus.
      assert.deepEqual(config.inhibit_rules.slice(0, INHIBIT_RULES.length), INHIBIT_RULES);
    }
    assert.deepEqual(local.inhibit_rules, INHIBIT_RULES);
  });

  it("sends the platform's alerts (scope=platform) to the operators before the fans' paging route can take them", () => {
    const routes = shipped.route.routes;
    const platform = routes.findIndex((r) => JSON.stringify(r.matchers) === JSON.stringify(['scope="platform"']));
    const paging = routes.findIndex((r) => JSON.stringify(r.matchers) === JSON.stringify([PAGING_MATCHER]));
    assert.ok(platform >= 0 && platform < paging, "the platform route comes first");
    assert.equal(routes[platform]?.receiver, "operators");
    assert.equal(routes[platform]?.continue, undefined, "and stops there");
  });

  it("names the site and severity in the mail subject from the group's first alert, not from labels all its alerts must share", () => {
    const receivers = (
      shipped as unknown as {
        receivers: Array<{ name: string; email_configs?: Array<{ headers: { Subject: string } }> }>;
      }
    ).receivers.filter((r) => r.name !== "operators"); // the platform's alerts name no fan
    const subjects = receivers.flatMap((r) => (r.email_configs ?? []).map((e) => e.headers.Subject));
    assert.ok(subjects.length > 0);
    for (const subject of subjects) assert.equal(subject, EMAIL_SUBJECT, "the shipped file and fanwatch start's alike");
    assert.doesNotMatch(EMAIL_SUBJECT, /CommonLabels/);
    assert.match(EMAIL_SUBJECT, /index \.Alerts 0/);
  });

  it("renders the given receivers, the password as a file only", () => {
    const text = localAlertmanagerConfig({
      webhookUrl: "http://127.0.0.1:9/hook",
      smtp: { smarthost: "mail:587", from: "a@x", to: "b@x", username: "u", passwordFile: "/run/pw" },
    });
    const config = parse(text) as { receivers: Array<Record<string, Array<Record<string, unknown>>>> };
    assert.equal(config.receivers[0]?.webhook_configs?.[0]?.url, "http://127.0.0.1:9/hook");
    assert.equal(config.receivers[0]?.email_configs?.[0]?.auth_password_file, "/run/pw");
    assert.doesNotMatch(text, /auth_password:/);
  });
});
