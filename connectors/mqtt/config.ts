import { z } from "zod";
import { envValue, parseEnv, readTopics } from "../../lib/infra/config.js";
import { ConfigError } from "../../lib/errors.js";
import { healthHostFromEnv } from "../../lib/infra/health-server.js";
import { mqttSettingsFromEnv, type MqttSettings } from "../../lib/mqtt/client.js";
import { DEFAULT_SECRET_PATH, requireSecret } from "../../lib/infra/secrets.js";

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
  /**
   * Invocations open at once per replica of a function (the gateway's availableReplicas, at least
   * one replica's worth); with static routes, per function.
   */
  maxInFlight: number;
  /** Invocations open at once over all functions. */
  maxInFlightTotal: number;
  /** Opt-in: ask the gateway for replicas of the functions it invokes, from their load (docs/deploy.md). */
  autoscale: AutoscaleConfig | undefined;
  /** Retries of a failing function before its circuit opens and intake pauses (never a dead letter). */
  retries: number;
  retryBaseMs: number;
  /** The longest wait between retries and between probes of an open circuit. */
  retryMaxMs: number;
  /** Per attempt, sent to the function as X-Timeout-Ms: its whole budget. */
  timeoutMs: number;
  deadletterTopic: string;
  /** /healthz and /metrics. */
  port: number;
  healthHost: string;
  /** Larger messages are dead-lettered: no fan reading is that big. */
  maxMessageBytes: number;
  /** Bytes of messages (topic and payload) received and not yet acknowledged; at this, the connector stops reading from the broker. */
  maxInflightBytes: number;
  /** A batch is sent once its payloads add up to this, so that it stays under the function's body limit. */
  maxBatchBytes: number;
}

export interface AutoscaleConfig {
  /** How often a decision is taken per function. */
  intervalMs: number;
  /** How long the load must stay low before one replica is removed. */
  windowMs: number;
  /** Work per replica (invocations in flight and batches waiting) above which it asks for more. */
  targetInFlight: number;
}

/**
 * 8 MiB of messages held. Throughput needs far less: max_inflight × batch_size, twice over, is
 * 3,200 readings of under 200 bytes, 0.6 MiB, per replica of a function; at max_inflight_total
 * (40 batches by default) 3.2 MB. Memory sets the ceiling: the pod's limit is
 * 160 MiB (deploy/k3s/connector.yaml), the connector runs at 85-98 MB resident under load, and each
 * message held costs a few hundred bytes of objects besides its own. With Mosquitto the window of
 * 2,000 messages binds first for fan readings; the bound is what holds for large messages, and
 * under aedes (fanwatch start), which has no window.
 */
export const DEFAULT_MAX_INFLIGHT_BYTES = 8 * 1024 * 1024;

const Numbers = z.object({
  qos: z.coerce.number().pipe(z.union([z.literal(0), z.literal(1)])).default(1),
  refresh_interval_ms: z.coerce.number().int().min(100).default(5_000),
  batch_size: z.coerce.number().int().min(1).max(10_000).default(200),
  batch_wait_ms: z.coerce.number().min(0).max(60_000).default(10),
  max_inflight: z.coerce.number().int().min(1).max(1_000).default(8),
  // Default: 5 × max_inflight, enough for one function at OpenFaaS CE's most replicas (5).
  max_inflight_total: z.coerce.number().int().min(1).max(5_000).optional(),
  autoscale_interval_ms: z.coerce.number().int().min(100).default(5_000),
  autoscale_window_ms: z.coerce.number().int().min(0).default(60_000),
  autoscale_target_inflight: z.coerce.number().min(0.1).optional(),
  retries: z.coerce.number().int().min(0).max(20).default(5),
  retry_base_ms: z.coerce.number().int().min(1).default(100),
  retry_max_ms: z.coerce.number().int().min(1).default(5_000),
  // Below predict's exec_timeout (12 s in stack.yml), so the gateway never cuts an attempt off
  // before predict's own budget (X-Timeout-Ms) ends it with an answer.
  timeout_ms: z.coerce.number().int().min(1).default(10_000),
  port: z.coerce.number().int().min(0).max(65_535).default(8081),
  // Fan readings are under 200 bytes; the broker refuses packets over 16 KiB as well.
  max_message_bytes: z.coerce.number().int().min(1).default(16 * 1024),
  max_batch_bytes: z.coerce.number().int().min(1).default(512 * 1024),
  max_inflight_bytes: z.coerce.number().int().min(1).default(DEFAULT_MAX_INFLIGHT_BYTES),
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
  const autoscale = readBoolean(get("autoscale"), "autoscale");
  if (autoscale && functions !== undefined) throw new ConfigError("invalid configuration: autoscale: it needs the gateway's /system/functions (replicas and scale labels), not static routes (functions)");
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
    maxInFlightTotal: numbers.max_inflight_total ?? 5 * numbers.max_inflight,
    autoscale: autoscale
      ? { intervalMs: numbers.autoscale_interval_ms, windowMs: numbers.autoscale_window_ms, targetInFlight: numbers.autoscale_target_inflight ?? numbers.max_inflight }
      : undefined,
    retries: numbers.retries,
    retryBaseMs: numbers.retry_base_ms,
    retryMaxMs: numbers.retry_max_ms,
    timeoutMs: numbers.timeout_ms,
    deadletterTopic: readTopics(env).deadletter,
    port: numbers.port,
    healthHost: healthHostFromEnv(env),
    maxMessageBytes: numbers.max_message_bytes,
    maxInflightBytes: numbers.max_inflight_bytes,
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

function readBoolean(value: string | undefined, name: string): boolean {
  if (value === undefined || value === "false") return false;
  if (value === "true") return true;
  throw new ConfigError(`invalid configuration: ${name}: "${value}" is not true or false`);
}

function readBasicAuth(secretPath: string): { user: string; password: string } {
  const because = "basic_auth is on";
  return { user: requireSecret(secretPath, "basic-auth-user", because), password: requireSecret(secretPath, "basic-auth-password", because) };
}
