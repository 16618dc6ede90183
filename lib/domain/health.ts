import { z } from "zod";
import { FEATURES } from "./features.js";
import { PerSensorSchema } from "./prediction.js";

/**
 * A fan's health, as the health function keeps it (one record per fan) and announces its changes
 * on the alarm topic. These are the contracts the function, the web page, the InfluxDB writer and
 * Telegraf share (docs/health.md explains the states and the rules that move a fan between them).
 *
 * ok → warning (a trend will reach the alarm: `eta`) → alarm (most recent predictions say fault)
 * → cleared (enough healthy predictions and a quiet period) → ok. Any state → silent when the fan
 * stops reporting; its next reading is evaluated from where it was.
 */
export const HEALTH_STATES = ["ok", "warning", "alarm", "cleared", "silent"] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

export const SEVERITIES = ["none", "minor", "major", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * What happened, on a transition: a state entered; or, the state unchanged, an alarm acknowledged,
 * a warning escalated (its eta came within HEALTH_ESCALATION_HORIZON: severity raised), a fan
 * shelved (no notifications until `until`) or put in maintenance (`from`…`until`), or `resumed`:
 * its shelving or maintenance window ended with an episode still open, so notifications resume.
 */
export const HEALTH_EVENTS = [
  "ok",
  "warning",
  "alarm",
  "cleared",
  "silent",
  "acknowledged",
  "escalated",
  "shelved",
  "maintenance",
  "resumed",
] as const;
export type HealthEvent = (typeof HEALTH_EVENTS)[number];

const isoTime = z.string().min(1);
const sensor = z.enum(FEATURES);

export const MaintenanceWindowSchema = z.object({
  from: isoTime,
  until: isoTime,
  by: z.string().max(128),
  note: z.string().max(1024).nullable(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindowSchema>;

/** Why a transition is not to be notified: the fan was shelved, or in a maintenance window, when it happened. */
export const MUTED_BY = ["shelved", "maintenance"] as const;
export type MutedBy = (typeof MUTED_BY)[number];

/** One fan's current health: what `GET /function/health` lists. */
export const HealthRecordSchema = z.object({
  deviceID: z.string().min(1).max(128),
  state: z.enum(HEALTH_STATES),
  /** The open episode's id (warning or alarm); a new episode after a clear gets a new one. */
  alarmId: z.string().nullable(),
  severity: z.enum(SEVERITIES),
  /** When the fan entered its current state. */
  since: isoTime,
  /** The sensor that drives the warning or alarm. */
  cause: sensor.nullable(),
  contributions: PerSensorSchema.nullable(),
  /** Smoothed probability of a fault over the fan's recent predictions. */
  probability: z.number().min(0).max(1),
  /** For warnings: when the fan is expected to reach the alarm if its trend goes on. */
  eta: isoTime.nullable(),
  /** Time of the newest reading evaluated. */
  lastSeen: isoTime,
  acknowledged: z.boolean(),
  acknowledgedBy: z.string().max(128).nullable(),
  note: z.string().max(1024).nullable(),
  /** Shelved (snoozed) until then: no notifications about the open episode; ends with the episode. */
  shelvedUntil: isoTime.nullable().default(null),
  shelvedBy: z.string().max(128).nullable().default(null),
  /** The fan's maintenance window, planned or under way: alarms in it are recorded, not notified. */
  maintenance: MaintenanceWindowSchema.nullable().default(null),
});
export type HealthRecord = z.infer<typeof HealthRecordSchema>;

/** A change of a fan's health, published at QoS 1 on the alarm topic (fan/alarm): transitions only. */
export const AlarmTransitionSchema = HealthRecordSchema.pick({
  deviceID: true,
  alarmId: true,
  state: true,
  severity: true,
  cause: true,
  contributions: true,
  probability: true,
  eta: true,
  since: true,
  acknowledged: true,
}).extend({
  event: z.enum(HEALTH_EVENTS),
  /** When the transition happened. */
  at: isoTime,
  /** Unique per transition (alarmId or deviceID, and a sequence number): a consumer can drop a repeat. */
  id: z.string().min(1),
  /** The site's name (SITE). */
  site: z.string().min(1).max(64).default("local"),
  /** Who acted, and their note, on `acknowledged`, `shelved` and `maintenance` events. */
  by: z.string().max(128).optional(),
  note: z.string().max(1024).optional(),
  /** On `shelved` the end of the shelving; on `maintenance` the window. */
  from: isoTime.optional(),
  until: isoTime.optional(),
  /** Set when the fan was shelved or in maintenance as this happened: recorded, not notified. Never on the actions themselves. */
  muted: z.enum(MUTED_BY).optional(),
});
export type AlarmTransition = z.infer<typeof AlarmTransitionSchema>;

/** The transition a record's change makes: the record's public fields, what happened, when, and its id. */
export function transitionFrom(
  record: HealthRecord,
  change: {
    event: HealthEvent;
    at: string;
    id: string;
    site?: string;
    by?: string;
    note?: string;
    from?: string;
    until?: string;
    muted?: MutedBy;
  },
): AlarmTransition {
  const { deviceID, alarmId, state, severity, cause, contributions, probability, eta, since, acknowledged } = record;
  return {
    id: change.id,
    event: change.event,
    deviceID,
    alarmId,
    state,
    severity,
    cause,
    contributions,
    probability,
    eta,
    since,
    at: change.at,
    acknowledged,
    site: change.site ?? "local",
    ...(change.by === undefined ? {} : { by: change.by }),
    ...(change.note === undefined ? {} : { note: change.note }),
    ...(change.from === undefined ? {} : { from: change.from }),
    ...(change.until === undefined ? {} : { until: change.until }),
    ...(change.muted === undefined ? {} : { muted: change.muted }),
  };
}
