import { JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { AlarmTransitionSchema } from "../domain/health.js";
import {
  EVIDENCE_STREAM,
  EvidenceMessageSchema,
  episodeEvidenceSubject,
  type EvidenceReading,
} from "../nats/evidence.js";
import { HEALTH_EVENTS_STREAM, HEALTH_EVENTS_SUBJECTS, siteEventSubjects } from "../nats/health-events.js";
import { isApiError } from "../nats/jetstream.js";
import { readRange, sequenceAt, type ReadMessage } from "../nats/stream-reader.js";
import type { EpisodeFinding } from "./gates.js";

/**
 * What the gates read from health's streams: the site's findings of the window (FAN_HEALTH_EVENTS)
 * and the readings kept with an episode (FAN_EVIDENCE). A missing stream is a site with no
 * history yet: no findings, no readings.
 */

/** A JetStream client and manager, as `fanwatch` commands have them (cli/nats-connection.ts). */
export interface JetStreamAccess {
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/** Transitions read for the window's findings, at most: a week of a large, noisy site. */
export const FINDINGS_MAX_READ = 500_000;
/** Messages of one episode's evidence subject, at most (each holds one reading or more). */
const EVIDENCE_MAX_MESSAGES = 10_000;

/**
 * Every episode of `site` with a finding made since `since`, with its latest finding (a later one
 * overrides). The stream is read from the first message stored since then (sequenceAt).
 */
export async function readFindings(
  { js, jsm }: JetStreamAccess,
  site: string,
  since: number,
): Promise<EpisodeFinding[]> {
  let messages: ReadMessage[];
  try {
    const from = await sequenceAt(jsm, HEALTH_EVENTS_STREAM, HEALTH_EVENTS_SUBJECTS, since);
    ({ messages } = await readRange(js, jsm, HEALTH_EVENTS_STREAM, siteEventSubjects(site), {
      from,
      before: Infinity,
      max: FINDINGS_MAX_READ,
    }));
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return [];
    throw error;
  }
  const latest = new Map<string, EpisodeFinding>();
  for (const message of messages) {
    const text = Buffer.from(message.data).toString("utf8");
    if (!text.includes('"finding"')) continue; // most transitions are not findings: parse only those
    const parsed = AlarmTransitionSchema.safeParse(parseOrUndefined(text));
    if (!parsed.success) continue;
    const t = parsed.data;
    if (t.event !== "finding" || t.result === undefined || t.alarmId === null) continue;
    if (Date.parse(t.at) < since) continue; // stored within the window, made before it (a resend)
    latest.set(`${t.deviceID}\u0000${t.alarmId}`, { deviceID: t.deviceID, alarmId: t.alarmId, result: t.result });
  }
  return [...latest.values()];
}

/** The readings kept with one episode, lead then during, oldest first, each once. */
export async function readEpisodeEvidence(
  { js, jsm }: JetStreamAccess,
  site: string,
  deviceID: string,
  alarmId: string,
): Promise<EvidenceReading[]> {
  let messages: ReadMessage[];
  try {
    ({ messages } = await readRange(js, jsm, EVIDENCE_STREAM, episodeEvidenceSubject(site, deviceID, alarmId), {
      from: 1,
      before: Infinity,
      max: EVIDENCE_MAX_MESSAGES,
    }));
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return [];
    throw error;
  }
  const byTime = new Map<string, EvidenceReading>();
  for (const message of messages) {
    const parsed = EvidenceMessageSchema.safeParse(parseOrUndefined(Buffer.from(message.data).toString("utf8")));
    if (parsed.success) for (const r of parsed.data.readings) if (!byTime.has(r.at)) byTime.set(r.at, r);
  }
  return [...byTime.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
