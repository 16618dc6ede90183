import { z } from "zod";
import { DEFAULT_TOPICS, readTopics, TOPIC_SETTINGS } from "../../lib/infra/config.js";
import { ConfigError } from "../../lib/errors.js";
import { HEALTH_HOST_SETTING } from "../../lib/infra/health-server.js";
import {
  brokerAddress,
  DEFAULT_MQTT_URL,
  MQTT_SCHEMES,
  mqttSettingsFromEnv,
  type MqttSettings,
} from "../../lib/mqtt/settings.js";
import {
  DEFAULT_SECRET_PATH,
  defineSettings,
  readSettingsFrom,
  requireSecret,
  type SettingValues,
} from "../../lib/infra/settings.js";

/**
 * The connector's settings. Names follow the official OpenFaaS MQTT connector where it has them
 * (gateway_url, broker, topic, client_id, qos, async_invoke, basic_auth, secret_mount_path,
 * content_type), read from the environment in lower or upper case, or from CLI flags.
 */
export interface ConnectorConfig {
  /** @default CONNECTOR_DEFAULTS.gateway_url */
  gatewayUrl: string;
  mqtt: MqttSettings;
  /** Filters to subscribe to; with `sharedGroup` each becomes `$share/<group>/<filter>`. @default [DEFAULT_TOPICS.telemetry] */
  topics: string[];
  /** @default CONNECTOR_DEFAULTS.client_id */
  clientId: string;
  /**
   * How long the broker keeps each session of this replica once it is gone, in seconds (MQTT 5);
   * undefined: MQTT 3.1.1, kept as long as the broker keeps persistent sessions.
   * @default CONNECTOR_DEFAULTS.session_expiry_s
   */
  sessionExpirySeconds: number | undefined;
  /** @default CONNECTOR_DEFAULTS.qos */
  qos: 0 | 1;
  sharedGroup: string | undefined;
  /** @default CONNECTOR_DEFAULTS.async_invoke */
  asyncInvoke: boolean;
  callbackUrl: string | undefined;
  /** Credentials for the gateway's /system API, from secret_mount_path when basic_auth is on. */
  basicAuth: { user: string; password: string } | undefined;
  /** @default CONNECTOR_DEFAULTS.content_type */
  contentType: string;
  /** topic filter → functions; when set, the gateway is not asked. */
  staticFunctions: Map<string, string[]> | undefined;
  /** @default CONNECTOR_DEFAULTS.refresh_interval_ms */
  refreshMs: number;
  /** @default CONNECTOR_DEFAULTS.batch_size */
  batchSize: number;
  /** @default CONNECTOR_DEFAULTS.batch_wait_ms */
  batchWaitMs: number;
  /**
   * Invocations open at once per replica of a function (the gateway's availableReplicas, at least
   * one replica's worth); with static routes, per function. @default CONNECTOR_DEFAULTS.max_inflight
   */
  maxInFlight: number;
  /** Invocations open at once over all functions. @default INFLIGHT_TOTAL_PER_INFLIGHT × maxInFlight */
  maxInFlightTotal: number;
  /** Opt-in: ask the gateway for replicas of the functions it invokes, from their load (docs/deploy.md). */
  autoscale: AutoscaleConfig | undefined;
  /** Retries of a failing function before its circuit opens and intake pauses (never a dead letter). @default CONNECTOR_DEFAULTS.retries */
  retries: number;
  /** @default CONNECTOR_DEFAULTS.retry_base_ms */
  retryBaseMs: number;
  /** The longest wait between retries and between probes of an open circuit. @default CONNECTOR_DEFAULTS.retry_max_ms */
  retryMaxMs: number;
  /** Per attempt, sent to the function as X-Timeout-Ms: its whole budget. @default CONNECTOR_DEFAULTS.timeout_ms */
  timeoutMs: number;
  /** @default DEFAULT_TOPICS.deadletter */
  deadletterTopic: string;
  /** /healthz and /metrics. @default CONNECTOR_DEFAULTS.port */
  port: number;
  /** @default DEFAULT_HEALTH_HOST */
  healthHost: string;
  /** Larger messages are dead-lettered: no fan reading is that big. @default CONNECTOR_DEFAULTS.max_message_bytes */
  maxMessageBytes: number;
  /** Bytes of messages (topic and payload) received and not yet acknowledged; at this, the connector stops reading from the broker. @default CONNECTOR_DEFAULTS.max_inflight_bytes */
  maxInflightBytes: number;
  /** A batch is sent once its payloads add up to this, so that it stays under the function's body limit. @default CONNECTOR_DEFAULTS.max_batch_bytes */
  maxBatchBytes: number;
  /** Who gets in: the device registry's settings (docs/pipeline.md, "Only known fans get in"). */
  gate: GateConfig;
}

