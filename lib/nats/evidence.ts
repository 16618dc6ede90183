import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { z } from "zod";
import { ensureStream, type WantedStream } from "./jetstream.js";
import { encodeKey } from "./keys.js";

/**
 * The evidence health keeps for training (docs/health.md, "Evidence"): the readings that led to
 * each episode and those during it, and a sparse sample of each fan's healthy readings, so that a
 * training set can be built from NATS alone. Health writes it from the predictions it receives
 * (each carries its reading); GET /function/health/evidence reads it, and so may a later trainer.
 *
 * - `fanwatch.evidence.<site>.<fan key>.episode.<alarmId as a key>`: an episode's readings;
 * - `fanwatch.evidence.<site>.<fan key>.healthy`: one reading a minute while the fan is ok.
 */
export const EVIDENCE_STREAM = "FAN_EVIDENCE";
export const EVIDENCE_SUBJECTS = "fanwatch.evidence.>";

export function episodeEvidenceSubject(site: string, deviceID: string, alarmId: string): string {
  return `fanwatch.evidence.${site}.${encodeKey(deviceID)}.episode.${encodeKey(alarmId)}`;
}

export function healthyEvidenceSubject(site: string, deviceID: string): string {
  return `fanwatch.evidence.${site}.${encodeKey(deviceID)}.healthy`;
}

/**
 * One reading kept as evidence: its time, the four sensors, what the model said of it, and which
 * model that was (when the prediction named it).
 */
export const EvidenceReadingSchema = z.object({
  at: z.string(),
  rotation: z.number(),
  temperature: z.number(),
  vibration: z.number(),
  sound: z.number(),
  probability: z.number(),
  fault: z.union([z.literal(0), z.literal(1)]),
  model: z.string().max(128).optional(),
});
export type EvidenceReading = z.infer<typeof EvidenceReadingSchema>;

/**
 * One message of the stream: some readings of one fan. `part` says which: `lead` (the readings
 * before the episode opened), `during` (readings of the open episode) or `healthy` (the sample).
 * `total` is the episode's count of readings kept with this message included (as the writer knew
 * it), so that the last message of an episode's subject tells how many it has.
 */
export const EvidenceMessageSchema = z.object({
  deviceID: z.string(),
  alarmId: z.string().nullable(),
  part: z.enum(["lead", "during", "healthy"]),
  readings: z.array(EvidenceReadingSchema),
  total: z.number().int().min(0),
});
export type EvidenceMessage = z.infer<typeof EvidenceMessageSchema>;

export interface EvidenceStreamOptions {
  /** HEALTH_HISTORY_MAX_AGE: the evidence is kept as long as the history it belongs to. */
  maxAgeMs: number;
  /** Copies in a NATS cluster (NATS_KV_REPLICAS). */
  replicas: number;
}

/**
 * The most the stream holds, 2 GiB; past it the oldest messages go, so that the evidence cannot
 * fill the JetStream store health's state shares. A reading is some 160 bytes as JSON (30 of them
 * its model's id): a healthy sample a minute of 1,000 fans for 400 days is about 90 GB, so a large
 * fleet raises this (or keeps less time) and the stream says so by losing its oldest samples first.
 */
export const EVIDENCE_STREAM_MAX_BYTES = 2 * 1024 ** 3;

/** How long a message id is remembered: a batch the connector sends again within it is stored once. */
export const EVIDENCE_DUPLICATE_WINDOW_MS = 60 * 60_000;

export function evidenceStreamConfig(options: EvidenceStreamOptions): WantedStream {
  return {
    name: EVIDENCE_STREAM,
    subjects: [EVIDENCE_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_bytes: EVIDENCE_STREAM_MAX_BYTES,
    num_replicas: options.replicas,
    max_age: nanos(options.maxAgeMs),
    duplicate_window: nanos(Math.min(EVIDENCE_DUPLICATE_WINDOW_MS, options.maxAgeMs)),
  };
}

/** Creates the stream, or brings an existing one's age limit to `options`. */
export async function ensureEvidenceStream(jsm: JetStreamManager, options: EvidenceStreamOptions): Promise<StreamInfo> {
  const wanted = evidenceStreamConfig(options);
  const { info } = await ensureStream(jsm, wanted, (existing) =>
    existing.config.max_age === wanted.max_age && existing.config.duplicate_window === wanted.duplicate_window
      ? undefined
      : { max_age: wanted.max_age, duplicate_window: wanted.duplicate_window },
  );
  return info;
}
