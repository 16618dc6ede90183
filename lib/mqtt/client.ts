import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { BrokerUnavailableError } from "../errors.js";
import { redactUrl, type MqttSettings } from "./settings.js";

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

/**
 * Connects once, without retrying, and disconnects: whether anything answers at the broker's
 * address. A command checks this at start, so that an address nobody answers on (a typo, a wrong
 * port, a broker not started) is one line naming the setting, not a client retrying forever.
 * A broker that answers, even to refuse the login, is there: refusals are reported and retried
 * as outages are once running (the service's /healthz says why).
 */
export async function probeBroker(settings: MqttSettings, connectTimeoutMs = 10_000): Promise<void> {
  const client = connectMqtt(settings, {
    clientId: `fanwatch-probe-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    reconnectPeriod: 0,
    connectTimeout: connectTimeoutMs,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", (error: Error & { code?: unknown }) =>
        // A CONNACK with a reason code (a refused login): the broker is reachable.
        typeof error.code === "number" ? resolve() : reject(error),
      );
      client.once("close", () => reject(new Error("the connection closed before the broker answered")));
    });
  } catch (error) {
    const where = ` (${settings.from ?? "the default broker"})`;
    throw new BrokerUnavailableError(
      `cannot reach the MQTT broker at ${redactUrl(settings.url)}${where}: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    await client.endAsync(true);
  }
}
