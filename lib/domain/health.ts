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
 * And what people note about an episode (NOTE_EVENTS): a comment, an assignee, a finding.
 * And, beside the fan's state and never changing it, its sensors (SENSOR_EVENTS): `sensor` when a
 * sensor issue opens (a sensor reads implausibly again and again, or is stuck), `sensor-cleared`
 * when its readings are plausible and moving again. A sensor issue sends an electrician, not a
 * mechanic: it is no fan alarm.
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
  "commented",
  "assigned",
  "finding",
  "sensor",
  "sensor-cleared",
] as const;
export type HealthEvent = (typeof HEALTH_EVENTS)[number];

/** The events of a fan's sensor issue (SensorIssueSchema): they leave the fan's state, severity and episode as they are. */
export const SENSOR_EVENTS: ReadonlySet<HealthEvent> = new Set(["sensor", "sensor-cleared"]);

/**
 * Notes on an episode, open or recently closed: they change no state and raise nothing, so an
 * alerting target (Alertmanager) ignores them; they are history, and labels for the model later.
 * Their transition's `alarmId` is the episode noted, which may be older than the fan's current one.
 */
export const NOTE_EVENTS: ReadonlySet<HealthEvent> = new Set(["commented", "assigned", "finding"]);

/** What the engineer found when they looked at the fan: the alarm was right, wrong, or nobody could tell. */
export const FINDING_RESULTS = ["confirmed", "false-alarm", "not-checked"] as const;
export type FindingResult = (typeof FINDING_RESULTS)[number];

const isoTime = z.string().min(1);
const sensor = z.enum(FEATURES);

export const MaintenanceWindowSchema = z.object({
  from: isoTime,
  until: isoTime,
  by: z.string().max(128),
  note: z.string().max(1024).nullable(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindowSchema>;

/** The last finding recorded for a fan's current (or last) episode: who found what, and when. */
export const FindingSchema = z.object({
  result: z.enum(FINDING_RESULTS),
  /** The part found worn or broken, in the engineer's words. */
  part: z.string().max(128).nullable(),
  /** The sensor that showed it, when one did. */
  sensor: sensor.nullable(),
  note: z.string().max(1024).nullable(),
  by: z.string().max(128),
  at: isoTime,
});
export type Finding = z.infer<typeof FindingSchema>;

/**
 * Why a sensor is not to be believed: it read outside its physical limits again and again
 * (`implausible`, lib/domain/plausibility.ts), or it reports the very same value reading after
 * reading (`stuck`). docs/health.md, "Sensor issues", has the rules.
 */
export const SENSOR_CAUSES = ["implausible", "stuck"] as const;
export type SensorCause = (typeof SENSOR_CAUSES)[number];

/** A fan's open sensor issue: which sensor, why, since when (reading time), and the value it last gave. */
export const SensorIssueSchema = z.object({
  sensor,
  cause: z.enum(SENSOR_CAUSES),
  since: isoTime,
  value: z.number(),
});
export type SensorIssue = z.infer<typeof SensorIssueSchema>;

/** What a warning was judged against: the fan's own learnt baseline, or (a fan too new to have one) the fleet's healthy ranges. */
export const WARNING_BASES = ["baseline", "fleet-range"] as const;
export type WarningBasis = (typeof WARNING_BASES)[number];

/**
 * The interval around a warning's eta: the alarm is expected between `from` and `to` with
 * probability `coverage` (0.8: four times in five), a coverage measured on the health benchmark.
 */
export const EtaIntervalSchema = z.object({
  from: isoTime,
  to: isoTime,
  coverage: z.number().gt(0).lt(1),
});
export type EtaInterval = z.infer<typeof EtaIntervalSchema>;

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
  /** For warnings with an eta: the interval the alarm is expected in. Optional: records written before it existed. */
  etaInterval: EtaIntervalSchema.nullable().optional(),
  /** For warnings: what the drift was judged against (the fan's own baseline, or the fleet's ranges while it has none). */
  basis: z.enum(WARNING_BASES).nullable().optional(),
  /** For warnings: every sensor drifting, the cause first. */
  sensors: z.array(sensor).max(FEATURES.length).nullable().optional(),
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
  /** Who is on the current (or last) episode; cleared when a new episode opens. */
  assignedTo: z.string().max(128).nullable().default(null),
  /** The last finding of the current (or last) episode; cleared when a new episode opens. */
  finding: FindingSchema.nullable().default(null),
  /**
   * The fan's open sensor issue, beside its state (not a fan alarm); null when its sensors are
   * believed. Optional so that records written before it existed, and their readers, stay valid.
   */
  sensorIssue: SensorIssueSchema.nullable().optional(),
  /**
   * The model (score's id, as the prediction names it) whose prediction last moved the fan: made
   * its newest state transition, escalation or sensor event. Null when that prediction named no
   * model; optional so that records written before it existed, and their readers, stay valid.
   */
  model: z.string().max(128).nullable().optional(),
});
export type HealthRecord = z.infer<typeof HealthRecordSchema>;

/** A fan's record before anything happened to it: ok since `since` (ISO), nothing open, nothing noted. */
export function newHealthRecord(deviceID: string, since: string): HealthRecord {
  return {
    deviceID,
    state: "ok",
    alarmId: null,
    severity: "none",
    since,
    cause: null,
    contributions: null,
    probability: 0,
    eta: null,
    lastSeen: since,
    acknowledged: false,
    acknowledgedBy: null,
    note: null,
    shelvedUntil: null,
    shelvedBy: null,
    maintenance: null,
    assignedTo: null,
    finding: null,
    sensorIssue: null,
  };
}

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
  etaInterval: true,
  basis: true,
  sensors: true,
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
  /** Who acted, and their note, on `acknowledged`, `shelved`, `maintenance` and the NOTE_EVENTS. */
  by: z.string().max(128).optional(),
  note: z.string().max(1024).optional(),
  /** On `assigned`: who is now on the episode. */
  to: z.string().max(128).optional(),
  /** On `finding`: what was found (FindingSchema's fields; part and sensor when given). */
  result: z.enum(FINDING_RESULTS).optional(),
  part: z.string().max(128).optional(),
  sensor: sensor.optional(),
  /** On `shelved` the end of the shelving; on `maintenance` the window. */
  from: isoTime.optional(),
  until: isoTime.optional(),
  /** Set when the fan was shelved or in maintenance as this happened: recorded, not notified. Never on the actions themselves. */
  muted: z.enum(MUTED_BY).optional(),
  /** On `sensor` the issue opened; on `sensor-cleared` the issue that cleared. */
  sensorIssue: SensorIssueSchema.optional(),
  /**
   * The model behind the transition, so that an alarm can be traced to the model that raised it:
   * on a transition a prediction made, that prediction's model; on the others (silent, actions,
   * notes, resumed) the record's, the model that moved the fan into the state it is in. Absent
   * when not known (a prediction without a model, a record written before models were named).
   */
  model: z.string().max(128).optional(),
});
export type AlarmTransition = z.infer<typeof AlarmTransitionSchema>;

