import type { AlarmTransition } from "../../lib/domain/health.js";
import type { Notification } from "../target.js";
import {
  alertName,
  emptyFan,
  isEpisodeAlert,
  type Alert,
  type AlertName,
  type FanAlerts,
  type TransitionOrder,
  type WantedSilence,
} from "./model.js";
import { commentWithKey, fanMatchers, silenceKey } from "./silences.js";
import { warningDetail } from "./warning-text.js";

/**
 * Health's transitions as the alerts and silences one fan wants (docs/alertmanager.md): a pure
 * function of the fan's state, one transition and the clock.
 *
 * - warning / alarm: the episode's FanWarning or FanAlarm is open (an alarm ends the episode's
 *   warning and opens its FanAlarm); the fan reports, so FanSilent ends.
 * - escalated: the warning's severity rose: the alert ends and one with the new severity opens.
 * - cleared / ok: the episode's alert and FanSilent end; the episode's silences are no longer wanted.
 * - silent: FanSilent opens; the episode's alert stays open (the fault has not gone away).
 * - sensor: FanSensor opens (severity warning, cause `<sensor> <implausible|stuck>`): a sensor is
 *   not to be believed, an electrician's job; sensor-cleared ends it. The fan's episodes, clears
 *   and silence leave it as it is, and it leaves them.
 * - acknowledged / shelved / maintenance: a silence is wanted; resumed: the ended ones go.
 * - a late transition (older than the newest one applied to the fan: isLate) changes nothing.
 *
 * Labels are fixed when an alert opens: Alertmanager knows an alert by its labels, and a label
 * that changed would be a new alert (a new notification) and leave the old one to time out.
 * Besides alertname, deviceID, severity, cause and site, each alert carries what makes it one
 * occurrence: `alarmId` (the episode) or `silentSince`. Alertmanager remembers what it notified per
 * group ([deviceID, alertname]) by the set of firing alerts, so without it a fan's next episode,
 * with the same labels, would not be notified whenever the previous one's resolve was not
 * (silenced, inhibited, or within one group_interval of the new one).
 */

export interface ApplyOptions {
  now: number;
  /** How long an ended alert is still sent (with its endsAt). */
  keepEndedMs: number;
}

/** How many transition ids and closed episodes a fan remembers. */
const REMEMBERED = 32;

/** Events of an episode that a late transition must not bring back once the episode cleared. */
const OPENING = new Set(["warning", "alarm", "escalated", "acknowledged", "shelved"]);

/**
 * The fan's state after `notification`. Returns `state` itself (the same object) when the
 * transition was applied before or changes nothing, so the caller writes only what changed.
 */
export function applyTransition(
  state: FanAlerts | undefined,
  notification: Notification,
  options: ApplyOptions,
): FanAlerts {
  const t = notification.transition;
  const current = state ?? emptyFan(t.deviceID, t.site);
  if (current.applied.includes(t.id)) return current;
  const next: FanAlerts = structuredClone(current);
  prune(next, options);
  next.applied = [...next.applied, t.id].slice(-REMEMBERED);
  const order = transitionOrder(t);
  // A late transition (a redriven dead letter, two health replicas' appends landing out of order)
  // describes a past the fan has left: applied, a late clear would resolve the next episode's alarm
  // and a late warning would end its own episode's alarm. It is remembered, nothing else.
  if (isLate(order, current.newest)) return next;
  next.newest = order;
  if (t.alarmId !== null && OPENING.has(t.event) && next.closed.includes(t.alarmId)) return next;
  const at = t.at;
  const link = notification.link;
  switch (t.event) {
    case "warning":
    case "alarm":
      end(next, (a) => alertName(a) === "FanSilent", at);
      openEpisode(next, t, t.event === "alarm" ? "FanAlarm" : "FanWarning", link);
      keepAcknowledgement(next, t);
      break;
    case "escalated":
      openEpisode(next, t, episodeAlert(next)?.labels.alertname === "FanAlarm" ? "FanAlarm" : "FanWarning", link);
      keepAcknowledgement(next, t);
      break;
    case "cleared":
    case "ok":
      // Silences first in the push (sync.ts): the resolve must not be muted by the acknowledgement.
      next.silences = next.silences.filter((s) => s.kind === "maintenance");
      // The fan's episode and silence end; its sensor issue is its own, ended by sensor-cleared.
      end(next, (a) => alertName(a) !== "FanSensor", at);
      if (t.alarmId !== null && !next.closed.includes(t.alarmId))
        next.closed = [...next.closed, t.alarmId].slice(-REMEMBERED);
      break;
    case "silent":
      if (!next.open.some((a) => alertName(a) === "FanSilent")) next.open.push(silentAlert(t, link));
      refresh(next, t, link);
      break;
    case "acknowledged":
      if (t.state === "warning" || t.state === "alarm") openEpisode(next, t, episodeName(t.state), link);
      acknowledge(next, t);
      break;
    case "shelved":
      if (t.until !== undefined) want(next, shelving(t));
      refresh(next, t, link);
      break;
    case "maintenance":
      if (t.from !== undefined && t.until !== undefined) want(next, maintenance(t));
      refresh(next, t, link);
      break;
    case "resumed":
      // Health says a shelving or maintenance window ran out: Alertmanager expired the silence by itself.
      next.silences = next.silences.filter(
        (s) => s.kind === "ack" || s.endsAt === null || Date.parse(s.endsAt) > Date.parse(at) + 1_000,
      );
      refresh(next, t, link);
      break;
    case "sensor":
      openSensor(next, t, link);
      break;
    case "sensor-cleared":
      end(next, (a) => alertName(a) === "FanSensor", at);
      break;
    case "commented":
    case "assigned":
    case "finding":
      // Notes on an episode change no alert (the target skips them before they come here).
      break;
  }
  return next;
}

