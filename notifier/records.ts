import { z } from "zod";
import { AlarmTransitionSchema } from "../lib/domain/health.js";

/**
 * What the notifier writes to its stream (FAN_NOTIFICATIONS, notifier/streams.ts). The schemas are
 * the contract for `fanwatch notifications` and for anyone reading a fan's delivery log.
 */

/** Where a notification came from: a message of health's stream, or a redrive. */
export const SourceSchema = z.object({
  stream: z.string(),
  seq: z.number().int(),
  subject: z.string(),
  /** When JetStream stored the message (ISO). */
  storedAt: z.string(),
});
export type Source = z.infer<typeof SourceSchema>;

/** A notification a target never took: refused (a 4xx), or not taken within NOTIFY_MAX_AGE. */
export const DeadLetterSchema = z.object({
  target: z.string().min(1),
  /** The transition; null when the message was not one (then `payload` holds it). */
  transition: AlarmTransitionSchema.nullable(),
  /** The message as text, cut at 1 KiB, when it was not a transition. */
  payload: z.string().optional(),
  /** Attempts made by the notifier that gave up (a restart counts afresh). */
  attempts: z.number().int().min(0),
  lastError: z.string(),
  firstAttempt: z.string(),
  deadAt: z.string(),
  source: SourceSchema,
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

// One notification delivered (a fan's delivery log) is SentRecordSchema, in lib/nats/notifications.ts:
// health's history reads it too.

/** The longest payload a dead letter keeps of a message that was not a transition. */
export const MAX_PAYLOAD_CHARS = 1024;

/**
 * The targets a notifier of the site was started with (one record per start, the last one holds):
 * `fanwatch notifications list` marks a queue whose target is not among them as an orphan.
 */
export const TargetsRecordSchema = z.object({
  targets: z.array(z.object({ id: z.string(), description: z.string() })),
  startedAt: z.string(),
});
export type TargetsRecord = z.infer<typeof TargetsRecordSchema>;
