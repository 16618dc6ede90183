import { JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import { FINDING_RESULTS } from "../lib/domain/health.js";
import {
  EVIDENCE_STREAM,
  EvidenceMessageSchema,
  episodeEvidenceSubject,
  type EvidenceReading,
} from "../lib/nats/evidence.js";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../lib/nats/health-events.js";
import { isApiError } from "../lib/nats/jetstream.js";
import { readRange, type ReadMessage } from "../lib/nats/stream-reader.js";

/**
 * What a site's own history holds for training (docs/models.md, "Learning from findings"), read
 * from the two streams health writes: the engineers' findings from FAN_HEALTH_EVENTS, and the
 * readings kept with each episode and the healthy sample from FAN_EVIDENCE. Only episodes whose
 * latest finding is `confirmed` or `false-alarm` are read: the rest have no label.
 */
export type LabelledResult = "confirmed" | "false-alarm";

export interface SiteEpisode {
  deviceID: string;
  alarmId: string;
  /** The episode's latest finding (a finding corrected later counts as corrected). */
  result: LabelledResult;
  /** When the episode first cleared (reading time, ms), or null while it is open. */
  clearedAt: number | null;
  /** The readings before it opened, and those while it was open (and cleared), oldest first. */
  lead: EvidenceReading[];
  during: EvidenceReading[];
}

export interface SiteHistory {
  site: string;
  episodes: SiteEpisode[];
  /** The healthy sample (one reading a minute of each fan while it was ok), the newest `maxHealthy`. */
  healthy: Array<{ deviceID: string; reading: EvidenceReading }>;
  /** Healthy samples left out past `maxHealthy` (the oldest). */
  healthyLeftOut: number;
  /** Episodes seen with no usable label: no finding, or `not-checked` last. */
  unlabelled: number;
}

export interface ReadSiteOptions {
  /** The most healthy samples kept (the newest); default 20,000. */
  maxHealthy?: number;
}

export const DEFAULT_MAX_HEALTHY = 20_000;

/** Messages read per request while walking a stream. */
const PAGE = 5_000;

/** The fields of a stored transition that labelling needs; the rest are ignored (newer fields too). */
const TransitionSchema = z.object({
  event: z.string(),
  deviceID: z.string().min(1),
  alarmId: z.string().nullable(),
  at: z.string(),
  result: z.enum(FINDING_RESULTS).optional(),
});

export async function readSiteHistory(
  js: JetStreamClient,
  jsm: JetStreamManager,
  site: string,
  options: ReadSiteOptions = {},
): Promise<SiteHistory> {
  const maxHealthy = options.maxHealthy ?? DEFAULT_MAX_HEALTHY;
  const found = new Map<
    string,
    { deviceID: string; alarmId: string; result: string | null; clearedAt: number | null }
  >();
  await walk(js, jsm, HEALTH_EVENTS_STREAM, siteEventSubjects(site), (message) => {
    const parsed = TransitionSchema.safeParse(parseJson(message));
    if (!parsed.success || parsed.data.alarmId === null) return;
    const { deviceID, alarmId, event, at, result } = parsed.data;
    const key = `${deviceID}\n${alarmId}`;
    const episode = found.get(key) ?? { deviceID, alarmId, result: null, clearedAt: null };
    found.set(key, episode);
    // Stream order is the order they were recorded: the last finding wins.
    if (event === "finding" && result !== undefined) episode.result = result;
    if (event === "cleared" && episode.clearedAt === null) episode.clearedAt = Date.parse(at);
  });

  const episodes: SiteEpisode[] = [];
  let unlabelled = 0;
  for (const { deviceID, alarmId, result, clearedAt } of found.values()) {
    if (result !== "confirmed" && result !== "false-alarm") {
      unlabelled++;
      continue;
    }
    const lead: EvidenceReading[] = [];
    const during: EvidenceReading[] = [];
    await walk(js, jsm, EVIDENCE_STREAM, episodeEvidenceSubject(site, deviceID, alarmId), (message) => {
      const parsed = EvidenceMessageSchema.safeParse(parseJson(message));
      if (!parsed.success || parsed.data.part === "healthy") return;
      (parsed.data.part === "lead" ? lead : during).push(...parsed.data.readings);
    });
    episodes.push({ deviceID, alarmId, result, clearedAt, lead: distinct(lead), during: distinct(during) });
  }

  // The newest samples are kept: a ring over the walk, so that memory stays bounded however long the stream.
  const ring: SiteHistory["healthy"] = [];
  let seen = 0;
  await walk(js, jsm, EVIDENCE_STREAM, `fanwatch.evidence.${site}.*.healthy`, (message) => {
    const parsed = EvidenceMessageSchema.safeParse(parseJson(message));
    if (!parsed.success || parsed.data.part !== "healthy") return;
    for (const reading of parsed.data.readings) {
      if (maxHealthy > 0) ring[seen % maxHealthy] = { deviceID: parsed.data.deviceID, reading };
      seen++;
    }
  });
  const healthy = ring.sort((a, b) => Date.parse(a.reading.at) - Date.parse(b.reading.at));
  return { site, episodes, healthy, healthyLeftOut: seen - healthy.length, unlabelled };
}

/** Every message of `filter` in `stream`, oldest first, a page at a time; a stream not there yet holds none. */
async function walk(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  each: (message: ReadMessage) => void,
): Promise<void> {
  let from = 1;
  for (;;) {
    const read = await readRange(js, jsm, stream, filter, { from, before: Infinity, max: PAGE }).catch(
      (error: unknown) => {
        if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return { messages: [], more: false };
        throw error;
      },
    );
    read.messages.forEach(each);
    const last = read.messages.at(-1);
    if (!read.more || last === undefined) return;
    from = last.seq + 1;
  }
}

function parseJson(message: ReadMessage): unknown {
  try {
    return JSON.parse(Buffer.from(message.data).toString("utf8"));
  } catch {
    return undefined;
  }
}

/** In time order, a reading stored twice (two replicas, a resend) once. */
function distinct(readings: EvidenceReading[]): EvidenceReading[] {
  const seen = new Set<string>();
  return readings.filter((r) => !seen.has(r.at) && seen.add(r.at)).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}
