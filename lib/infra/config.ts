import { z } from "zod";
import { ConfigError } from "../errors.js";
import type { Setting } from "./settings.js";

/** The first of `names` set to a non-empty value: the reference system's names are aliases. */
export function envValue(env: NodeJS.ProcessEnv, ...names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

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
export const TOPIC_SETTINGS: Readonly<Record<keyof Topics, Setting>> = Object.freeze({
  telemetry: { env: ["TELEMETRY_TOPIC", "MQTT_DEV_TOPIC"], help: "fan readings", default: DEFAULT_TOPICS.telemetry },
  anomaly: {
    env: ["ANOMALY_TOPIC", "MQTT_PREDICT_TOPIC"],
    help: "predict's predictions",
    default: DEFAULT_TOPICS.anomaly,
  },
  deadletter: {
    env: ["DEADLETTER_TOPIC"],
    help: "messages that could not be processed, with the reason",
    default: DEFAULT_TOPICS.deadletter,
  },
  alarm: {
    env: ["ALARM_TOPIC"],
    help: "health transitions, published by the health function",
    default: DEFAULT_TOPICS.alarm,
  },
});

export function readTopics(env: NodeJS.ProcessEnv = process.env): Topics {
  const topic = (name: keyof Topics) => envValue(env, ...TOPIC_SETTINGS[name].env) ?? DEFAULT_TOPICS[name];
  return {
    telemetry: topic("telemetry"),
    anomaly: topic("anomaly"),
    deadletter: topic("deadletter"),
    alarm: topic("alarm"),
  };
}

/** Parses the variables a schema names; empty values count as unset. */
export function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid configuration: ${String(issue?.path[0])}: ${issue?.message}`);
  }
  return parsed.data;
}

/**
 * A module's settings: those `given` (typed, from flags or from code) as they are, the others
 * read from the environment by the names `settings` lists and parsed by `schema`, whose keys are
 * the settings' names. A given setting's variables are not read at all, so it beats them.
 */
export function readSettings<S extends z.ZodObject>(
  schema: S,
  settings: Readonly<Record<keyof z.output<S> & string, Setting>>,
  env: NodeJS.ProcessEnv,
  given: Partial<z.output<S>> = {},
): z.output<S> {
  const isGiven = (name: string) => (given as Record<string, unknown>)[name] !== undefined;
  const text = Object.fromEntries(
    Object.entries<Setting>(settings)
      .filter(([name]) => !isGiven(name))
      .map(([name, setting]) => [name, envValue(env, ...setting.env)]),
  );
  const read = parseEnv(schema, text) as z.output<S>;
  return { ...read, ...Object.fromEntries(Object.entries(given).filter(([name]) => isGiven(name))) };
}