/** What a reading of an id the registry does not know leads to. */
export const UNKNOWN_DEVICE_POLICIES = ["quarantine", "reject", "open"] as const;
export type UnknownDevicePolicy = (typeof UNKNOWN_DEVICE_POLICIES)[number];

export interface GateConfig {
  /** @default CONNECTOR_DEFAULTS.UNKNOWN_DEVICE_POLICY */
  policy: UnknownDevicePolicy;
  /** @default CONNECTOR_DEFAULTS.REGISTRY_MAX_PENDING */
  maxPending: number;
  /** @default CONNECTOR_DEFAULTS.QUARANTINE_MAX_PER_FAN */
  maxPerFan: number;
  /** Bytes FAN_QUARANTINE holds at most, all fans together. @default CONNECTOR_DEFAULTS.QUARANTINE_MAX_BYTES */
  maxQuarantineBytes: number;
  /** Whether registered fans may still publish on the bare telemetry topic. @default CONNECTOR_DEFAULTS.ALLOW_UNBOUND_FANS */
  allowUnbound: boolean;
  /** The registry (KV bucket fan_registry) and the quarantine (stream FAN_QUARANTINE); undefined: neither, unless a registry is passed. */
  natsUrl: string | undefined;
  /** Copies of the KV bucket fan_registry and of FAN_QUARANTINE in a NATS cluster. @default CONNECTOR_DEFAULTS.NATS_KV_REPLICAS */
  replicas: number;
  /** Readings: `<telemetry>` and `<telemetry>/<deviceID>` are gated. @default DEFAULT_TOPICS.telemetry */
  telemetryTopic: string;
  /** Where a SensorNotice about an implausible reading goes. @default DEFAULT_TOPICS.anomaly */
  anomalyTopic: string;
}

export interface AutoscaleConfig {
  /** How often a decision is taken per function. @default CONNECTOR_DEFAULTS.autoscale_interval_ms */
  intervalMs: number;
  /** How long the load must stay low before one replica is removed. @default CONNECTOR_DEFAULTS.autoscale_window_ms */
  windowMs: number;
  /** Work per replica (invocations in flight and batches waiting) above which it asks for more. @default maxInFlight */
  targetInFlight: number;
}

/**
 * 8 MiB of messages held. Throughput needs far less: max_inflight × batch_size, twice over, is
 * 3,200 readings of under 200 bytes, 0.6 MiB, per replica of a function; at max_inflight_total
 * (40 batches by default) 3.2 MB. Memory sets the ceiling: the pod's limit is
 * 160 MiB (deploy/k3s/base/connector.yaml), the connector runs at 85-98 MB resident under load, and each
 * message held costs a few hundred bytes of objects besides its own. With Mosquitto the window of
 * 2,000 messages binds first for fan readings; the bound is what holds for large messages, and
 * under aedes (fanwatch start), which has no window.
 */
export const DEFAULT_MAX_INFLIGHT_BYTES = 8 * 1024 * 1024;

