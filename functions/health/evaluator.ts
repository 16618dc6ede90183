import { z } from "zod";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import {
  HealthRecordSchema,
  newHealthRecord,
  NOTE_EVENTS,
  transitionFrom,
  type AlarmTransition,
  type HealthEvent,
  type HealthRecord,
  type MutedBy,
  type Severity,
  type TransitionChange,
} from "../../lib/domain/health.js";
import type { PerSensor, Prediction } from "../../lib/domain/prediction.js";
import type { SensorNotice } from "../../lib/domain/sensor-notice.js";
import { HealthConflictError, HealthNotFoundError, InputError } from "../../lib/errors.js";
import { DEFAULT_POLICY, type HealthPolicy } from "./policy.js";
import { isoTime as iso } from "./iso-time.js";
import {
  copyTracker,
  newTracker,
  noticeKey,
  predictionKey,
  RECENT_EPISODES,
  rebase,
  sensorOfSide,
  TrackerSchema,
  type Tracker,
} from "./tracker.js";
import { estimateEta, longestRunSide, recordExceedances, sensorsOutOfRange, warningSide } from "./trend.js";
import { newSensorTrack, noteImplausible, noteReading, sensorsBelievable, type SensorFinding } from "./sensors.js";
import { isReady, learn, newBaseline, READY_LEARN_EVERY } from "./baseline.js";
import { detect, driftingSides, inControl, newDrift, NO_SIDES, warningSides } from "./drift.js";
import { driftEta, fleetEtaInterval, type Eta } from "./eta.js";

/**
 * The health rules (docs/health.md): pure functions of a fan's stored health, the predictions that
 * arrived and the clock, so that any replica evaluating the same inputs reaches the same state and
 * the same transition ids. Trends run on reading time (`at`), silence on arrival time (`now`).
 */

export interface HealthInput {
  prediction: Prediction;
  /** Reading time in ms: the prediction's timeStamp, else its arrival. */
  at: number;
}

/** A reading predict could not score (a SensorNotice): what the sensor rules count. */
export interface NoticeInput {
  notice: SensorNotice;
  /** Reading time in ms: the notice's timeStamp, else its arrival. */
  at: number;
}

export interface FanHealth {
  record: HealthRecord;
  tracker: Tracker;
}

/** One fan's stored health (JSON): parse it when reading it back. */
export const FanHealthSchema: z.ZodType<FanHealth> = z.object({ record: HealthRecordSchema, tracker: TrackerSchema });

export interface Evaluation {
  next: FanHealth;
  transitions: AlarmTransition[];
}

/**
 * Evaluates a fan's new predictions, and the notices of its readings that could not be scored, in
 * reading-time order; replays of what it already saw are skipped.
 */
export function evaluate(
  current: FanHealth | undefined,
  deviceID: string,
  inputs: readonly HealthInput[],
  now: number,
  policy: HealthPolicy = DEFAULT_POLICY,
  notices: readonly NoticeInput[] = [],
): Evaluation {
  let first = Infinity;
  for (const input of inputs) if (input.at < first) first = Math.min(input.at, now + policy.maxAheadMs);
  for (const input of notices) if (input.at < first) first = Math.min(input.at, now + policy.maxAheadMs);
  const w: Work =
    current === undefined ? fresh(deviceID, Number.isFinite(first) ? first : now, now) : work(current, now);
  const seen = w.tracker.lastAt;
  if (notices.length === 0) {
    const ordered = inputs.length > 1 ? inputs.slice().sort((a, b) => a.at - b.at) : inputs;
    for (const input of ordered) step(w, deviceID, input, now, policy);
  } else {
    // Rare (a sensor gone wrong): merged with the predictions, so that the rules see one fan's readings in order.
    const merged: Array<HealthInput | NoticeInput> = [...inputs, ...notices].sort((a, b) => a.at - b.at);
    for (const input of merged)
      if ("notice" in input) stepNotice(w, deviceID, input, now, policy);
      else step(w, deviceID, input, now, policy);
  }
  // Once per call rather than per prediction: formatting a time is most of what a healthy fan's prediction costs.
  if (w.tracker.lastAt !== seen && w.tracker.lastAt !== null)
    w.record.lastSeen = iso(w.tracker.base + w.tracker.lastAt);
  return { next: { record: w.record, tracker: w.tracker }, transitions: w.transitions };
}

