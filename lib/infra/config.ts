import { z } from "zod";
import { ConfigError } from "../errors.js";

/** The first of `names` set to a non-empty value: the reference system's names are aliases. */
export function envValue(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

export interface Topics {
  telemetry: string;
  anomaly: string;
  deadletter: string;
  /** Health transitions (fan/alarm), published by the health function. */
  alarm: string;
}

/** TELEMETRY_TOPIC (MQTT_DEV_TOPIC), ANOMALY_TOPIC (MQTT_PREDICT_TOPIC), DEADLETTER_TOPIC, ALARM_TOPIC. */
export function readTopics(env: NodeJS.ProcessEnv = process.env): Topics {
  return {
    telemetry: envValue(env, "TELEMETRY_TOPIC", "MQTT_DEV_TOPIC") ?? "fan/messages",
    anomaly: envValue(env, "ANOMALY_TOPIC", "MQTT_PREDICT_TOPIC") ?? "fan/anomaly",
    deadletter: envValue(env, "DEADLETTER_TOPIC") ?? "fan/deadletter",
    alarm: envValue(env, "ALARM_TOPIC") ?? "fan/alarm",
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