/** max_inflight_total is this many times max_inflight unless set: one function at OpenFaaS CE's most replicas (5). */
export const INFLIGHT_TOTAL_PER_INFLIGHT = 5;

/** The connector's defaults, by setting name. */
export const CONNECTOR_DEFAULTS = Object.freeze({
  gateway_url: "http://127.0.0.1:8080",
  client_id: "fanwatch-connector",
  // Outlives a pod's restart and a node's reboot (a few minutes); bounds what a replica on a node
  // that died holds of the shared subscriptions (docs/pipeline.md, "A replica that dies").
  session_expiry_s: 300,
  qos: 1,
  refresh_interval_ms: 5_000,
  batch_size: 200,
  batch_wait_ms: 10,
  max_inflight: 8,
  autoscale: false,
  autoscale_interval_ms: 5_000,
  autoscale_window_ms: 60_000,
  retries: 5,
  retry_base_ms: 100,
  retry_max_ms: 5_000,
  // Below predict's exec_timeout (12 s in stack.yml), so the gateway never cuts an attempt off
  // before predict's own budget (X-Timeout-Ms) ends it with an answer.
  timeout_ms: 10_000,
  async_invoke: false,
  basic_auth: false,
  secret_mount_path: DEFAULT_SECRET_PATH,
  content_type: "application/json",
  port: 8081,
  // Fan readings are under 200 bytes; the broker refuses packets over 16 KiB as well.
  max_message_bytes: 16 * 1024,
  max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
  max_batch_bytes: 512 * 1024,
  UNKNOWN_DEVICE_POLICY: "quarantine",
  REGISTRY_MAX_PENDING: 1_000,
  QUARANTINE_MAX_PER_FAN: 100,
  // The stream shares health's JetStream volume: 1,000 pending fans × 100 readings of 16 KiB would be 1.6 GB.
  QUARANTINE_MAX_BYTES: 64 * 1024 * 1024,
  // Off: a fan's identity is its topic (fan/messages/<id>, which the broker lets only that fan
  // publish to). `fanwatch start` turns it on for the reference fans' fan/messages.
  ALLOW_UNBOUND_FANS: false,
  NATS_KV_REPLICAS: 1,
});

const d = CONNECTOR_DEFAULTS;

/** A setting of the official connector: read in lower or upper case. */
const official = (name: string) => [name, name.toUpperCase()];

/** "true" or "false", in the environment; a flag gives the boolean itself. */
const onOff = z
  .enum(["true", "false"], { error: (issue) => `"${String(issue.input)}" is not true or false` })
  .transform((v) => v === "true");