/** Silence by the health process's clock: a fan not heard from for silentAfterMs becomes `silent`. Undefined when nothing changes. */
export function checkSilence(
  current: FanHealth,
  now: number,
  policy: HealthPolicy = DEFAULT_POLICY,
): Evaluation | undefined {
  if (
    current.record.state === "silent" ||
    now - (current.tracker.base + current.tracker.arrivedAt) < policy.silentAfterMs
  )
    return undefined;
  const w = work(current, now);
  // A fan nobody can see deserves a look even when it was ok; an open alarm keeps its severity.
  const severity: Severity = w.record.severity === "none" ? "minor" : w.record.severity;
  Object.assign(w.record, { state: "silent", since: iso(now), severity, eta: null, etaInterval: null });
  emit(w, "silent", now);
  return { next: { record: w.record, tracker: w.tracker }, transitions: w.transitions };
}

/**
 * Someone is on it. Acknowledges the open warning or alarm (also while the fan is silent). A warning
 * that escalates to an alarm is unacknowledged again: the alarm is news to whoever acknowledged the
 * warning. The acknowledgement ends with the episode.
 */
export function acknowledge(
  current: FanHealth | undefined,
  deviceID: string,
  by: string,
  note: string | undefined,
  now: number,
): Evaluation {
  if (current === undefined) throw new HealthNotFoundError(deviceID);
  const open = current.tracker.state;
  if (open !== "warning" && open !== "alarm")
    throw new HealthConflictError(
      `fan "${deviceID}" has no open warning or alarm to acknowledge: it is ${current.record.state}`,
    );
  if (current.record.acknowledged)
    throw new HealthConflictError(
      `the ${open} ${current.record.alarmId ?? ""} of fan "${deviceID}" is already acknowledged by ${current.record.acknowledgedBy ?? "someone"}`,
    );
  const w = work(current, now);
  Object.assign(w.record, { acknowledged: true, acknowledgedBy: by, note: note ?? null });
  emit(w, "acknowledged", now, { by, ...(note === undefined ? {} : { note }) });
  return done(w);
}

/**
 * Snoozes the open warning or alarm (also while the fan is silent) until `until` (wall clock, ms):
 * its transitions meanwhile are `muted`, and if the episode is still open then, expire() resumes
 * its notifications. Shelving again moves `until`; the shelving ends with the episode.
 */
export function shelve(
  current: FanHealth | undefined,
  deviceID: string,
  shelving: { until: number; by: string; note?: string | undefined },
  now: number,
): Evaluation {
  if (current === undefined) throw new HealthNotFoundError(deviceID);
  if (shelving.until <= now) throw new InputError(`until (${iso(shelving.until)}) is not in the future`, "until");
  const open = current.tracker.state;
  if (open !== "warning" && open !== "alarm")
    throw new HealthConflictError(
      `fan "${deviceID}" has no open warning or alarm to shelve: it is ${current.record.state}`,
    );
  const w = work(current, now);
  const until = iso(shelving.until);
  Object.assign(w.record, { shelvedUntil: until, shelvedBy: shelving.by });
  emit(w, "shelved", now, { until, by: shelving.by, ...(shelving.note === undefined ? {} : { note: shelving.note }) });
  return done(w);
}

export interface MaintenancePlan {
  /** The window, wall clock (ms): from < until, until in the future. */
  from: number;
  until: number;
  by: string;
  note?: string | undefined;
}

/**
 * Puts the fan in a maintenance window, planned or under way, whatever its state: what happens
 * within it (by reading time) is recorded and `muted`. A new window replaces the fan's window;
 * the same window again changes nothing (undefined: a retried request makes no second transition).
 */
