import {
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
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

/** JetStream's "stream name already in use with a different configuration" (nats.js names no constant for it). */
const STREAM_NAME_IN_USE = 10058;

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

/**
 * Creates the stream, or brings an existing one's limits to `options` (health and the notifier
 * both call it; whoever starts first creates it). Resolves to the stream's info.
 */
export async function ensureHealthEventsStream(
  jsm: JetStreamManager,
  options: HealthEventsStreamOptions,
): Promise<StreamInfo> {
  const limits = {
    max_age: nanos(options.maxAgeMs),
    duplicate_window: nanos(Math.min(HEALTH_EVENTS_DUPLICATE_WINDOW_MS, options.maxAgeMs)),
  };
  try {
    const info = await jsm.streams.info(HEALTH_EVENTS_STREAM);
    if (info.config.max_age === limits.max_age && info.config.duplicate_window === limits.duplicate_window) return info;
    return await jsm.streams.update(HEALTH_EVENTS_STREAM, { ...info.config, ...limits });
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
  }
  try {
    return await jsm.streams.add({
      name: HEALTH_EVENTS_STREAM,
      subjects: [HEALTH_EVENTS_SUBJECTS],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: options.replicas,
      ...limits,
    });
  } catch (error) {
    // Another process created it between the two calls (with other limits: an identical add succeeds).
    if (error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE)
      return jsm.streams.info(HEALTH_EVENTS_STREAM);
    throw error;
  }
}
