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