/** What a transition says besides the record's fields: what happened, when, its id, and what was done. */
export interface TransitionChange {
  event: HealthEvent;
  at: string;
  id: string;
  site?: string;
  /** The episode a note is about, when it is not the record's (a closed one). */
  alarmId?: string;
  by?: string;
  note?: string;
  from?: string;
  until?: string;
  to?: string;
  result?: FindingResult;
  part?: string;
  sensor?: (typeof FEATURES)[number];
  muted?: MutedBy;
  sensorIssue?: SensorIssue;
}

const OPTIONAL_FIELDS = [
  "by",
  "note",
  "from",
  "until",
  "to",
  "result",
  "part",
  "sensor",
  "muted",
  "sensorIssue",
] as const;

/** The transition a record's change makes: the record's public fields, what happened, when, and its id. */
export function transitionFrom(record: HealthRecord, change: TransitionChange): AlarmTransition {
  const { deviceID, state, severity, cause, contributions, probability, eta, since, acknowledged } = record;
  const { etaInterval, basis, sensors } = record;
  const transition: AlarmTransition = {
    id: change.id,
    event: change.event,
    deviceID,
    alarmId: change.alarmId ?? record.alarmId,
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
  };
  // Warnings' fields, on the transitions of fans that have them (absent: older records, and tests compare transitions whole).
  if (etaInterval != null) transition.etaInterval = etaInterval;
  if (basis != null) transition.basis = basis;
  if (sensors != null) transition.sensors = sensors;
  if (record.model != null) transition.model = record.model;
  // Absent rather than undefined: the transition is JSON, and tests compare it whole.
  for (const key of OPTIONAL_FIELDS) if (change[key] !== undefined) Object.assign(transition, { [key]: change[key] });
  return transition;
}
