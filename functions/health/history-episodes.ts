import { z } from "zod";
import { HEALTH_EVENTS, NOTE_EVENTS, SEVERITIES, type Severity } from "../../lib/domain/health.js";
import { RECENT_EPISODES } from "./tracker.js";

/**
 * A fan's transitions grouped into episodes (pure: history.ts reads, this groups). An episode is
 * every transition and action with one alarmId, from the warning or alarm that opened it to its
 * `cleared`, and whatever was recorded about it later (a comment, an assignee, a finding).
 */

/**
 * A transition as the stream holds it, read leniently: the fields grouping needs are checked, the
 * rest kept as they are, so that an event this version does not know yet (added by a newer
 * health) is shown rather than breaking the history.
 */
export const StoredTransitionSchema = z.looseObject({
  id: z.string().min(1),
  event: z.string().min(1),
  deviceID: z.string().min(1),
  alarmId: z.string().nullable(),
  at: z.string(),
  state: z.string().optional(),
  severity: z.string().optional(),
  cause: z.string().nullable().optional(),
});
export type StoredTransition = z.infer<typeof StoredTransitionSchema>;

/** A transition and where it is in the stream. */
export interface Located {
  seq: number;
  transition: StoredTransition;
}

/**
 * The events that change a fan's state. Each carries the fan's alarmId of that moment, so one
 * with another alarmId before an episode's first transition proves that the episode had not
 * opened yet: everything of it has been read.
 */
const STATE_EVENTS: ReadonlySet<string> = new Set(["ok", "warning", "alarm", "cleared", "silent", "escalated"]);

export interface EpisodeGroup {
  alarmId: string;
  /** The stream sequence of its first transition read. */
  firstSeq: number;
  /** When it opened: the time in its alarmId (the reading that opened it), else its first transition's. */
  opened: string;
  transitions: StoredTransition[];
}

export interface Grouped {
  /** Newest first (by their first transition in the stream). */
  episodes: EpisodeGroup[];
  /** Transitions without an alarmId (back to ok after a clear, silent or maintenance while no episode was open), with their place. */
  other: Located[];
}

/** Groups messages read in stream order (oldest first) by alarmId. */
export function groupTransitions(messages: readonly Located[]): Grouped {
  const byId = new Map<string, EpisodeGroup>();
  const other: Located[] = [];
  for (const m of messages) {
    const { alarmId } = m.transition;
    if (alarmId === null) {
      other.push(m);
      continue;
    }
    let episode = byId.get(alarmId);
    if (episode === undefined) {
      episode = { alarmId, firstSeq: m.seq, opened: openedAt(alarmId, m.transition.at), transitions: [] };
      byId.set(alarmId, episode);
    }
    episode.transitions.push(m.transition);
  }
  const episodes = [...byId.values()].sort((a, b) => b.firstSeq - a.firstSeq);
  return { episodes, other };
}

/**
 * Which episodes have been read whole, given that `messages` is every message of the fan from
 * some point on (oldest first) and `fromStart` whether that point is the start of what is asked
 * for. An episode is whole when its first transition read is a state event (an action comes only
 * after its episode opened) and a state event of another alarmId comes before it (the fan was not
 * in this episode then, and never is again once it left it).
 */
export function wholeEpisodes(messages: readonly Located[], fromStart: boolean): (episode: EpisodeGroup) => boolean {
  if (fromStart) return () => true;
  const oldestState = messages.find((m) => STATE_EVENTS.has(m.transition.event));
  return (episode) =>
    oldestState !== undefined &&
    oldestState.transition.alarmId !== episode.alarmId &&
    oldestState.seq < episode.firstSeq &&
    STATE_EVENTS.has(episode.transitions[0]?.event ?? "");
}

/**
 * Which episodes of `episodes` (grouped from messages read up to some point of the stream) can
 * have nothing after that point: RECENT_EPISODES others opened after each, so the fan no longer
 * remembers it and no action can name it any more (episode-notes.ts). The others may have
 * transitions beyond what was read (a late finding, their `cleared`).
 */
export function settledEpisodes(episodes: readonly EpisodeGroup[]): (episode: EpisodeGroup) => boolean {
  const openings = episodes
    .filter((e) => STATE_EVENTS.has(e.transitions[0]?.event ?? ""))
    .map((e) => e.firstSeq)
    .sort((a, b) => b - a);
  // The first sequence of the RECENT_EPISODES-th newest opening: an episode opened before it is settled.
  const line = openings[RECENT_EPISODES - 1] ?? -Infinity;
  return (episode) => episode.firstSeq < line;
}

/** What an episode is, summed up from its transitions (oldest first). */
export interface EpisodeSummary {
  state: string;
  severity: Severity;
  cause: string | null;
  /** The model that raised it: the first warning's or alarm's `model`, null when that named none or was not read. */
  model: string | null;
  closed: string | null;
}

/**
 * The events whose state, severity and cause are their episode's own: every known event but the
 * notes. A note carries the fan's record of its moment (transitionFrom), which for a note on an
 * older episode is another episode's; an event this version does not know could be either, so it
 * is not trusted with the summary.
 */
const OWN_STATE_EVENTS: ReadonlySet<string> = new Set(HEALTH_EVENTS.filter((e) => !NOTE_EVENTS.has(e)));

/**
 * The episode's state now (its last own-state event's, OWN_STATE_EVENTS), the highest severity it
 * reached, the cause of its latest such transition that named one, the model that raised it, and
 * when it closed (its last `cleared`, null while open).
 */
export function summarise(transitions: readonly StoredTransition[]): EpisodeSummary {
  let state = "unknown";
  let severity: Severity = "none";
  let cause: string | null = null;
  let closed: string | null = null;
  let model: string | null | undefined;
  for (const t of transitions) {
    if (!OWN_STATE_EVENTS.has(t.event)) continue;
    if (model === undefined && (t.event === "warning" || t.event === "alarm"))
      model = typeof t.model === "string" ? t.model : null;
    if (t.state !== undefined) state = t.state;
    const rank = SEVERITIES.indexOf(t.severity as Severity);
    if (rank > SEVERITIES.indexOf(severity)) severity = SEVERITIES[rank] as Severity;
    if (t.cause !== undefined && t.cause !== null) cause = t.cause;
    if (t.event === "cleared") closed = t.at;
  }
  return { state, severity, cause, model: model ?? null, closed };
}

/**
 * The time an episode opened: its alarmId is the fan and the reading time that opened it
 * (`7@2026-11-27T13:26:40.000Z`, evaluator.ts), else the first transition read of it.
 */
function openedAt(alarmId: string, firstAt: string): string {
  const ms = episodeOpenedMs(alarmId);
  return ms === undefined ? firstAt : new Date(ms).toISOString();
}

/** The reading time (ms) in an alarmId, or undefined for an id not made that way. */
export function episodeOpenedMs(alarmId: string): number | undefined {
  const at = alarmId.slice(alarmId.lastIndexOf("@") + 1);
  const ms = Date.parse(at);
  return /^\d{4}-\d\d-\d\dT/.test(at) && Number.isFinite(ms) ? ms : undefined;
}
