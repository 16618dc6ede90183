import { z } from "zod";

/**
 * What the Alertmanager target wants Alertmanager to hold for one fan: its open alerts, the alerts
 * that ended lately (sent to each Alertmanager until it took the end, and again after it restarted),
 * and the silences standing for someone being on it. Kept durable in the target's own NATS
 * key-value bucket (store.ts) and pushed to every Alertmanager as it is (sync.ts).
 */

export const ALERT_NAMES = ["FanWarning", "FanAlarm", "FanSilent", "FanSensor"] as const;
export type AlertName = (typeof ALERT_NAMES)[number];

/** An alert as Alertmanager's API v2 takes it (POST /api/v2/alerts), with `endsAt` once it ended. */
export const AlertSchema = z.object({
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
  startsAt: z.string(),
  endsAt: z.string().optional(),
  generatorURL: z.string(),
});
export type Alert = z.infer<typeof AlertSchema>;

export const SILENCE_KINDS = ["ack", "shelve", "maintenance"] as const;
export type SilenceKind = (typeof SILENCE_KINDS)[number];

/** label = value; Alertmanager's silences also know regular expressions and negation, which fanwatch never uses. */
export const MatcherSchema = z.object({ name: z.string(), value: z.string() });
export type Matcher = z.infer<typeof MatcherSchema>;

/** A silence fanwatch wants at every Alertmanager: found there again by `key`, which its comment carries. */
export const WantedSilenceSchema = z.object({
  key: z.string(),
  kind: z.enum(SILENCE_KINDS),
  matchers: z.array(MatcherSchema).min(1),
  startsAt: z.string(),
  /** Null: until the episode ends (an acknowledgement); the silence is then renewed before it runs out. */
  endsAt: z.string().nullable(),
  comment: z.string(),
});
export type WantedSilence = z.infer<typeof WantedSilenceSchema>;

/**
 * Where a transition stands among its fan's: health's transition id is
 * `<deviceID>:<at ms>:<per-fan sequence>` (the sequence is null for an id not of that form).
 */
export const TransitionOrderSchema = z.object({ at: z.number(), seq: z.number().int().nullable() });
export type TransitionOrder = z.infer<typeof TransitionOrderSchema>;

export const FanAlertsSchema = z.object({
  deviceID: z.string(),
  site: z.string(),
  /** At most the episode's FanWarning or FanAlarm, FanSilent, and FanSensor (the fan's open sensor issue). */
  open: z.array(AlertSchema),
  /** Alerts that ended, with their endsAt, until they are older than the keep period. */
  ended: z.array(AlertSchema),
  silences: z.array(WantedSilenceSchema),
  /** The ids of the last transitions applied: one delivered again (a redelivery, a retry) changes nothing. */
  applied: z.array(z.string()),
  /** The last episodes that cleared: a late transition of one of them (a redriven dead letter) opens nothing. */
  closed: z.array(z.string()),
  /** The newest transition applied (null: none yet, or state written before it was kept): an older one is late. */
  newest: TransitionOrderSchema.nullable().default(null),
});
export type FanAlerts = z.infer<typeof FanAlertsSchema>;

/** A fan with nothing open, nothing wanted. */
export function emptyFan(deviceID: string, site: string): FanAlerts {
  return { deviceID, site, open: [], ended: [], silences: [], applied: [], closed: [], newest: null };
}

export function alertName(alert: Alert): AlertName | undefined {
  const name = alert.labels.alertname;
  return (ALERT_NAMES as readonly string[]).includes(name ?? "") ? (name as AlertName) : undefined;
}

/** The alert of the open episode (FanWarning or FanAlarm), as opposed to FanSilent. */
export function isEpisodeAlert(alert: Alert): boolean {
  const name = alertName(alert);
  return name === "FanWarning" || name === "FanAlarm";
}
