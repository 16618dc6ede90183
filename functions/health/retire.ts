import { done, emit, work, type Evaluation, type FanHealth } from "./evaluator.js";
import { isoTime as iso } from "./iso-time.js";

/** The note on the transitions that close a retired fan's alerts: why they ended without a reading. */
export const RETIRED_NOTE = "the fan was retired from the device registry";

/**
 * Closes what a retired fan leaves open: its sensor issue (`sensor-cleared`) and its episode or its
 * silence (`cleared`), the transitions the notifier already resolves FanSensor, FanWarning, FanAlarm
 * and FanSilent on. Health evaluates no prediction of a retired fan and never declares it silent, so
 * nothing else would ever close them. Undefined when nothing is open: the silence timer runs it on
 * every replica, and compare-and-set lets only the first write it.
 */
export function closeRetired(current: FanHealth, now: number): Evaluation | undefined {
  const r = current.record;
  const episodeOpen = r.state === "warning" || r.state === "alarm" || r.state === "silent";
  if (!episodeOpen && r.sensorIssue == null) return undefined;
  const w = work(current, now);
  const issue = w.record.sensorIssue;
  if (issue != null) {
    w.record.sensorIssue = null;
    emit(w, "sensor-cleared", now, { sensorIssue: issue, note: RETIRED_NOTE });
  }
  if (episodeOpen) {
    // As an episode that clears on its own, and its shelving ends with it.
    Object.assign(w.record, {
      state: "cleared",
      since: iso(now),
      severity: "none",
      eta: null,
      shelvedUntil: null,
      shelvedBy: null,
    });
    w.tracker.state = "cleared";
    w.tracker.stateSince = now - w.tracker.base;
    emit(w, "cleared", now, { note: RETIRED_NOTE });
  }
  return done(w);
}