export function maintain(
  current: FanHealth | undefined,
  deviceID: string,
  plan: MaintenancePlan,
  now: number,
): Evaluation | undefined {
  if (current === undefined) throw new HealthNotFoundError(deviceID, "deviceIDs");
  if (plan.until <= plan.from)
    throw new InputError(
      `the maintenance window ends (${iso(plan.until)}) before it starts (${iso(plan.from)})`,
      "until",
    );
  if (plan.until <= now) throw new InputError(`until (${iso(plan.until)}) is not in the future`, "until");
  const window = { from: iso(plan.from), until: iso(plan.until), by: plan.by, note: plan.note ?? null };
  const known = current.record.maintenance;
  if (
    known !== null &&
    known.from === window.from &&
    known.until === window.until &&
    known.by === window.by &&
    known.note === window.note
  )
    return undefined;
  const w = work(current, now);
  w.record.maintenance = window;
  emit(w, "maintenance", now, {
    from: window.from,
    until: window.until,
    by: plan.by,
    ...(plan.note === undefined ? {} : { note: plan.note }),
  });
  return done(w);
}

/**
 * Ends a shelving or maintenance window whose `until` has passed (wall clock): the fields are
 * cleared and, while an episode is open or the fan silent (and nothing else mutes it), a `resumed`
 * transition says that its notifications resume. Undefined when nothing has expired.
 */
export function expire(current: FanHealth, now: number): Evaluation | undefined {
  const r = current.record;
  const shelvingEnds = r.shelvedUntil !== null && Date.parse(r.shelvedUntil) <= now;
  const windowEnds = r.maintenance !== null && Date.parse(r.maintenance.until) <= now;
  if (!shelvingEnds && !windowEnds) return undefined;
  const w = work(current, now);
  if (shelvingEnds) Object.assign(w.record, { shelvedUntil: null, shelvedBy: null });
  if (windowEnds) {
    w.record.maintenance = null;
    relearn(w, "maintenance");
  }
  const open = w.tracker.state === "warning" || w.tracker.state === "alarm" || w.record.state === "silent";
  if (open && mutedBy(w.record, now, now) === undefined) emit(w, "resumed", now);
  return done(w);
}

/** The timer's look at a fan: expired shelving and maintenance windows, then silence. Undefined when nothing changes. */
export function sweepFan(
  current: FanHealth,
  now: number,
  policy: HealthPolicy = DEFAULT_POLICY,
  judgeSilence = true,
): Evaluation | undefined {
  const expired = expire(current, now);
  const silent = judgeSilence ? checkSilence(expired?.next ?? current, now, policy) : undefined;
  if (silent === undefined) return expired;
  return { next: silent.next, transitions: [...(expired?.transitions ?? []), ...silent.transitions] };
}

/**
 * A fan back from maintenance, or with a finding, is a new fan: its baseline is learnt again from
 * its next readings (meanwhile warnings come from the fleet's ranges).
 */
export function relearn(w: Work, reason: "finding" | "maintenance"): void {
  if (w.tracker.baseline === undefined) return;
  w.tracker.baseline = newBaseline(w.now, reason);
  w.tracker.drift = undefined;
}

/** A change being made to a fan: episode-notes.ts makes its changes with it too. */
export interface Work {
  record: HealthRecord;
  tracker: Tracker;
  transitions: AlarmTransition[];
  /** No prediction evaluated yet: the first one sets the smoothed probability outright. */
  fresh: boolean;
  /** The health process's clock (arrival time): whether the fan is shelved is judged on it. */
  now: number;
  /**
   * The model of the prediction being evaluated (null: it named none); undefined outside a
   * prediction (silence, actions, notes, sensor notices), whose transitions keep the record's.
   */
  scoredBy?: string | null | undefined;
}

