import { JetStreamApiCodes } from "@nats-io/jetstream";
import {
  EVIDENCE_STREAM,
  EVIDENCE_SUBJECTS,
  EvidenceMessageSchema,
  episodeEvidenceSubject,
  healthyEvidenceSubject,
  type EvidenceReading,
} from "../../lib/nats/evidence.js";
import { isApiError } from "../../lib/nats/jetstream.js";
import { readRange, sequenceAt, streamBounds, type ReadMessage } from "../../lib/nats/stream-reader.js";
import { EVIDENCE_EPISODE_MAX } from "./evidence.js";
import type { HistorySource } from "./history.js";
import { encodeEvidenceCursor, type EvidenceQuery } from "./history-query.js";

/**
 * GET /function/health/evidence: the readings kept with one episode (`alarmId`), oldest first, or
 * a page of a fan's healthy sample (`healthy=true`, `since`, `until`, `limit`, `cursor`).
 */
export interface EpisodeEvidence {
  deviceID: string;
  alarmId: string;
  readings: EvidenceReading[];
}

export interface HealthySample {
  deviceID: string;
  readings: EvidenceReading[];
  /** Where the next page starts; null on the last. */
  cursor: string | null;
}

/** Messages an episode's subject may hold: each holds a reading or more, and an episode at most EVIDENCE_EPISODE_MAX. */
const EPISODE_MAX_MESSAGES = EVIDENCE_EPISODE_MAX + 1;

export async function readEvidence(
  source: HistorySource,
  query: EvidenceQuery,
): Promise<EpisodeEvidence | HealthySample> {
  const { js, jsm, site, deadline } = source;
  const bounds = await deadline
    .wait(streamBounds(jsm, EVIDENCE_STREAM), "NATS JetStream to answer a read")
    .catch((error: unknown) => {
      if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return undefined;
      throw error;
    });
  if (query.kind === "episode") {
    const answer: EpisodeEvidence = { deviceID: query.deviceID, alarmId: query.alarmId, readings: [] };
    if (bounds === undefined || bounds.messages === 0) return answer;
    const read = await readRange(
      js,
      jsm,
      EVIDENCE_STREAM,
      episodeEvidenceSubject(site, query.deviceID, query.alarmId),
      {
        from: bounds.first,
        before: Infinity,
        max: EPISODE_MAX_MESSAGES,
      },
      deadline,
    );
    // Lead first, then the readings during it, each in time order; a reading stored twice (two
    // replicas, or a resend outside the duplicate window) is shown once.
    const seen = new Set<string>();
    for (const part of ["lead", "during"] as const)
      for (const reading of readingsOf(read.messages, part))
        if (!seen.has(reading.at) && answer.readings.length < EVIDENCE_EPISODE_MAX) {
          seen.add(reading.at);
          answer.readings.push(reading);
        }
    answer.readings.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    return answer;
  }
  const answer: HealthySample = { deviceID: query.deviceID, readings: [], cursor: null };
  if (bounds === undefined || bounds.messages === 0) return answer;
  const from =
    query.after ??
    (query.since === undefined
      ? bounds.first
      : await sequenceAt(jsm, EVIDENCE_STREAM, EVIDENCE_SUBJECTS, query.since, deadline));
  const read = await readRange(
    js,
    jsm,
    EVIDENCE_STREAM,
    healthyEvidenceSubject(site, query.deviceID),
    { from, before: Infinity, max: query.limit },
    deadline,
  );
  for (const reading of readingsOf(read.messages, "healthy")) {
    const at = Date.parse(reading.at);
    if (query.since !== undefined && at < query.since) continue;
    if (query.until !== undefined && at >= query.until) return answer; // in time order: the rest are later still
    answer.readings.push(reading);
  }
  const last = read.messages.at(-1);
  if (read.more && last !== undefined) answer.cursor = encodeEvidenceCursor(last.seq + 1);
  return answer;
}

function readingsOf(messages: readonly ReadMessage[], part: "lead" | "during" | "healthy"): EvidenceReading[] {
  const readings: EvidenceReading[] = [];
  for (const message of messages) {
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(message.data).toString("utf8"));
    } catch {
      continue;
    }
    const parsed = EvidenceMessageSchema.safeParse(value);
    if (parsed.success && parsed.data.part === part) readings.push(...parsed.data.readings);
  }
  return readings;
}