/** Health's id `<deviceID>:<at ms>:<sequence>` read from the right (a device ID may hold colons). */
const HEALTH_ID = /:(\d+):(\d+)$/;

/** Where `t` stands among its fan's transitions: its time and health's per-fan sequence number. */
export function transitionOrder(t: AlarmTransition): TransitionOrder {
  const at = Date.parse(t.at);
  const match = HEALTH_ID.exec(t.id);
  // Health's id holds the transition's own time: an id of another form that merely ends in two
  // numbers is not read as one.
  if (match === null || Number(match[1]) !== at) return { at, seq: null };
  return { at, seq: Number(match[2]) };
}

/**
 * Whether a transition comes after the newest one applied to its fan. Health numbers each fan's
 * transitions (the sequence rises by one each time and starts again only when health lost its
 * record of the fan), and their times mostly rise too (actions carry the clock's time, the rest the
 * reading's, so two close ones may swap). So a transition is late when it is neither later in the
 * sequence nor later in time: older-and-lower. One whose sequence restarted is newer in time, and
 * applied. Without a sequence (an id not of health's form) only an older time makes it late.
 */
export function isLate(order: TransitionOrder, newest: TransitionOrder | null): boolean {
  if (newest === null) return false;
  if (order.seq === null || newest.seq === null) return order.at < newest.at;
  return order.at <= newest.at && order.seq <= newest.seq;
}

function episodeName(state: "warning" | "alarm"): AlertName {
  return state === "alarm" ? "FanAlarm" : "FanWarning";
}

function episodeAlert(state: FanAlerts): Alert | undefined {
  return state.open.find(isEpisodeAlert);
}

/** Drops ended alerts past the keep period and silences whose end has passed. */
function prune(state: FanAlerts, { now, keepEndedMs }: ApplyOptions): void {
  state.ended = state.ended.filter((a) => Date.parse(a.endsAt ?? "") > now - keepEndedMs);
  state.silences = state.silences.filter((s) => s.endsAt === null || Date.parse(s.endsAt) > now);
}

/** Ends the open alerts that `which` picks, at `at` (never before they started). */
function end(state: FanAlerts, which: (alert: Alert) => boolean, at: string): void {
  const keep: Alert[] = [];
  for (const alert of state.open) {
    if (!which(alert)) keep.push(alert);
    else {
      const endsAt = Date.parse(at) < Date.parse(alert.startsAt) ? alert.startsAt : at;
      state.ended.push({ ...alert, endsAt });
    }
  }
  state.open = keep;
}

/**
 * The episode's alert named `name`, with the transition's severity: kept (annotations refreshed)
 * when it is open already, else opened, ending whatever episode alert was open before it.
 */
