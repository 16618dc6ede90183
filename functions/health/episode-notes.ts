import type { FeatureName } from "../../lib/domain/features.js";
import type { FindingResult } from "../../lib/domain/health.js";
import { HealthConflictError, HealthNotFoundError, InputError } from "../../lib/errors.js";
import { done, emit, relearn, work, type Evaluation, type FanHealth } from "./evaluator.js";
import { isoTime as iso } from "./iso-time.js";
import { RECENT_EPISODES } from "./tracker.js";

/**
 * What people note about an episode (docs/health.md, "Actions"): a comment, an assignee, a
 * finding. Each names its episode by `alarmId`: the open one or one of the fan's recent ones
 * (tracker.episodes), since the usual finding comes after the repair, once the alarm has cleared.
 * They change no state and are never muted; each is one transition, at the clock's time, whose
 * `alarmId` is the episode noted. The record keeps the assignee and the last finding of the fan's
 * current (or last) episode only: a note on an older episode is in the history alone.
 */

export interface Comment {
  note: string;
  by: string;
}

export interface Assignment {
  to: string;
  by: string;
}

export interface FindingReport {
  result: FindingResult;
  part?: string | undefined;
  sensor?: FeatureName | undefined;
  note?: string | undefined;
  by: string;
}

/** A comment on the episode. */
export function comment(
  current: FanHealth | undefined,
  deviceID: string,
  alarmId: string,
  c: Comment,
  now: number,
): Evaluation {
  const fan = episodeOf(current, deviceID, alarmId);
  const w = work(fan.health, now);
  emit(w, "commented", now, { alarmId, by: c.by, note: c.note });
  return done(w);
}

/** Puts someone on the episode: the record's `assignedTo` while it is the fan's current (or last) one. */
export function assign(
  current: FanHealth | undefined,
  deviceID: string,
  alarmId: string,
  a: Assignment,
  now: number,
): Evaluation {
  const fan = episodeOf(current, deviceID, alarmId);
  const w = work(fan.health, now);
  if (fan.latest) w.record.assignedTo = a.to;
  emit(w, "assigned", now, { alarmId, by: a.by, to: a.to });
  return done(w);
}

/**
 * What was found: refused on an open episode nobody has acknowledged (someone must be on it
 * first; a finding is a label the model learns from). Another finding later replaces the record's,
 * and both stay in the history.
 */
export function recordFinding(
  current: FanHealth | undefined,
  deviceID: string,
  alarmId: string,
  f: FindingReport,
  now: number,
): Evaluation {
  const fan = episodeOf(current, deviceID, alarmId);
  if (fan.open && !fan.health.record.acknowledged)
    throw new HealthConflictError(
      `the ${fan.health.record.state} ${alarmId} of fan "${deviceID}" is open and not acknowledged: acknowledge it first, or record the finding once it has cleared`,
      "alarmId",
    );
  const w = work(fan.health, now);
  const at = iso(now);
  if (fan.latest)
    w.record.finding = {
      result: f.result,
      part: f.part ?? null,
      sensor: f.sensor ?? null,
      note: f.note ?? null,
      by: f.by,
      at,
    };
  // Someone looked at the fan (and, when something was found, repaired it): it is learnt afresh.
  if (fan.latest && f.result !== "not-checked") relearn(w, "finding");
  emit(w, "finding", now, {
    alarmId,
    by: f.by,
    result: f.result,
    ...(f.part === undefined ? {} : { part: f.part }),
    ...(f.sensor === undefined ? {} : { sensor: f.sensor }),
    ...(f.note === undefined ? {} : { note: f.note }),
  });
  return done(w);
}

/** The fan's most recent episode: the open or cleared one on the record, else the last one remembered. */
export function lastEpisode(health: FanHealth): string | null {
  return health.record.alarmId ?? health.tracker.episodes.at(-1) ?? null;
}

/** The fan, and where the episode `alarmId` stands: its latest one? still open? Unknown fan or episode: 404. */
function episodeOf(
  current: FanHealth | undefined,
  deviceID: string,
  alarmId: string,
): { health: FanHealth; latest: boolean; open: boolean } {
  if (current === undefined) throw new HealthNotFoundError(deviceID);
  const { record, tracker } = current;
  // The record's alarmId is kept apart: an entry stored before episodes were remembered has it only.
  if (alarmId !== record.alarmId && !tracker.episodes.includes(alarmId)) {
    const latest = lastEpisode(current);
    throw new InputError(
      `fan "${deviceID}" has no episode ${JSON.stringify(alarmId)} among its open and last ${RECENT_EPISODES} ones; ` +
        (latest === null ? "it has had none" : `its latest is ${JSON.stringify(latest)}`),
      "alarmId",
      { status: 404, code: "FANWATCH_HEALTH_NOT_FOUND" },
    );
  }
  const open = alarmId === record.alarmId && (tracker.state === "warning" || tracker.state === "alarm");
  return { health: current, latest: alarmId === lastEpisode(current), open };
}