/** Every setting: its variables (the official connector's names where it has them), its flag, help, default and schema. */
export const CONNECTOR_SETTINGS = defineSettings({
  gateway_url: {
    env: official("gateway_url"),
    flag: "--gateway-url <url>",
    help: "OpenFaaS gateway",
    default: d.gateway_url,
    schema: z
      .string()
      .transform((url) => url.replace(/\/+$/, ""))
      .default(d.gateway_url),
  },
  // MQTT_URL and MQTT_HOST, read after these (lib/mqtt/settings.ts), take a URL and a host name.
  broker: {
    env: official("broker"),
    flag: "--broker <url>",
    help: `MQTT broker URL (${MQTT_SCHEMES.map((s) => `${s}://`).join(", ")}) or host name`,
    doc: "the MQTT broker, a URL or a host name; `MQTT_USERNAME`/`MQTT_PASSWORD` (or their files or secrets) and `MQTT_CA_FILE` as for every MQTT client",
    default: `$MQTT_URL or ${DEFAULT_MQTT_URL}`,
    schema: brokerAddress.optional(),
  },
  topic: {
    env: [...official("topic"), ...TOPIC_SETTINGS.telemetry.env],
    flag: "--topic <filters>",
    help: "comma-separated topic filters to subscribe to",
    doc: "comma-separated topic filters, wildcards allowed (`fan/messages,fan/anomaly,fan/messages/+` in deploy/ and in `fanwatch start`: readings for predict, bare and per fan, predictions for health). With a registry and `ALLOW_UNBOUND_FANS` off, readings count only on `fan/messages/<id>`: leave `fan/messages/+` out and every reading is refused (the connector warns at start)",
    default: `$TELEMETRY_TOPIC or ${DEFAULT_TOPICS.telemetry}`,
    schema: z
      .string()
      .transform((text) =>
        text
          .split(",")
          .map((t) => t.trim())
          .filter((t) => t !== ""),
      )
      .refine((topics) => topics.length > 0, "give at least one topic filter")
      .default(() => [DEFAULT_TOPICS.telemetry]),
  },
  functions: {
    env: official("functions"),
    flag: "--functions <map>",
    help: "static routes instead of asking the gateway: 'fan/messages=predict;fan/+/x=a,b'",
    doc: "static routes, `fan/messages=predict;x/+=a,b`, instead of asking the gateway",
    schema: z.string().optional(),
  },
  client_id: {
    env: official("client_id"),
    flag: "--client-id <id>",
    help: "MQTT client id of the first topic filter's persistent session; each other filter's is <id>.<filter, URI-encoded>",
    doc: "the first topic filter's persistent session id (each other filter's is `<id>.<filter, URI-encoded>`): keep it stable",
    default: d.client_id,
    schema: z.string().default(d.client_id),
  },
  session_expiry_s: {
    env: official("session_expiry_s"),
    flag: "--session-expiry-s <seconds>",
    help: "how long the broker keeps a session of this connector once it is gone (MQTT 5); 0: MQTT 3.1.1, as long as the broker keeps persistent sessions",
    doc: "how long the broker keeps each session (and queues its share of a shared subscription) once this connector is gone, in seconds (MQTT 5 session expiry); then it drops the session and what was queued for it, and the other replicas get every new message. `0`: MQTT 3.1.1, kept as long as the broker keeps persistent sessions (Mosquitto's `persistent_client_expiration`). A broker without MQTT 5 (aedes in `fanwatch start`) is spoken to in 3.1.1, with a warning",
    default: d.session_expiry_s,
    schema: z.coerce.number().int().min(0).max(0xffff_fffe).default(d.session_expiry_s),
  },
  qos: {
    env: official("qos"),
    flag: "--qos <0|1>",
    help: "subscription QoS",
    doc: "subscription QoS; 0 only to imitate the official connector",
    default: d.qos,
    schema: z.coerce
      .number()
      .pipe(z.union([z.literal(0), z.literal(1)], { error: (issue) => `0 or 1, not ${String(issue.input)}` }))
      .default(d.qos),
  },
  shared_group: {
    env: official("shared_group"),
    flag: "--shared-group <name>",
    help: "subscribe as $share/<name>/<filter> so replicas split the load",
    doc: "subscribe as `$share/<group>/<filter>`: replicas split the load, each message once",
    schema: z.string().optional(),
  },
  batch_size: {
    env: official("batch_size"),
    flag: "--batch-size <n>",
    help: "messages per invocation; 1 sends the raw payload",
    doc: "messages per invocation; **1 sends the raw payload exactly like the official connector**",
    default: d.batch_size,
    schema: z.coerce.number().int().min(1).max(10_000).default(d.batch_size),
  },
  batch_wait_ms: {
    env: official("batch_wait_ms"),
    flag: "--batch-wait-ms <ms>",
    help: "longest wait to fill a batch",
    default: d.batch_wait_ms,
    schema: z.coerce.number().min(0).max(60_000).default(d.batch_wait_ms),
  },
  max_inflight: {
    env: official("max_inflight"),
    flag: "--max-inflight <n>",
    help: "invocations open at once per replica of a function (its availableReplicas, at least one); per function with --functions",
    doc: "invocations open at once **per replica** of each function (below); with static `functions`, per function",
    default: d.max_inflight,
    schema: z.coerce.number().int().min(1).max(1_000).default(d.max_inflight),
  },
  max_inflight_total: {
    env: official("max_inflight_total"),
    flag: "--max-inflight-total <n>",
    help: "invocations open at once over all functions",
    doc: `invocations open at once over all functions (${INFLIGHT_TOTAL_PER_INFLIGHT * d.max_inflight} by default: one function at OpenFaaS CE's most replicas, ${INFLIGHT_TOTAL_PER_INFLIGHT})`,
    default: `${INFLIGHT_TOTAL_PER_INFLIGHT} x --max-inflight`,
    schema: z.coerce.number().int().min(1).max(5_000).optional(),
  },
  autoscale: {
    env: official("autoscale"),
    flag: "--autoscale",
    help: "ask the gateway's /system/scale-function for replicas from the backlog, within the scale labels, see docs/deploy.md",
    doc: "opt-in: ask the gateway's `POST /system/scale-function/<name>` for replicas from the connector's backlog, within the function's scale labels (docs/deploy.md, \"Scaling\"); needs gateway discovery, refused with static `functions`",
    default: d.autoscale,
    schema: onOff.default(d.autoscale),
  },
  autoscale_interval_ms: {
    env: official("autoscale_interval_ms"),
    flag: "--autoscale-interval-ms <ms>",
    help: "how often autoscale decides",
    default: d.autoscale_interval_ms,
    schema: z.coerce.number().int().min(100).default(d.autoscale_interval_ms),
  },
  autoscale_window_ms: {
    env: official("autoscale_window_ms"),
    flag: "--autoscale-window-ms <ms>",
    help: "low load this long before one replica is removed",
    default: d.autoscale_window_ms,
    schema: z.coerce.number().int().min(0).default(d.autoscale_window_ms),
  },
  autoscale_target_inflight: {
    env: official("autoscale_target_inflight"),
    flag: "--autoscale-target-inflight <n>",
    help: "work per replica (in flight and waiting, in batches) above which autoscale asks for more",
    doc: "work per replica (batches in flight plus messages waiting ÷ `batch_size`) above which autoscale asks for more",
    default: "--max-inflight",
    schema: z.coerce.number().min(0.1).optional(),
  },
  retries: {
    env: official("retries"),
    flag: "--retries <n>",
    help: "retries of a failing function before its circuit opens and the sessions of its filters are parked; outages never dead-letter",
    doc: "retries before a function's circuit opens and the sessions of its topic filters are parked (at 1 + `retries` failed attempts in a row); **not** a limit: an outage never dead-letters",
    default: d.retries,
    schema: z.coerce.number().int().min(0).max(20).default(d.retries),
  },
  retry_base_ms: {
    env: official("retry_base_ms"),
    flag: "--retry-base-ms <ms>",
    help: "first backoff, doubled each retry",
    doc: "first backoff between attempts: doubled each time up to `retry_max_ms`, ±50% jitter",
    default: d.retry_base_ms,
    schema: z.coerce.number().int().min(1).default(d.retry_base_ms),
  },
  retry_max_ms: {
    env: official("retry_max_ms"),
    flag: "--retry-max-ms <ms>",
    help: "longest backoff, and between probes of an open circuit",
    default: d.retry_max_ms,
    schema: z.coerce.number().int().min(1).default(d.retry_max_ms),
  },
  timeout_ms: {
    env: official("timeout_ms"),
    flag: "--timeout-ms <ms>",
    help: "per invocation attempt, sent as X-Timeout-Ms; keep it under the function's exec_timeout",
    doc: "per invocation attempt, sent to the function as `X-Timeout-Ms` (below); keep it under the function's `exec_timeout`",
    default: d.timeout_ms,
    schema: z.coerce.number().int().min(1).default(d.timeout_ms),
  },
  refresh_interval_ms: {
    env: official("refresh_interval_ms"),
    flag: "--refresh-interval-ms <ms>",
    help: "how often to re-read /system/functions",
    default: d.refresh_interval_ms,
    schema: z.coerce.number().int().min(100).default(d.refresh_interval_ms),
  },
  async_invoke: {
    env: official("async_invoke"),
    flag: "--async-invoke",
    help: "invoke through /async-function/<name>",
    default: d.async_invoke,
    // As the official connector: anything but "true" is off.
    schema: z
      .string()
      .transform((v) => v === "true")
      .default(d.async_invoke),
  },
  callback_url: {
    env: official("callback_url"),
    flag: "--callback-url <url>",
    help: "X-Callback-Url for async invocations",
    schema: z.string().optional(),
  },
  basic_auth: {
    env: official("basic_auth"),
    flag: "--basic-auth",
    help: "authenticate to /system with the basic-auth-user/-password secrets",
    doc: "credentials for `/system/*` from the `basic-auth-user`/`basic-auth-password` secrets under `secret_mount_path`",
    default: d.basic_auth,
    schema: z
      .string()
      .transform((v) => v === "true")
      .default(d.basic_auth),
  },
  secret_mount_path: {
    env: official("secret_mount_path"),
    flag: "--secret-mount-path <dir>",
    help: "where secrets are mounted",
    default: d.secret_mount_path,
    schema: z.string().default(d.secret_mount_path),
  },
  content_type: {
    env: official("content_type"),
    flag: "--content-type <type>",
    help: "Content-Type of invocations",
    default: d.content_type,
    schema: z.string().default(d.content_type),
  },
  port: {
    env: official("port"),
    flag: "--port <port>",
    help: "port of /healthz and /metrics",
    doc: "port of `/readyz` (200 once connected to the broker and the functions are known: for readiness), `/healthz` (503 while messages are held, saying why: for operators and alerts), `/livez` (200 while the process answers: for liveness) and `/metrics`",
    default: d.port,
    schema: z.coerce.number().int().min(0).max(65_535).default(d.port),
  },
  HEALTH_HOST: HEALTH_HOST_SETTING,
  max_message_bytes: {
    env: official("max_message_bytes"),
    flag: "--max-message-bytes <n>",
    help: "larger messages are dead-lettered",
    doc: "larger messages are dead-lettered (fan readings are under 200 bytes; the broker refuses packets over 16 KiB too)",
    default: d.max_message_bytes,
    schema: z.coerce.number().int().min(1).default(d.max_message_bytes),
  },
  max_inflight_bytes: {
    env: official("max_inflight_bytes"),
    flag: "--max-inflight-bytes <n>",
    help: "bytes of messages (topic and payload) held unacknowledged before it stops reading from the broker (an equal share per topic filter)",
    doc: "messages received and not yet acknowledged, in bytes (topic and payload), shared equally by the topic filters' sessions: at this the connector stops reading from the broker (below)",
    default: d.max_inflight_bytes,
    schema: z.coerce.number().int().min(1).default(d.max_inflight_bytes),
  },
  max_batch_bytes: {
    env: official("max_batch_bytes"),
    flag: "--max-batch-bytes <n>",
    help: "a batch is sent once its payloads reach this size",
    default: d.max_batch_bytes,
    schema: z.coerce.number().int().min(1).default(d.max_batch_bytes),
  },
  NATS_URL: {
    env: ["NATS_URL"],
    sensitive: true,
    flag: "--nats <url>",
    help: "NATS (JetStream) holding the fan registry (fan_registry) and the quarantine (FAN_QUARANTINE); unset: every device id is trusted",
    doc: "the NATS server holding the device registry (KV bucket `fan_registry`) and the quarantine (stream `FAN_QUARANTINE`): readings pass only for fans the registry lets in. Unset (and no registry given, as `fanwatch start` gives): no check at all, every device id is trusted, and the connector says so at start and in `/healthz`",
    schema: z.string().optional(),
  },
  UNKNOWN_DEVICE_POLICY: {
    env: ["UNKNOWN_DEVICE_POLICY"],
    flag: "--unknown-device-policy <policy>",
    help: "a reading from a device id the registry does not know: quarantine (the fan becomes pending, its readings are held until approved), reject (dead letter) or open (registered on the spot)",
    doc: "a reading from a device id the registry does not know: `quarantine` (the fan becomes `pending`, its readings are held in `FAN_QUARANTINE` until a person approves or refuses it), `reject` (dead letter `FANWATCH_DEVICE_UNKNOWN`) or `open` (registered `active` on its first reading: labs, the demo fleet)",
    default: d.UNKNOWN_DEVICE_POLICY,
    schema: z.enum(UNKNOWN_DEVICE_POLICIES).default(d.UNKNOWN_DEVICE_POLICY),
  },
  REGISTRY_MAX_PENDING: {
    env: ["REGISTRY_MAX_PENDING"],
    flag: "--registry-max-pending <n>",
    help: "most fans pending approval at once, and with UNKNOWN_DEVICE_POLICY=open most active fans the policy registered; readings of further unknown ids are dead-lettered (FANWATCH_REGISTRY_FULL)",
    default: d.REGISTRY_MAX_PENDING,
    schema: z.coerce.number().int().min(0).max(1_000_000).default(d.REGISTRY_MAX_PENDING),
  },
  QUARANTINE_MAX_PER_FAN: {
    env: ["QUARANTINE_MAX_PER_FAN"],
    flag: "--quarantine-max-per-fan <n>",
    help: "readings held per pending fan; past it the oldest are dropped (the newest are kept)",
    default: d.QUARANTINE_MAX_PER_FAN,
    schema: z.coerce.number().int().min(1).max(100_000).default(d.QUARANTINE_MAX_PER_FAN),
  },
  QUARANTINE_MAX_BYTES: {
    env: ["QUARANTINE_MAX_BYTES"],
    flag: "--quarantine-max-bytes <n>",
    help: "bytes FAN_QUARANTINE holds at most, all pending fans together (it shares the JetStream volume); past it the oldest readings are dropped. Held readings also go after 7 days",
    default: d.QUARANTINE_MAX_BYTES,
    schema: z.coerce
      .number()
      .int()
      .min(1024 * 1024)
      .max(1024 ** 4)
      .default(d.QUARANTINE_MAX_BYTES),
  },
  ALLOW_UNBOUND_FANS: {
    env: ["ALLOW_UNBOUND_FANS"],
    flag: "--allow-unbound-fans <true|false>",
    help: "accept registered fans' readings on the bare telemetry topic (fan/messages) too, where the topic does not prove who sent them; off: only on fan/messages/<id>",
    doc: "accept registered fans' readings on the bare telemetry topic (`fan/messages`), where nothing binds the payload's `deviceID` to the sender; off (the default, and in deploy/k3s): only on `fan/messages/<id>`, which the broker lets only fan `<id>` publish to. `fanwatch start` turns it on",
    default: d.ALLOW_UNBOUND_FANS,
    schema: onOff.default(d.ALLOW_UNBOUND_FANS),
  },
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "copies of the registry's KV bucket (fan_registry) and of the stream FAN_QUARANTINE in a NATS cluster (as health's streams), when the connector creates them",
    default: d.NATS_KV_REPLICAS,
    schema: z.coerce.number().int().min(1).max(5).default(d.NATS_KV_REPLICAS),
  },
});