/** A change of a stored fan: copies, so that the caller's state is left as it was. */
export function work(current: FanHealth, now: number): Work {
  return { record: { ...current.record }, tracker: copyTracker(current.tracker), transitions: [], fresh: false, now };
}

export function done(w: Work): Evaluation {
  return { next: { record: w.record, tracker: w.tracker }, transitions: w.transitions };
}

function fresh(deviceID: string, at: number, now: number): Work {
  const tracker = newTracker(at, now, at);
  const record = newHealthRecord(deviceID, iso(at));
  return { record, tracker, transitions: [], fresh: true, now };
}

/**
 * A reading of the fan arrived (a prediction or a notice) at reading time `inputAt`: the reading
 * time it counts at, or undefined when it is a replay (or not this fan's) and is skipped. Wakes a
 * silent fan and moves the fan's reading time on.
 */
function arrive(
  w: Work,
  deviceID: string,
  ofDevice: string,
  inputAt: number,
  key: [number, number],
  now: number,
  policy: HealthPolicy,
): number | undefined {
  if (!Number.isFinite(inputAt) || ofDevice !== deviceID) return undefined;
  const at = Math.min(inputAt, now + policy.maxAheadMs);
  const t = w.tracker;
  const lastAt = t.lastAt === null ? null : t.base + t.lastAt;
  if (lastAt !== null && at < lastAt) return undefined; // a replay (connector retry) or a late straggler: trends move forwards only
  const [k1, k2] = key;
  if (lastAt === at) {
    const keys = t.lastKeys;
    for (let i = 0; i + 1 < keys.length; i += 2) if (keys[i] === k1 && keys[i + 1] === k2) return undefined;
    if (keys.length < 128) t.lastKeys = [...keys, k1, k2];
  } else t.lastKeys = [k1, k2];

  if (now > t.base + t.arrivedAt) t.arrivedAt = now - t.base;
  if (w.record.state === "silent") {
    Object.assign(w.record, {
      state: t.state,
      since: iso(t.base + t.stateSince),
      severity: severityOf(w.record, t.state),
    });
    emit(w, t.state, at);
  }
  if (lastAt !== null) {
    const gap = at - lastAt;
    // Whole milliseconds: what the eta needs, and an integer is a fraction of the cost of a fraction to store.
    t.dt = Math.round(t.dt === 0 ? gap : t.dt + 0.1 * (gap - t.dt));
  }
  rebase(t, at);
  t.lastAt = at - t.base;
  return at;
}

/**
 * A reading predict could not score: it counts towards an `implausible` sensor issue, and shows
 * the fan is reporting (it is not silent), but it is no evidence about the fan itself.
 */
function stepNotice(w: Work, deviceID: string, input: NoticeInput, now: number, policy: HealthPolicy): void {
  const n = input.notice;
  const at = arrive(w, deviceID, n.deviceID, input.at, noticeKey(n), now, policy);
  if (at === undefined) return;
  // Not a model's verdict: a sensor issue it opens keeps the record's model.
  w.scoredBy = undefined;
  const t = w.tracker;
  const { track, finding } = noteImplausible(
    t.sensors ?? newSensorTrack(),
    n.implausible.sensor,
    n.implausible.value,
    at,
    policy,
  );
  t.sensors = track;
  if (finding !== undefined) openSensorIssue(w, finding, at);
}

