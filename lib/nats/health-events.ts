import { RetentionPolicy, StorageType, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { ensureStream, type WantedStream } from "./jetstream.js";
import { encodeKey } from "./keys.js";

/**
 * Health's event stream (JetStream): every transition and action health makes, appended as part of
 * the write that makes it, with the transition's `id` as the message id (Nats-Msg-Id) so that a
 * transition sent again (an outbox resend) is stored once. The notifier reads it with durable
 * consumers; the history (GET /function/health/history) reads it by fan.
 *
 * One subject per site and fan, so that a fan's history is a subject filter.
 */
export const HEALTH_EVENTS_STREAM = "FAN_HEALTH_EVENTS";

/** Every subject of the stream. */
export const HEALTH_EVENTS_SUBJECTS = "fanwatch.health.>";

/** The subject of one fan's events at a site (the device ID encoded as a key: one subject level). */
export function healthEventSubject(site: string, deviceID: string): string {
  return `fanwatch.health.${site}.${encodeKey(deviceID)}`;
}

/** Every fan's events at a site. */
export function siteEventSubjects(site: string): string {
  return `fanwatch.health.${site}.>`;
}

export interface HealthEventsStreamOptions {
  /** HEALTH_HISTORY_MAX_AGE: how long the history is kept. */
  maxAgeMs: number;
  /** Copies in a NATS cluster (NATS_KV_REPLICAS). */
  replicas: number;
}

/**
 * How long JetStream remembers a message id: a transition sent again within it is stored once.
 * Well above health's outbox resend (HEALTH_OUTBOX_RESEND_MS, 15 s) and its budget.
 */
export const HEALTH_EVENTS_DUPLICATE_WINDOW_MS = 60 * 60_000;

/** The stream as it is created: file storage, limits retention, one subject family. */
export function healthEventsStreamConfig(options: HealthEventsStreamOptions): WantedStream {
  return {
    name: HEALTH_EVENTS_STREAM,
    subjects: [HEALTH_EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    ...healthEventsLimits(options.maxAgeMs),
  };
}

function healthEventsLimits(maxAgeMs: number): { max_age: number; duplicate_window: number } {
  return {
    max_age: nanos(maxAgeMs),
    duplicate_window: nanos(Math.min(HEALTH_EVENTS_DUPLICATE_WINDOW_MS, maxAgeMs)),
  };
}

/**
 * Creates the stream, or brings an existing one's limits to `options` (health calls it at start,
 * and whoever starts first creates it). Resolves to the stream's info.
 */
export async function ensureHealthEventsStream(
  jsm: JetStreamManager,
  options: HealthEventsStreamOptions,
): Promise<StreamInfo> {
  const limits = healthEventsLimits(options.maxAgeMs);
  const { info } = await ensureStream(jsm, healthEventsStreamConfig(options), (existing) =>
    existing.config.max_age === limits.max_age && existing.config.duplicate_window === limits.duplicate_window
      ? undefined
      : limits,
  );
  return info;
}
