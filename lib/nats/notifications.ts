import { z } from "zod";
import { encodeKey } from "./keys.js";

/**
 * The notifier's stream and its delivery log: the names the notifier writes and health's history
 * (GET /function/health/history) reads, here so that neither imports the other (a function never
 * imports notifier/, docs/architecture.md). The notifier's other subjects (dead letters, redrives,
 * its targets) are its own: notifier/streams.ts.
 */
export const NOTIFIER_STREAM = "FAN_NOTIFICATIONS";
export const NOTIFIER_SUBJECTS = "fanwatch.notify.>";

/** One record per notification a target took: the fan's delivery log, one subject per site, fan and target. */
export function sentSubject(site: string, deviceID: string, targetId: string): string {
  return `fanwatch.notify.${site}.sent.${encodeKey(deviceID)}.${targetId}`;
}

/** Every target's delivery log of one fan at a site: the filter health's history reads. */
export function fanSentSubjects(site: string, deviceID: string): string {
  return `fanwatch.notify.${site}.sent.${encodeKey(deviceID)}.*`;
}

/** One notification delivered, as the notifier records it in a fan's delivery log. */
export const SentRecordSchema = z.object({
  target: z.string(),
  transitionId: z.string(),
  deviceID: z.string(),
  event: z.string(),
  alarmId: z.string().nullable(),
  /** The transition's time, and when the target took it. */
  at: z.string(),
  sentAt: z.string(),
  attempts: z.number().int(),
  /** True when it came back through `fanwatch notifications redrive`. */
  redriven: z.boolean(),
});
export type SentRecord = z.infer<typeof SentRecordSchema>;