function step(w: Work, deviceID: string, input: HealthInput, now: number, policy: HealthPolicy): void {
  const p = input.prediction;
  const at = arrive(w, deviceID, p.deviceID, input.at, predictionKey(p), now, policy);
  if (at === undefined) return;
  w.scoredBy = p.model ?? null;
  const t = w.tracker;
  const idx = t.n++;

  // The sensors first: a reading that shows a sensor stuck is no evidence about the fan already.
  if (p.reading !== undefined) {
    const { track, finding } = noteReading(t.sensors ?? newSensorTrack(), p.reading, policy);
    t.sensors = track;
    if (finding !== undefined) openSensorIssue(w, finding, at);
    else if (w.record.sensorIssue != null && sensorsBelievable(track, policy)) clearSensorIssue(w, at);
  }
  // A sensor under an issue is not believed: a fault the model blames on it does not count
  // towards an alarm, and its values leave no exceedances for a warning. The other sensors, and
  // faults blamed on them, count as ever.
  const distrusted = w.record.sensorIssue?.sensor;
  const fault = p.fault === 1 && (distrusted === undefined || p.cause !== distrusted);
  t.flags = ((t.flags << 1) | (fault ? 1 : 0)) & ((1 << policy.alarmWindow) - 1);
  t.healthyRun = fault ? 0 : t.healthyRun + 1;
  // Six decimals, as score gives them: the record is read by people, and the rounding is far below any threshold.
  w.record.probability =
    Math.round(
      (w.fresh ? p.probability : w.record.probability + policy.smoothing * (p.probability - w.record.probability)) *
        1e6,
    ) / 1e6;
  w.fresh = false;
  if (fault) {
    t.lastFaultAt = at - t.base;
    if (p.cause !== undefined) t.lastCause = p.cause;
    // The average starts afresh with the first fault after a whole window of healthy predictions.
    if (t.flags >> 1 === 0) t.contributions = null;
    if (p.contributions !== undefined)
      t.contributions =
        t.contributions === null
          ? round6(p.contributions)
          : round6(blend(t.contributions, p.contributions, 1 / policy.alarmWindow));
  }
  if (p.reading !== undefined) {
    const exceeded = recordExceedances(
      t,
      distrusted === undefined ? p.reading : believed(p.reading, distrusted, policy),
      idx,
      at,
      policy,
    );
    if (policy.baselineReadings > 0) followBaseline(w, p.reading, exceeded > 0, idx, at, policy);
    else if (t.baseline !== undefined) {
      // Baselines turned off (HEALTH_BASELINE_READINGS=0): what was learnt goes, and nothing of it decides.
      t.baseline = undefined;
      t.drift = undefined;
    }
  }

  decide(w, idx, at, policy);
}

/**
 * The fan's own baseline and the drift against it (baseline.ts, drift.ts). The baseline learns
 * only what looks healthy: no episode open, no sensor under an issue, every sensor within its
 * fleet range and, once it is used, every drift statistic below half its threshold.
 */
function followBaseline(
  w: Work,
  reading: PerSensor,
  exceeded: boolean,
  idx: number,
  at: number,
  policy: HealthPolicy,
): void {
  const t = w.tracker;
  const baseline = t.baseline ?? newBaseline(at, "new");
  const distrusted = w.record.sensorIssue?.sensor;
  const healthy = !exceeded && distrusted === undefined && t.state !== "warning" && t.state !== "alarm";
  if (isReady(baseline)) {
    const drift = detect(t.drift ?? newDrift(), baseline, reading, idx, policy, distrusted);
    t.drift = drift;
    if (healthy && idx % READY_LEARN_EVERY === 0 && inControl(drift, policy))
      t.baseline = learn(baseline, reading, at, policy);
  } else if (healthy) t.baseline = learn(baseline, reading, at, policy);
  else t.baseline = baseline;
}

/**
 * The sides drifting from the fan's own baseline (none while it has none): to open a warning, a
 * side at h whose rate is known well enough for an eta; an open episode goes on while any side
 * is above h/2 (hysteresis: S wandering about h must not open and clear episode after episode).
 */
function driftNow(t: Tracker, idx: number, policy: HealthPolicy): readonly number[] {
  if (t.drift === undefined || !isReady(t.baseline)) return NO_SIDES;
  return t.state === "warning" || t.state === "alarm"
    ? driftingSides(t.drift, policy.driftH / 2)
    : warningSides(t.drift, idx, policy);
}

/** The reading with `sensor`'s value replaced by the middle of its healthy range: a value that is evidence of nothing. */
function believed(reading: PerSensor, sensor: FeatureName, policy: HealthPolicy): PerSensor {
  const range = policy.healthyRanges[sensor];
  return { ...reading, [sensor]: (range.min + range.max) / 2 };
}

