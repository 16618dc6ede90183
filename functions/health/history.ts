import { JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { EVIDENCE_STREAM, EvidenceMessageSchema, episodeEvidenceSubject } from "../../lib/nats/evidence.js";
import { HEALTH_EVENTS_STREAM, HEALTH_EVENTS_SUBJECTS, healthEventSubject } from "../../lib/nats/health-events.js";
import { BudgetExhaustedError } from "../../lib/errors.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { isApiError } from "../../lib/nats/jetstream.js";
import { fanSentSubjects, NOTIFIER_STREAM, NOTIFIER_SUBJECTS, SentRecordSchema } from "../../lib/nats/notifications.js";
import { readRange, sequenceAt, streamBounds, type ReadMessage } from "../../lib/nats/stream-reader.js";
import { encodeHistoryCursor, type HistoryQuery } from "./history-query.js";
import {
  episodeOpenedMs,
  groupTransitions,
  settledEpisodes,
  StoredTransitionSchema,
  summarise,
  wholeEpisodes,
  type EpisodeGroup,
  type Located,
  type StoredTransition,
} from "./history-episodes.js";

/**
 * GET /function/health/history: a fan's episodes, newest first, read from FAN_HEALTH_EVENTS (the
 * fan's subject), with the notifications sent for them (the notifier's delivery log in
 * FAN_NOTIFICATIONS) and how many readings of evidence each has (FAN_EVIDENCE).
 *
 * JetStream reads forward only, so a page walks back from the newest message in growing chunks of
 * stream sequences, each read forward (stream-reader.ts), until it has one whole episode more than
 * it lists, or reached the start (or `since`). It starts at the stream's end on every page, so an
 * action recorded on an old episode long after it closed (a finding) is shown with it; and it
 * reads at most HISTORY_MAX_READ messages, for at most WALK_SHARE of the call's time (the rest is
 * for the notifications and evidence of what it found): past either the answer says `truncated`
 * and its cursor goes on from where the reading stopped. Such a next page does not read what is
 * above that point again, so an episode there whose later transitions may lie above is `partial`.
 */
export const HISTORY_MAX_READ = 10_000;

/** The first chunk, in stream sequences (every fan's messages share them); each next one is four times as long. */
const FIRST_CHUNK = 4_096;

/** The share of the call's time the walk back may take. */
const WALK_SHARE = 0.6;

export interface Notification {
  target: string;
  event: string;
  transitionId: string;
  /** When the target took it. */
  at: string;
  /** `sent`, or `redriven` when it went out after `fanwatch notifications redrive`. */
  outcome: "sent" | "redriven";
  attempts: number;
}

export interface Episode {
  alarmId: string;
  opened: string;
  closed: string | null;
  state: string;
  severity: string;
  cause: string | null;
  /** The model that raised it: its opening warning's or alarm's `model`; null when not known. */
  model: string | null;
  transitions: StoredTransition[];
  findings: StoredTransition[];
  notifications: Notification[];
  evidence: { readings: number };
  /** True when transitions of it may be in what this page did not read (it goes on from a truncated one). */
  partial: boolean;
}

export interface HistoryAnswer {
  deviceID: string;
  episodes: Episode[];
  /** Transitions that belong to no episode (ok after a clear, silent or maintenance with none open), oldest first, on this page's stretch. */
  other: StoredTransition[];
  /** Where the next page starts; null on the last. */
  cursor: string | null;
  /** True when the page stopped at HISTORY_MAX_READ messages or out of time rather than at its limit: the cursor goes on. */
  truncated: boolean;
}

export interface HistorySource {
  js: JetStreamClient;
  jsm: JetStreamManager;
  site: string;
  /** The call's time (HEALTH_BUDGET_MS, or the caller's X-Timeout-Ms): every read waits within it. */
  deadline: Deadline;
}

/** The fan's history page, or undefined when the fan has no history at all. */
export async function readHistory(source: HistorySource, query: HistoryQuery): Promise<HistoryAnswer | undefined> {
  const { js, jsm, site, deadline } = source;
  const subject = healthEventSubject(site, query.deviceID);
  const bounds = await deadline
    .wait(streamBounds(jsm, HEALTH_EVENTS_STREAM), "NATS JetStream to answer a read")
    .catch(missingStream);
  if (bounds === undefined || bounds.messages === 0) return undefined;
  const low =
    query.since === undefined
      ? bounds.first
      : await sequenceAt(jsm, HEALTH_EVENTS_STREAM, HEALTH_EVENTS_SUBJECTS, query.since, deadline);
  const walkDeadline = new Deadline(deadline.remainingMs * WALK_SHARE, "a share of the call's time", "the history");
  const walk = await walkBack(js, jsm, subject, walkDeadline, {
    low,
    high: query.cursor?.readFrom ?? bounds.last + 1,
    before: query.cursor?.before ?? Infinity,
    limit: query.limit,
    since: query.since,
    until: query.until,
  });
  // Nothing on a first page: a fan with no history at all, unless it has some before `since`.
  if (walk.messages.length === 0 && query.cursor === undefined) {
    if (low <= bounds.first) return undefined;
    const any = await readRange(js, jsm, HEALTH_EVENTS_STREAM, subject, { from: 1, before: low, max: 1 }, deadline);
    if (any.messages.length === 0) return undefined;
  }
  const page = walk.eligible.slice(0, query.limit);
  const oldest = page.at(-1);
  const more = walk.eligible.length > query.limit;
  let cursor: string | null = null;
  if (walk.truncated)
    cursor = encodeHistoryCursor({
      before: oldest?.firstSeq ?? query.cursor?.before ?? walk.readTo,
      readFrom: walk.readTo,
    });
  else if (more && oldest !== undefined)
    cursor = encodeHistoryCursor({ before: oldest.firstSeq, readFrom: query.cursor?.readFrom });
  // Transitions of no episode on this page's stretch: from where the next page starts to where this one did.
  const floor = walk.truncated ? walk.readTo : cursor === null ? 0 : (oldest as EpisodeGroup).firstSeq;
  const ceiling = query.cursor?.before ?? Infinity;
  const other = walk.other
    .filter((m) => m.seq >= floor && m.seq < ceiling && within(m.transition.at, query.since, query.until))
    .map((m) => m.transition);
  const [notifications, evidence] = await Promise.all([
    sentFor(source, query.deviceID, page),
    Promise.all(page.map((e) => evidenceCount(source, query.deviceID, e.alarmId))),
  ]);
  // Read from below a truncated page's end: what is above it was not read again.
  const settled =
    query.cursor?.readFrom === undefined ? () => true : settledEpisodes(groupTransitions(walk.messages).episodes);
  const episodes = page.map((group, i): Episode => {
    const summary = summarise(group.transitions);
    return {
      alarmId: group.alarmId,
      opened: group.opened,
      closed: summary.closed,
      state: summary.state,
      severity: summary.severity,
      cause: summary.cause,
      model: summary.model,
      transitions: group.transitions,
      findings: group.transitions.filter((t) => t.event === "finding"),
      notifications: notifications.get(group.alarmId) ?? [],
      evidence: { readings: evidence[i] ?? 0 },
      partial: !settled(group),
    };
  });
  return { deviceID: query.deviceID, episodes, other, cursor, truncated: walk.truncated };
}

/** How far before the time in an alarmId its opening transition may have been stored (a device clock ahead). */
const OPENING_LOOK_BACK_MS = 3_600_000;

/** The fan's transitions read from there: an hour of a fan's transitions is far fewer. */
const OPENING_MAX_READ = 1_000;

/**
 * Whether the fan's history holds the episode `alarmId`: its opening transition, read from a
 * little before the reading time its id names (evaluator.ts), at most OPENING_MAX_READ messages of
 * the fan on. An id health did not make is no episode.
 */
export async function episodeInHistory(source: HistorySource, deviceID: string, alarmId: string): Promise<boolean> {
  const opened = episodeOpenedMs(alarmId);
  if (opened === undefined) return false;
  const { js, jsm, site, deadline } = source;
  const from = await sequenceAt(
    jsm,
    HEALTH_EVENTS_STREAM,
    HEALTH_EVENTS_SUBJECTS,
    opened - OPENING_LOOK_BACK_MS,
    deadline,
  ).catch(missingStream);
  if (from === undefined) return false;
  const read = await readRange(
    js,
    jsm,
    HEALTH_EVENTS_STREAM,
    healthEventSubject(site, deviceID),
    { from, before: Infinity, max: OPENING_MAX_READ },
    deadline,
  );
  return read.messages.some((m) => located(m).some((l) => l.transition.alarmId === alarmId));
}

interface Walk {
  /** Whole episodes that opened before the cursor and within since/until, newest first. */
  eligible: EpisodeGroup[];
  other: Located[];
  messages: Located[];
  /** The lowest sequence read from: a truncated page's next one reads below it. */
  readTo: number;
  truncated: boolean;
}

async function walkBack(
  js: JetStreamClient,
  jsm: JetStreamManager,
  subject: string,
  deadline: Deadline,
  w: {
    low: number;
    high: number;
    before: number;
    limit: number;
    since: number | undefined;
    until: number | undefined;
  },
): Promise<Walk> {
  let messages: Located[] = [];
  let hi = w.high;
  let chunk = FIRST_CHUNK;
  let truncated = false;
  // Messages read and kept, and read in a chunk that held too many and was read again shorter.
  let kept = 0;
  let wasted = 0;
  for (;;) {
    const lo = Math.max(w.low, hi - chunk);
    const room = HISTORY_MAX_READ - kept;
    let read;
    try {
      read = await readRange(js, jsm, HEALTH_EVENTS_STREAM, subject, { from: lo, before: hi, max: room }, deadline);
    } catch (error) {
      // Out of time: a page of what was read, when something was (else the 503).
      if (!(error instanceof BudgetExhaustedError) || messages.length === 0) throw error;
      truncated = true;
      break;
    }
    if (read.more) {
      // More in this chunk than may still be read: a shorter one, or stop here.
      wasted += read.messages.length;
      if (hi - lo > 1 && wasted < HISTORY_MAX_READ) {
        chunk = Math.max(1, Math.floor((hi - lo) / 2));
        continue;
      }
      truncated = true;
      break;
    }
    kept += read.messages.length;
    messages = [...read.messages.flatMap(located), ...messages];
    hi = lo;
    const reachedStart = lo <= w.low;
    const { eligible } = select(messages, reachedStart, w);
    if (reachedStart || eligible.length > w.limit) break;
    // Within 5% of the bound: stop rather than creep towards it in ever shorter chunks.
    if (kept >= 0.95 * HISTORY_MAX_READ) {
      truncated = true;
      break;
    }
    // Four times as long, or as long as what may still be read would be at the fan's density so far.
    const density = kept / (w.high - hi);
    chunk =
      density > 0
        ? Math.max(1, Math.min(chunk * 4, Math.floor((0.9 * (HISTORY_MAX_READ - kept)) / density)))
        : chunk * 4;
  }
  const { eligible, other } = select(messages, hi <= w.low, w);
  return { eligible, other, messages, readTo: Math.max(1, hi), truncated };
}

function select(
  messages: readonly Located[],
  fromStart: boolean,
  w: { before: number; since: number | undefined; until: number | undefined },
): { eligible: EpisodeGroup[]; other: Located[] } {
  const { episodes, other } = groupTransitions(messages);
  const whole = wholeEpisodes(messages, fromStart);
  const eligible = episodes.filter((e) => e.firstSeq < w.before && whole(e) && within(e.opened, w.since, w.until));
  return { eligible, other };
}

function within(at: string, since: number | undefined, until: number | undefined): boolean {
  const ms = Date.parse(at);
  return (since === undefined || ms >= since) && (until === undefined || ms < until);
}

/** A message of the stream as a transition; one that is not (written by hand, corrupt) is left out. */
function located(message: ReadMessage): Located[] {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(message.data).toString("utf8"));
  } catch {
    return [];
  }
  const parsed = StoredTransitionSchema.safeParse(value);
  return parsed.success ? [{ seq: message.seq, transition: parsed.data }] : [];
}

