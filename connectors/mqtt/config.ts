import { z } from "zod";
import { envValue, parseEnv, readTopics } from "../../lib/config.js";
import { ConfigError } from "../../lib/errors.js";
import { mqttSettingsFromEnv, type MqttSettings } from "../../lib/mqtt.js";
import { DEFAULT_SECRET_PATH, requireSecret } from "../../lib/secrets.js";

/**
 * The connector's settings. Names follow the official OpenFaaS MQTT connector where it has them
 * (gateway_url, broker, topic, client_id, qos, async_invoke, basic_auth, secret_mount_path,
 * content_type), read from the environment in lower or upper case, or from CLI flags.
 */
export interface ConnectorConfig {
  gatewayUrl: string;
  mqtt: MqttSettings;
  /** Filters to subscribe to; with `sharedGroup` each becomes `$share/<group>/<filter>`. */
  topics: string[];
  clientId: string;
  qos: 0 | 1;
  sharedGroup: string | undefined;
  asyncInvoke: boolean;
  callbackUrl: string | undefined;
  /** Credentials for the gateway's /system API, from secret_mount_path when basic_auth is on. */
  basicAuth: { user: string; password: string } | undefined;
  contentType: string;
  /** topic filter → functions; when set, the gateway is not asked. */
  staticFunctions: Map<string, string[]> | undefined;
  refreshMs: number;
  batchSize: number;
  batchWaitMs: number;
  maxInFlight: number;
  retries: number;
  retryBaseMs: number;
  timeoutMs: number;
  deadletterTopic: string;
  port: number;
  /** Larger messages are dead-lettered: no fan reading is that big. */
  maxMessageBytes: number;
  /** A batch is sent once its payloads add up to this, so that it stays under the function's body limit. */
  maxBatchBytes: number;
}

const Numbers = z.object({
  qos: z.coerce.number().pipe(z.union([z.literal(0), z.literal(1)])).default(1),
  refresh_interval_ms: z.coerce.number().int().min(100).default(5_000),
  batch_size: z.coerce.number().int().min(1).max(10_000).default(200),
  batch_wait_ms: z.coerce.number().min(0).max(60_000).default(10),
  max_inflight: z.coerce.number().int().min(1).max(1_000).default(8),
  retries: z.coerce.number().int().min(0).max(20).default(5),
  retry_base_ms: z.coerce.number().int().min(1).default(100),
  timeout_ms: z.coerce.number().int().min(1).default(10_000),
  port: z.coerce.number().int().min(0).max(65_535).default(8081),
  max_message_bytes: z.coerce.number().int().min(1).default(64 * 1024),
  max_batch_bytes: z.coerce.number().int().min(1).default(512 * 1024),
});

const CONNECTOR_SETTINGS = Object.keys(Numbers.shape);

/** Reads settings from `env`, where both `batch_size` and `BATCH_SIZE` spellings are accepted. */
export function readConnectorConfig(env: NodeJS.ProcessEnv = process.env): ConnectorConfig {
  const get = (name: string, ...aliases: string[]) => envValue(env, name, name.toUpperCase(), ...aliases);
  const numbers = parseEnv(Numbers, Object.fromEntries(CONNECTOR_SETTINGS.map((k) => [k, get(k)])));
  const secretPath = get("secret_mount_path") ?? DEFAULT_SECRET_PATH;
  const broker = get("broker", "MQTT_URL", "MQTT_HOST");
  const mqtt = mqttSettingsFromEnv({ ...env, ...(broker === undefined ? {} : { MQTT_URL: broker }) }, secretPath);
  const topics = (get("topic") ?? readTopics(env).telemetry).split(",").map((t) => t.trim()).filter((t) => t !== "");
  if (topics.length === 0) throw new ConfigError("invalid configuration: topic: give at least one topic filter");
  const functions = get("functions");
  return {
    gatewayUrl: (get("gateway_url") ?? "http://127.0.0.1:8080").replace(/\/+$/, ""),
    mqtt,
    topics,
    clientId: get("client_id") ?? "fanwatch-connector",
    qos: numbers.qos,
    sharedGroup: get("shared_group"),
    asyncInvoke: get("async_invoke") === "true",
    callbackUrl: get("callback_url"),
    basicAuth: get("basic_auth") === "true" ? readBasicAuth(secretPath) : undefined,
    contentType: get("content_type") ?? "application/json",
    staticFunctions: functions === undefined ? undefined : parseStaticFunctions(functions),
    refreshMs: numbers.refresh_interval_ms,
    batchSize: numbers.batch_size,
    batchWaitMs: numbers.batch_wait_ms,
    maxInFlight: numbers.max_inflight,
    retries: numbers.retries,
    retryBaseMs: numbers.retry_base_ms,
    timeoutMs: numbers.timeout_ms,
    deadletterTopic: readTopics(env).deadletter,
    port: numbers.port,
    maxMessageBytes: numbers.max_message_bytes,
    maxBatchBytes: numbers.max_batch_bytes,
  };
}

/** `fan/messages=predict,audit;fan/+/status=status` → filter → functions. */
export function parseStaticFunctions(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const entry of text.split(";").map((e) => e.trim()).filter((e) => e !== "")) {
    const [filter, names] = entry.split("=", 2);
    const functions = (names ?? "").split(",").map((n) => n.trim()).filter((n) => n !== "");
    if (filter === undefined || filter.trim() === "" || functions.length === 0) {
      throw new ConfigError(`invalid configuration: functions: "${entry}" is not <topic filter>=<function>[,<function>]`);
    }
    map.set(filter.trim(), functions);
  }
  return map;
}

function readBasicAuth(secretPath: string): { user: string; password: string } {
  const because = "basic_auth is on";
  return { user: requireSecret(secretPath, "basic-auth-user", because), password: requireSecret(secretPath, "basic-auth-password", because) };
}