/**
 * Opens the fan's sensor issue (one at a time: a second sensor going wrong while one is open
 * keeps the first, and keeps the issue from clearing). Its own field and transitions (`sensor`),
 * beside the fan's state, which it leaves as it is.
 */
function openSensorIssue(w: Work, finding: SensorFinding, at: number): void {
  if (w.record.sensorIssue != null) return;
  const issue = { ...finding, since: iso(at) };
  w.record.sensorIssue = issue;
  emit(w, "sensor", at, { sensorIssue: issue });
}

function clearSensorIssue(w: Work, at: number): void {
  const issue = w.record.sensorIssue;
  if (issue == null) return;
  w.record.sensorIssue = null;
  emit(w, "sensor-cleared", at, { sensorIssue: issue });
}

function decide(w: Work, idx: number, at: number, policy: HealthPolicy): void {
  const t = w.tracker;
  const alarmNow = popcount(t.flags) >= policy.alarmCount;
  const drifting = driftNow(t, idx, policy);
  const warnSide = drifting.length > 0 ? (drifting[0] as number) : warningSide(t, idx, policy);
  const quietSince = (time: number | null) => time === null || at - (t.base + time) >= policy.quietMs;
  switch (t.state) {
    case "ok":
    case "cleared":
      if (alarmNow) {
        open(w, at);
        raiseAlarm(w, idx, at, policy);
      } else if (warnSide >= 0 && popcount(t.flags) < policy.alarmCount - 1) {
        // One fault short of an alarm, the next reading decides: a sudden fault raises its alarm
        // alone rather than a warning and an alarm two seconds apart.
        open(w, at);
        raiseWarning(w, drifting, warnSide, idx, at, policy);
      } else if (t.state === "cleared" && at - (t.base + t.stateSince) >= policy.clearedHoldMs) {
        t.contributions = null;
        enter(w, "ok", at, {
          alarmId: null,
          severity: "none",
          cause: null,
          contributions: null,
          ...NO_WARNING,
          acknowledged: false,
          acknowledgedBy: null,
          note: null,
        });
      }
      return;
    case "warning":
      if (alarmNow) raiseAlarm(w, idx, at, policy);
      else if (
        warnSide < 0 &&
        t.healthyRun >= policy.clearCount &&
        quietSince(t.lastFaultAt) &&
        quietSince(t.lastExceedAt)
      )
        enter(w, "cleared", at, { severity: "none", ...NO_WARNING });
      else {
        // Nothing calls for the warning any more, but it has not cleared yet (recent faults or
        // exceedances): a fleet-range eta follows its runs as ever; a drift's stays as it was.
        if (warnSide >= 0) describeWarning(w, drifting, warnSide, idx, at, policy);
        else if (w.record.basis !== "baseline") Object.assign(w.record, etaFields(fleetEta(t, at, policy)));
        escalate(w, w.record.eta == null ? null : Date.parse(w.record.eta), at, policy);
      }
      return;
    case "alarm":
      // A wearing fan's first alarms can come with healthy stretches between them: while a sensor
      // still leaves its range (a warning's worth of exceedances, or any within the quiet period)
      // the episode goes on rather than clearing and raising again.
      if (warnSide < 0 && t.healthyRun >= policy.clearCount && quietSince(t.lastFaultAt) && quietSince(t.lastExceedAt))
        enter(w, "cleared", at, { severity: "none", ...NO_WARNING });
      else if (t.contributions !== null)
        Object.assign(w.record, { contributions: rounded(t.contributions), cause: largest(t.contributions) });
      return;
  }
}