function openEpisode(state: FanAlerts, t: AlarmTransition, name: AlertName, link: string): void {
  const open = episodeAlert(state);
  const alarmId = t.alarmId ?? t.deviceID;
  if (
    open !== undefined &&
    open.labels.alertname === name &&
    open.labels.alarmId === alarmId &&
    open.labels.severity === t.severity
  ) {
    open.annotations = annotations(name, t, link);
    return;
  }
  if (open !== undefined) end(state, isEpisodeAlert, t.at);
  // Opened now by an escalation; otherwise when the fan entered the state.
  const startsAt = open !== undefined && open.labels.alarmId === alarmId ? t.at : t.since;
  state.open.push({
    labels: {
      alertname: name,
      deviceID: t.deviceID,
      severity: t.severity,
      cause: t.cause ?? "none",
      site: t.site,
      alarmId,
    },
    annotations: annotations(name, t, link),
    startsAt,
    generatorURL: link,
  });
}

function silentAlert(t: AlarmTransition, link: string): Alert {
  return {
    labels: {
      alertname: "FanSilent",
      deviceID: t.deviceID,
      severity: t.severity === "none" ? "minor" : t.severity,
      cause: t.cause ?? "none",
      site: t.site,
      silentSince: t.since,
    },
    annotations: annotations("FanSilent", t, link),
    startsAt: t.since,
    generatorURL: link,
  };
}

/**
 * The fan's FanSensor for the issue the transition opened: one per fan (health keeps one issue at
 * a time); its labels name the sensor and why, and `sensorSince` makes each issue one occurrence.
 */
function openSensor(state: FanAlerts, t: AlarmTransition, link: string): void {
  const issue = t.sensorIssue;
  if (issue === undefined) return;
  const open = state.open.find((a) => alertName(a) === "FanSensor");
  if (open !== undefined && open.labels.sensorSince === issue.since) return;
  if (open !== undefined) end(state, (a) => alertName(a) === "FanSensor", t.at);
  state.open.push({
    labels: {
      alertname: "FanSensor",
      deviceID: t.deviceID,
      severity: "warning",
      cause: `${issue.sensor} ${issue.cause}`,
      site: t.site,
      sensorSince: issue.since,
    },
    annotations: annotations("FanSensor", t, link),
    startsAt: issue.since,
    generatorURL: link,
  });
}

/** The open alerts' annotations from the latest transition (labels stay as they opened). */
function refresh(state: FanAlerts, t: AlarmTransition, link: string): void {
  for (const alert of state.open) {
    const name = alertName(alert);
    if (name === undefined || name === "FanSensor") continue;
    if (name !== "FanSilent" && alert.labels.alarmId !== (t.alarmId ?? t.deviceID)) continue;
    if (name === "FanSilent") alert.annotations = { ...alert.annotations, link };
    else alert.annotations = annotations(name, t, link);
  }
}

export function annotations(name: AlertName, t: AlarmTransition, link: string): Record<string, string> {
  // A sensor issue is about the sensor, not the fan's fault probability or episode.
  if (name === "FanSensor" && t.sensorIssue !== undefined)
    return {
      summary: summary(name, t),
      link,
      sensor: t.sensorIssue.sensor,
      value: String(t.sensorIssue.value),
      since: t.sensorIssue.since,
    };
  const out: Record<string, string> = {
    summary: summary(name, t),
    probability: t.probability.toFixed(2),
    link,
  };
  if (t.contributions !== null) out.contributions = JSON.stringify(t.contributions);
  if (t.eta !== null) out.eta = t.eta;
  // A warning's interval, basis and drifting sensors: annotations, never labels (a label is the
  // alert's identity, and an interval that moves with each transition would be a new alert each time).
  if (t.etaInterval != null) {
    out.etaFrom = t.etaInterval.from;
    out.etaTo = t.etaInterval.to;
    out.etaCoverage = String(t.etaInterval.coverage);
  }
  if (t.basis != null) out.basis = t.basis;
  if (t.sensors != null && t.sensors.length > 0) out.sensors = t.sensors.join(",");
  if (t.alarmId !== null) out.alarmId = t.alarmId;
  // The model behind the transition (an id such as fan-0123456789abcdef), so that an alert can be
  // traced to the model that raised it: an annotation, since a promotion must not make a new alert.
  if (t.model !== undefined) out.model = t.model;
  return out;
}

/**
 * "Fan 7 alarm: vibration, p=0.93": what a person reads first, in a page or a mail subject. A
 * warning adds when the alarm is expected and what drifts against what: "Fan 7 warning: vibration,
 * p=0.41, alarm expected in 2–5 h (between 2026-01-01 02:00 and 05:00 UTC, 80% interval);
 * vibration and temperature drifting from the fan's own baseline".
 */