/**
 * The notifications delivered about the page's episodes, by alarmId, oldest first: the fan's
 * delivery log from a minute before the oldest episode opened, at most HISTORY_MAX_READ records.
 */
async function sentFor(
  source: HistorySource,
  deviceID: string,
  page: readonly EpisodeGroup[],
): Promise<Map<string, Notification[]>> {
  const byEpisode = new Map<string, Notification[]>();
  const oldest = page.at(-1);
  if (oldest === undefined) return byEpisode;
  const { js, jsm, site, deadline } = source;
  const from = await sequenceAt(
    jsm,
    NOTIFIER_STREAM,
    NOTIFIER_SUBJECTS,
    Date.parse(oldest.opened) - 60_000,
    deadline,
  ).catch(missingStream);
  if (from === undefined) return byEpisode; // no notifier has run
  const wanted = new Set(page.map((e) => e.alarmId));
  const read = await readRange(
    js,
    jsm,
    NOTIFIER_STREAM,
    fanSentSubjects(site, deviceID),
    { from, before: Infinity, max: HISTORY_MAX_READ },
    deadline,
  );
  for (const message of read.messages) {
    const parsed = SentRecordSchema.safeParse(parseJson(message.data));
    if (!parsed.success || parsed.data.alarmId === null || !wanted.has(parsed.data.alarmId)) continue;
    const r = parsed.data;
    const list = byEpisode.get(r.alarmId as string) ?? [];
    list.push({
      target: r.target,
      event: r.event,
      transitionId: r.transitionId,
      at: r.sentAt,
      outcome: r.redriven ? "redriven" : "sent",
      attempts: r.attempts,
    });
    byEpisode.set(r.alarmId as string, list);
  }
  return byEpisode;
}

/** The readings kept as evidence of an episode: the running total on the last message of its subject. */
async function evidenceCount(source: HistorySource, deviceID: string, alarmId: string): Promise<number> {
  const get = source.jsm.streams.getMessage(EVIDENCE_STREAM, {
    last_by_subj: episodeEvidenceSubject(source.site, deviceID, alarmId),
  });
  const last = await source.deadline.wait(get, "NATS JetStream to answer a read").catch((error: unknown) => {
    if (isApiError(error, JetStreamApiCodes.NoMessageFound) || isApiError(error, JetStreamApiCodes.StreamNotFound))
      return null;
    throw error;
  });
  if (last === null) return 0;
  const parsed = EvidenceMessageSchema.safeParse(parseJson(last.data));
  return parsed.success ? parsed.data.total : 0;
}

function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(data).toString("utf8"));
  } catch {
    return undefined;
  }
}

/** A stream that does not exist (yet) holds nothing. */
function missingStream(error: unknown): undefined {
  if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return undefined;
  throw error;
}