/** The connector's settings, typed: what its flags give and what `readConnectorConfig` takes besides the environment. */
export type ConnectorSettings = SettingValues<typeof CONNECTOR_SETTINGS>;

/**
 * Reads the settings from `env`, where both `batch_size` and `BATCH_SIZE` spellings are accepted;
 * `given` settings (flags, or `fanwatch start`'s choices) beat the environment.
 */
export function readConnectorConfig(env?: NodeJS.ProcessEnv, given: Partial<ConnectorSettings> = {}): ConnectorConfig {
  const { values: s, from } = readSettingsFrom(CONNECTOR_SETTINGS, env, given);
  const topics = readTopics(env);
  if (s.autoscale && s.functions !== undefined)
    throw new ConfigError(
      "invalid configuration: autoscale: it needs the gateway's /system/functions (replicas and scale labels), not static routes (functions)",
    );
  return {
    gatewayUrl: s.gateway_url,
    mqtt: mqttSettingsFromEnv(env, { url: s.broker, from: from.broker, secretPath: s.secret_mount_path }),
    topics: s.topic,
    clientId: s.client_id,
    sessionExpirySeconds: s.session_expiry_s === 0 ? undefined : s.session_expiry_s,
    qos: s.qos,
    sharedGroup: s.shared_group,
    asyncInvoke: s.async_invoke,
    callbackUrl: s.callback_url,
    basicAuth: s.basic_auth ? readBasicAuth(s.secret_mount_path) : undefined,
    contentType: s.content_type,
    staticFunctions: s.functions === undefined ? undefined : parseStaticFunctions(s.functions),
    refreshMs: s.refresh_interval_ms,
    batchSize: s.batch_size,
    batchWaitMs: s.batch_wait_ms,
    maxInFlight: s.max_inflight,
    maxInFlightTotal: s.max_inflight_total ?? INFLIGHT_TOTAL_PER_INFLIGHT * s.max_inflight,
    autoscale: s.autoscale
      ? {
          intervalMs: s.autoscale_interval_ms,
          windowMs: s.autoscale_window_ms,
          targetInFlight: s.autoscale_target_inflight ?? s.max_inflight,
        }
      : undefined,
    retries: s.retries,
    retryBaseMs: s.retry_base_ms,
    retryMaxMs: s.retry_max_ms,
    timeoutMs: s.timeout_ms,
    deadletterTopic: topics.deadletter,
    port: s.port,
    healthHost: s.HEALTH_HOST,
    maxMessageBytes: s.max_message_bytes,
    maxInflightBytes: s.max_inflight_bytes,
    maxBatchBytes: s.max_batch_bytes,
    gate: {
      policy: s.UNKNOWN_DEVICE_POLICY,
      maxPending: s.REGISTRY_MAX_PENDING,
      maxPerFan: s.QUARANTINE_MAX_PER_FAN,
      maxQuarantineBytes: s.QUARANTINE_MAX_BYTES,
      allowUnbound: s.ALLOW_UNBOUND_FANS,
      natsUrl: s.NATS_URL === "" ? undefined : s.NATS_URL,
      replicas: s.NATS_KV_REPLICAS,
      telemetryTopic: topics.telemetry,
      anomalyTopic: topics.anomaly,
    },
  };
}

/** `fan/messages=predict,audit;fan/+/status=status` → filter → functions. */
export function parseStaticFunctions(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const entry of text
    .split(";")
    .map((e) => e.trim())
    .filter((e) => e !== "")) {
    const [filter, names] = entry.split("=", 2);
    const functions = (names ?? "")
      .split(",")
      .map((n) => n.trim())
      .filter((n) => n !== "");
    if (filter === undefined || filter.trim() === "" || functions.length === 0) {
      throw new ConfigError(
        `invalid configuration: functions: "${entry}" is not <topic filter>=<function>[,<function>]`,
      );
    }
    map.set(filter.trim(), functions);
  }
  return map;
}

function readBasicAuth(secretPath: string): { user: string; password: string } {
  const because = "basic_auth is on";
  return {
    user: requireSecret(secretPath, "basic-auth-user", because),
    password: requireSecret(secretPath, "basic-auth-password", because),
  };
}