/** A new episode: its id is the fan and the reading time that opened it, the same on every replica. */
function open(w: Work, at: number): void {
  const alarmId = `${w.record.deviceID}@${iso(at)}`;
  w.record.alarmId = alarmId;
  w.tracker.episodes = [...w.tracker.episodes, alarmId].slice(-RECENT_EPISODES);
  w.record.assignedTo = null;
  w.record.finding = null;
  w.record.acknowledged = false;
  w.record.acknowledgedBy = null;
  w.record.note = null;
  w.record.shelvedUntil = null;
  w.record.shelvedBy = null;
}

function raiseAlarm(w: Work, idx: number, at: number, policy: HealthPolicy): void {
  const t = w.tracker;
  // Critical when more than one sensor is out of its healthy range within the alarm window.
  const severity: Severity = sensorsOutOfRange(t, idx, policy.alarmWindow) >= 2 ? "critical" : "major";
  const contributions = t.contributions === null ? null : rounded(t.contributions);
  const cause = t.contributions !== null ? largest(t.contributions) : (t.lastCause ?? readingCause(t));
  enter(w, "alarm", at, {
    severity,
    cause,
    contributions,
    ...NO_WARNING,
    acknowledged: false,
    acknowledgedBy: null,
    note: null,
  });
}

/** What a record says of a warning, none of which an alarm or a healthy fan has. */
const NO_WARNING = { eta: null, etaInterval: null, basis: null, sensors: null } as const;

function raiseWarning(
  w: Work,
  drifting: readonly number[],
  side: number,
  idx: number,
  at: number,
  policy: HealthPolicy,
): void {
  enter(w, "warning", at, {
    severity: "minor",
    contributions: null,
    ...describe(w.tracker, drifting, side, idx, at, policy),
  });
  // An eta within the horizon already: the warning is escalated at once (its own transition, so
  // that every severity change of an open warning is an `escalated` one).
  escalate(w, w.record.eta == null ? null : Date.parse(w.record.eta), at, policy);
}

/** An open warning's cause, sensors, basis and eta, as they are now (no transition: the record follows them). */
function describeWarning(
  w: Work,
  drifting: readonly number[],
  side: number,
  idx: number,
  at: number,
  policy: HealthPolicy,
): void {
  Object.assign(w.record, describe(w.tracker, drifting, side, idx, at, policy));
}

/**
 * A warning judged against the fan's own baseline names every drifting sensor and extrapolates
 * their fitted lines; one from the fleet's ranges (the fan has no baseline yet, or its readings
 * left the fleet's range before its baseline saw a drift) names the side's sensor and
 * extrapolates its exceedances (trend.ts).
 */
function describe(
  t: Tracker,
  drifting: readonly number[],
  side: number,
  idx: number,
  at: number,
  policy: HealthPolicy,
) {
  if (drifting.length > 0 && t.baseline !== undefined && t.drift !== undefined) {
    const sensors = [...new Set(drifting.map(sensorOfSide))];
    // A drift whose rate is not known (an open episode's side above h/2 but falling): the fleet's trend, if any.
    const eta = driftEta(t.baseline, t.drift, drifting, idx, at, t.dt, policy) ?? fleetEta(t, at, policy);
    return { cause: sensors[0] as FeatureName, sensors, basis: "baseline" as const, ...etaFields(eta) };
  }
  const cause = sensorOfSide(side);
  return { cause, sensors: [cause], basis: "fleet-range" as const, ...etaFields(fleetEta(t, at, policy)) };
}

function fleetEta(t: Tracker, at: number, policy: HealthPolicy): Eta | null {
  const eta = estimateEta(t, at, policy);
  return eta === null ? null : fleetEtaInterval(at, eta);
}

function etaFields(eta: Eta | null) {
  return eta === null
    ? { eta: null, etaInterval: null }
    : { eta: iso(eta.at), etaInterval: { from: iso(eta.from), to: iso(eta.to), coverage: eta.coverage } };
}

/** A minor warning whose eta (ms) is within the escalation horizon of `at` becomes major: once per episode. */
function escalate(w: Work, eta: number | null, at: number, policy: HealthPolicy): void {
  if (eta === null || w.record.severity !== "minor" || eta - at > policy.escalationHorizonMs) return;
  w.record.severity = "major";
  emit(w, "escalated", at);
}

