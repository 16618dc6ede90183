import { z } from "zod";
import { defineSettings, readSettings } from "./settings.js";

export interface Topics {
  /** @default DEFAULT_TOPICS.telemetry */
  telemetry: string;
  /** @default DEFAULT_TOPICS.anomaly */
  anomaly: string;
  /** @default DEFAULT_TOPICS.deadletter */
  deadletter: string;
  /** Health transitions (fan/alarm), published by the health function. @default DEFAULT_TOPICS.alarm */
  alarm: string;
}

export const DEFAULT_TOPICS: Readonly<Topics> = Object.freeze({
  telemetry: "fan/messages",
  anomaly: "fan/anomaly",
  deadletter: "fan/deadletter",
  alarm: "fan/alarm",
});

/** The topics' settings; the reference system's names (MQTT_DEV_TOPIC, MQTT_PREDICT_TOPIC) are aliases. */
export const TOPIC_SETTINGS = defineSettings({
  telemetry: {
    env: ["TELEMETRY_TOPIC", "MQTT_DEV_TOPIC"],
    help: "fan readings",
    doc: "fan readings; also the `topic` of dead letters when the caller sends no `X-Topic`",
    default: DEFAULT_TOPICS.telemetry,
    schema: z.string().default(DEFAULT_TOPICS.telemetry),
  },
  anomaly: {
    env: ["ANOMALY_TOPIC", "MQTT_PREDICT_TOPIC"],
    help: "predict's predictions",
    default: DEFAULT_TOPICS.anomaly,
    schema: z.string().default(DEFAULT_TOPICS.anomaly),
  },
  deadletter: {
    env: ["DEADLETTER_TOPIC"],
    help: "messages that could not be processed, with the reason",
    default: DEFAULT_TOPICS.deadletter,
    schema: z.string().default(DEFAULT_TOPICS.deadletter),
  },
  alarm: {
    env: ["ALARM_TOPIC"],
    help: "health transitions, published by the health function",
    default: DEFAULT_TOPICS.alarm,
    schema: z.string().default(DEFAULT_TOPICS.alarm),
  },
});

/** The topics, from the environment unless `env` is given. */
export function readTopics(env?: NodeJS.ProcessEnv): Topics {
  return readSettings(TOPIC_SETTINGS, env);
}

/** Every site's name, on every transition, alert and record (a token: it is a NATS subject level and a label value). */
export const DEFAULT_SITE = "local";

export const SITE_SETTINGS = defineSettings({
  SITE: {
    env: ["SITE"],
    help: "this site's name, carried on every health transition, notification and alert",
    doc: "this site's name, carried on every health transition, notification and alert (letters, digits, `_`, `-`)",
    default: DEFAULT_SITE,
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, _ and - only, at most 64 (a NATS subject level)")
      .default(DEFAULT_SITE),
  },
});

/** The site's name, from the environment unless `env` is given. */
export function readSite(env?: NodeJS.ProcessEnv): string {
  return readSettings(SITE_SETTINGS, env).SITE;
}
