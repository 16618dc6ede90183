import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { envValue } from "../infra/config.js";
import { DEFAULT_SECRET_PATH, readSecret } from "../infra/secrets.js";

export interface MqttSettings {
  url: string;
  username?: string;
  password?: string;
  /** PEM file of the CA that signed the broker's certificate (mqtts://). */
  caFile?: string;
}

/**
 * MQTT_URL (or the reference's MQTT_HOST, a host name or URL), MQTT_USERNAME, MQTT_PASSWORD or
 * the file in MQTT_PASSWORD_FILE or the OpenFaaS secret `mqtt-password`, MQTT_CA_FILE.
 */
export function mqttSettingsFromEnv(env: NodeJS.ProcessEnv = process.env, secretPath = envValue(env, "SECRET_MOUNT_PATH") ?? DEFAULT_SECRET_PATH): MqttSettings {
  const host = envValue(env, "MQTT_URL", "MQTT_HOST") ?? "mqtt://127.0.0.1:1883";
  const url = /^[a-z]+:\/\//.test(host) ? host : `mqtt://${host}:1883`;
  const username = envValue(env, "MQTT_USERNAME") ?? readSecret(envValue(env, "MQTT_USERNAME_FILE") ?? join(secretPath, "mqtt-username"));
  const password = envValue(env, "MQTT_PASSWORD") ?? readSecret(envValue(env, "MQTT_PASSWORD_FILE") ?? join(secretPath, "mqtt-password"));
  const caFile = envValue(env, "MQTT_CA_FILE");
  return { url, ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }), ...(caFile === undefined ? {} : { caFile }) };
}

/** Opens a client that reconnects by itself; `error` events are logged, never thrown. */
export function connectMqtt(settings: MqttSettings, options: IClientOptions & { onError?: (error: Error) => void } = {}): MqttClient {
  const { onError, ...rest } = options;
  const client = mqtt.connect(settings.url, {
    // MQTT.js traces every packet through the `debug` package, which costs CPU even when off.
    log: () => {},
    reconnectPeriod: 1_000,
    connectTimeout: 10_000,
    ...(settings.username === undefined ? {} : { username: settings.username }),
    ...(settings.password === undefined ? {} : { password: settings.password }),
    ...(settings.caFile === undefined ? {} : { ca: readFileSync(settings.caFile) }),
    ...rest,
  });
  // MQTT.js emits `error` for refused connections and the like; an unhandled one kills the process.
  // It repeats the same error at every reconnect attempt: report a repeat at most once a minute.
  let last = { message: "", at: 0 };
  client.on("error", (error) => {
    const now = Date.now();
    if (error.message === last.message && now - last.at < 60_000) return;
    last = { message: error.message, at: now };
    onError?.(error);
  });
  return client;
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