function enter(
  w: Work,
  state: "ok" | "warning" | "alarm" | "cleared",
  at: number,
  fields: Partial<HealthRecord>,
): void {
  Object.assign(w.record, fields, { state, since: iso(at) });
  w.tracker.state = state;
  w.tracker.stateSince = at - w.tracker.base;
  emit(w, state, at);
  // The shelving ends with its episode.
  if (state === "cleared") Object.assign(w.record, { shelvedUntil: null, shelvedBy: null });
}

/**
 * Never muted: what people do and note and the end of what they did; and the end of an episode,
 * news to whoever was told of its alarm before the fan was shelved or taken into maintenance (a
 * receiver told of nothing gets a clear it can drop).
 */
const NEVER_MUTED: ReadonlySet<HealthEvent> = new Set<HealthEvent>([
  "acknowledged",
  "shelved",
  "maintenance",
  "resumed",
  "cleared",
  "sensor-cleared",
  ...NOTE_EVENTS,
]);

/** Records a transition of the change: its id is the fan, its time and the fan's next sequence number. */
export function emit(
  w: Work,
  event: HealthEvent,
  at: number,
  extra: Omit<TransitionChange, "event" | "at" | "id" | "site" | "muted"> = {},
): void {
  const r = w.record;
  // A prediction moved the fan: its model is the record's now. One without a model un-names an
  // earlier one rather than leave it blamed, and leaves a record that never named one as it was.
  if (w.scoredBy != null || (w.scoredBy === null && r.model != null)) r.model = w.scoredBy;
  const seq = w.tracker.seq++;
  const muted = NEVER_MUTED.has(event) ? undefined : mutedBy(r, at, w.now);
  w.transitions.push(
    transitionFrom(r, {
      event,
      at: iso(at),
      id: `${r.deviceID}:${at}:${seq}`,
      ...extra,
      ...(muted === undefined ? {} : { muted }),
    }),
  );
}

/**
 * Why a transition at `at` (its time: reading time for the rules) is not to be notified: the
 * fan's maintenance window holds `at`, or it is shelved by the clock (`now`). Transitions are rare:
 * parsing the times here costs nothing per prediction.
 */
export function mutedBy(record: HealthRecord, at: number, now: number): MutedBy | undefined {
  const window = record.maintenance;
  if (window !== null && Date.parse(window.from) <= at && at < Date.parse(window.until)) return "maintenance";
  if (record.shelvedUntil !== null && now < Date.parse(record.shelvedUntil)) return "shelved";
  return undefined;
}

function severityOf(record: HealthRecord, state: Tracker["state"]): Severity {
  if (state === "ok" || state === "cleared") return "none";
  return record.severity === "none" ? (state === "warning" ? "minor" : "major") : record.severity;
}

/** Without contributions: the sensor with the longest run beyond its healthy range. */
function readingCause(t: Tracker): FeatureName | null {
  const side = longestRunSide(t);
  return side < 0 ? null : sensorOfSide(side);
}

function blend(old: PerSensor, next: PerSensor, weight: number): PerSensor {
  const out = { ...old };
  for (const f of FEATURES) out[f] = old[f] + weight * (next[f] - old[f]);
  return out;
}

function rounded(c: PerSensor): PerSensor {
  const out = { ...c };
  for (const f of FEATURES) out[f] = Math.round(c[f] * 1e4) / 1e4;
  return out;
}

/** Six decimals, as score gives contributions: the stored average need not be finer. */
function round6(c: PerSensor): PerSensor {
  const out = { ...c };
  for (const f of FEATURES) out[f] = Math.round(c[f] * 1e6) / 1e6;
  return out;
}

function largest(c: PerSensor): FeatureName {
  let best: FeatureName = FEATURES[0];
  for (const f of FEATURES) if (c[f] > c[best]) best = f;
  return best;
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}
