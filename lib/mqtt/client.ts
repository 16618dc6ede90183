import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { MqttSettings } from "./settings.js";

/** Opens a client that reconnects by itself; `error` events are logged, never thrown. */
export function connectMqtt(
  settings: MqttSettings,
  options: IClientOptions & { onError?: (error: Error) => void } = {},
): MqttClient {
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