export function summary(name: AlertName, t: AlarmTransition): string {
  const fan = `Fan ${t.deviceID}`;
  const cause = t.cause ?? "cause unknown";
  const p = `p=${t.probability.toFixed(2)}`;
  switch (name) {
    case "FanAlarm":
      return `${fan} alarm: ${cause}, ${p}`;
    case "FanWarning":
      return `${fan} warning: ${cause}, ${p}${warningDetail(t)}`;
    case "FanSilent":
      return `${fan} silent since ${t.since}: no readings`;
    case "FanSensor": {
      const issue = t.sensorIssue;
      if (issue === undefined) return `${fan} sensor issue`;
      const why =
        issue.cause === "stuck"
          ? `stuck at ${issue.value} since ${issue.since}`
          : `reads outside its physical limits (${issue.value}) since ${issue.since}`;
      return `${fan} sensor ${issue.sensor} ${why}: check the sensor and its wiring, not the fan`;
    }
  }
}

/**
 * The acknowledgement stands while health says the episode is acknowledged (an alarm raised from
 * an acknowledged warning is not: it is news), and follows the episode's alert when it is renamed.
 */
function keepAcknowledgement(state: FanAlerts, t: AlarmTransition): void {
  if (!t.acknowledged) {
    state.silences = state.silences.filter((s) => s.kind !== "ack");
    return;
  }
  const open = episodeAlert(state);
  const ack = state.silences.find((s) => s.kind === "ack");
  if (open === undefined || ack === undefined) return;
  ack.matchers = ackMatchers(open);
}

function ackMatchers(alert: Alert): WantedSilence["matchers"] {
  return ["alertname", "deviceID", "site", "alarmId"].map((name) => ({ name, value: alert.labels[name] ?? "" }));
}

function acknowledge(state: FanAlerts, t: AlarmTransition): void {
  const open = episodeAlert(state);
  if (open === undefined) return;
  const key = silenceKey(t.site, t.deviceID, "ack", t.alarmId);
  const who = t.by ?? "someone";
  const text = `Acknowledged by ${who}${t.note === undefined ? "" : `: ${t.note}`} (${open.labels.alertname} of fan ${t.deviceID}, episode ${t.alarmId ?? "?"}); ends when the episode clears.`;
  want(state, {
    key,
    kind: "ack",
    matchers: ackMatchers(open),
    startsAt: t.at,
    endsAt: null,
    comment: commentWithKey(text, key),
  });
}

function shelving(t: AlarmTransition): WantedSilence {
  const key = silenceKey(t.site, t.deviceID, "shelve", t.alarmId);
  const text = `Shelved by ${t.by ?? "someone"} until ${t.until ?? "?"}${t.note === undefined ? "" : `: ${t.note}`} (fan ${t.deviceID}, episode ${t.alarmId ?? "?"}).`;
  return {
    key,
    kind: "shelve",
    matchers: fanMatchers(t.deviceID, t.site),
    startsAt: t.at,
    endsAt: t.until ?? t.at,
    comment: commentWithKey(text, key),
  };
}

function maintenance(t: AlarmTransition): WantedSilence {
  const key = silenceKey(t.site, t.deviceID, "maintenance");
  const text = `Maintenance of fan ${t.deviceID} by ${t.by ?? "someone"}, ${t.from ?? "?"} to ${t.until ?? "?"}${t.note === undefined ? "" : `: ${t.note}`}.`;
  return {
    key,
    kind: "maintenance",
    matchers: fanMatchers(t.deviceID, t.site),
    startsAt: t.from ?? t.at,
    endsAt: t.until ?? t.at,
    comment: commentWithKey(text, key),
  };
}

/** One silence of a kind per fan: a new one replaces the old (a shelving moved, a window replanned). */
function want(state: FanAlerts, silence: WantedSilence): void {
  state.silences = [...state.silences.filter((s) => s.kind !== silence.kind), silence];
}

/** What to send for a fan now: its open alerts (no endsAt) and those that ended within the keep period. */
export function alertsToSend(state: FanAlerts, now: number, keepEndedMs: number): Alert[] {
  return [...state.open, ...state.ended.filter((a) => Date.parse(a.endsAt ?? "") > now - keepEndedMs)];
}
