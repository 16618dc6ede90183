import { join } from "node:path";
import { envValue } from "../infra/config.js";
import { DEFAULT_SECRET_PATH, readSecret } from "../infra/secrets.js";

// Apart from lib/mqtt/client.ts so that reading settings (every CLI command's help does) does not load MQTT.js.

export interface MqttSettings {
  url: string;
  username?: string;
  password?: string;
  /** PEM file of the CA that signed the broker's certificate (mqtts://). */
  caFile?: string;
}

/** The broker's usual port, and the broker used when neither MQTT_URL nor MQTT_HOST names one. */
export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MQTT_URL = `mqtt://127.0.0.1:${DEFAULT_MQTT_PORT}`;

/** Where the broker's address comes from, first set first: MQTT_URL, or the reference's MQTT_HOST (a host name or URL). */
export const MQTT_URL_ENV = ["MQTT_URL", "MQTT_HOST"] as const;

/**
 * MQTT_URL (or MQTT_HOST), MQTT_USERNAME, MQTT_PASSWORD or the file in MQTT_PASSWORD_FILE or the
 * OpenFaaS secret `mqtt-password`, MQTT_CA_FILE. `given.url` (a flag) beats MQTT_URL;
 * `given.secretPath` is where the secrets are, by default SECRET_MOUNT_PATH or OpenFaaS's folder.
 */
export function mqttSettingsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  given: { url?: string | undefined; secretPath?: string | undefined } = {},
): MqttSettings {
  const secretPath = given.secretPath ?? envValue(env, "SECRET_MOUNT_PATH") ?? DEFAULT_SECRET_PATH;
  const host = given.url ?? envValue(env, ...MQTT_URL_ENV) ?? DEFAULT_MQTT_URL;
  const url = /^[a-z]+:\/\//.test(host) ? host : `mqtt://${host}:${DEFAULT_MQTT_PORT}`;
  const username =
    envValue(env, "MQTT_USERNAME") ??
    readSecret(envValue(env, "MQTT_USERNAME_FILE") ?? join(secretPath, "mqtt-username"));
  const password =
    envValue(env, "MQTT_PASSWORD") ??
    readSecret(envValue(env, "MQTT_PASSWORD_FILE") ?? join(secretPath, "mqtt-password"));
  const caFile = envValue(env, "MQTT_CA_FILE");
  return {
    url,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(caFile === undefined ? {} : { caFile }),
  };
}

/** URL without credentials, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}
