import { z } from "zod";
import { readTopics, type Topics } from "../../lib/infra/config.js";
import { ConfigError } from "../../lib/errors.js";
import { HEALTH_HOST_SETTING } from "../../lib/infra/health-server.js";
import { brokerAddress, DEFAULT_MQTT_URL, mqttSettingsFromEnv, type MqttSettings } from "../../lib/mqtt/settings.js";
import { defineSettings, readSettingsFrom, SECRET_SETTINGS, type SettingValues } from "../../lib/infra/settings.js";

export type InfluxTarget =
  | { api: "v1"; url: string; database: string; username?: string; password?: string }
  | { api: "v2"; url: string; bucket: string; org: string; token: string };

export interface WriterConfig {
  influx: InfluxTarget;
  mqtt: MqttSettings;
  topics: Topics;
  /** @default WRITER_DEFAULTS.INFLUX_CLIENT_ID */
  clientId: string;
  /** @default WRITER_DEFAULTS.INFLUX_BATCH_SIZE */
  batchSize: number;
  /** @default WRITER_DEFAULTS.INFLUX_FLUSH_MS */
  flushMs: number;
  /** @default WRITER_DEFAULTS.INFLUX_RETRY_BASE_MS */
  retryBaseMs: number;
  /** @default WRITER_DEFAULTS.INFLUX_RETRY_MAX_MS */
  retryMaxMs: number;
  /** Bytes of messages received and not yet stored; above it the writer stops reading from the broker. @default WRITER_DEFAULTS.INFLUX_MAX_BUFFER_BYTES */
  maxBufferBytes: number;
  /** /healthz and /metrics. @default WRITER_DEFAULTS.INFLUX_WRITER_PORT */
  port: number;
  /** @default DEFAULT_HEALTH_HOST */
  healthHost: string;
}

/** The writer's defaults, by variable. */
export const WRITER_DEFAULTS = Object.freeze({
  /** The 1.x database or 2.x bucket. */
  INFLUX_DB: "fan",
  INFLUX_CLIENT_ID: "fanwatch-influx-writer",
  INFLUX_BATCH_SIZE: 1000,
  INFLUX_FLUSH_MS: 1000,
  INFLUX_RETRY_BASE_MS: 500,
  // The longest wait between two write attempts (1.5 × this with jitter) is how late the writer can
  // notice that InfluxDB is back: with 30 s, storage resumed 37 s after a 60 s outage in the fault suite.
  INFLUX_RETRY_MAX_MS: 5_000,
  INFLUX_MAX_BUFFER_BYTES: 8 * 1024 * 1024,
  INFLUX_WRITER_PORT: 8082,
});

const d = WRITER_DEFAULTS;

/** Every setting: its variables, its flag, help, default and schema. */
export const WRITER_SETTINGS = defineSettings({
  INFLUX_URL: {
    env: ["INFLUX_URL"],
    flag: "--influx-url <url>",
    help: "InfluxDB, e.g. http://127.0.0.1:8086 (required)",
    doc: "InfluxDB, e.g. `http://127.0.0.1:8086` (required)",
    schema: z.string().optional(),
  },
  INFLUX_API: {
    env: ["INFLUX_API"],
    flag: "--influx-api <1|2>",
    help: "1.x /write or 2.x /api/v2/write",
    doc: "`1`: `POST /write?db=…&precision=ns` (every 1.x server); `2`: `POST /api/v2/write?org=…&bucket=…&precision=ns` (2.x, 3.x, 1.8+)",
    default: "2 when INFLUX_TOKEN is set, else 1",
    schema: z.enum(["1", "2"], { error: (issue) => `1 or 2, not "${String(issue.input)}"` }).optional(),
  },
  INFLUX_DB: {
    env: ["INFLUX_DB"],
    flag: "--influx-db <name>",
    help: "1.x database, or 2.x bucket",
    default: d.INFLUX_DB,
    schema: z.string().optional(),
  },
  INFLUX_BUCKET: {
    env: ["INFLUX_BUCKET"],
    help: "2.x bucket (INFLUX_DB's alias)",
    default: d.INFLUX_DB,
    schema: z.string().optional(),
  },
  INFLUX_ORG: {
    env: ["INFLUX_ORG"],
    flag: "--influx-org <org>",
    help: "2.x organisation (the token comes from INFLUX_TOKEN)",
    schema: z.string().optional(),
  },
  INFLUX_TOKEN: { env: ["INFLUX_TOKEN"], help: "2.x token", secret: "influx-token", schema: z.string().optional() },
  INFLUX_USERNAME: { env: ["INFLUX_USERNAME"], help: "1.x user name", schema: z.string().optional() },
  INFLUX_PASSWORD: {
    env: ["INFLUX_PASSWORD"],
    help: "1.x password",
    secret: "influx-password",
    schema: z.string().optional(),
  },
  SECRET_MOUNT_PATH: SECRET_SETTINGS.SECRET_MOUNT_PATH,
  // The broker's variables are every MQTT client's (lib/mqtt/settings.ts): MQTT_URL, MQTT_HOST.
  broker: {
    env: [],
    flag: "--broker <url>",
    help: "MQTT broker URL or host name, credentials from MQTT_USERNAME/MQTT_PASSWORD",
    default: `$MQTT_URL or ${DEFAULT_MQTT_URL}`,
    schema: brokerAddress.optional(),
  },
  INFLUX_CLIENT_ID: {
    env: ["INFLUX_CLIENT_ID"],
    flag: "--client-id <id>",
    help: "the persistent session's client id",
    doc: "the persistent session's client id: keep it stable",
    default: d.INFLUX_CLIENT_ID,
    schema: z.string().default(d.INFLUX_CLIENT_ID),
  },
  INFLUX_BATCH_SIZE: {
    env: ["INFLUX_BATCH_SIZE"],
    flag: "--batch-size <n>",
    help: "points per write",
    doc: "points per write: a batch is written when it is full or `INFLUX_FLUSH_MS` old",
    default: d.INFLUX_BATCH_SIZE,
    schema: z.coerce.number().int().min(1).max(100_000).default(d.INFLUX_BATCH_SIZE),
  },
  INFLUX_FLUSH_MS: {
    env: ["INFLUX_FLUSH_MS"],
    flag: "--flush-ms <ms>",
    help: "longest wait before a partial batch is written",
    default: d.INFLUX_FLUSH_MS,
    schema: z.coerce.number().int().min(1).max(60_000).default(d.INFLUX_FLUSH_MS),
  },
  INFLUX_RETRY_BASE_MS: {
    env: ["INFLUX_RETRY_BASE_MS"],
    help: "first wait after a failed write, doubled up to INFLUX_RETRY_MAX_MS",
    doc: "first wait after a failed write, doubled up to `INFLUX_RETRY_MAX_MS`, ±50% jitter",
    default: d.INFLUX_RETRY_BASE_MS,
    schema: z.coerce.number().int().min(1).max(60_000).default(d.INFLUX_RETRY_BASE_MS),
  },
  INFLUX_RETRY_MAX_MS: {
    env: ["INFLUX_RETRY_MAX_MS"],
    flag: "--retry-max-ms <ms>",
    help: "longest wait between two write attempts while InfluxDB is down",
    doc: "longest wait between two write attempts while InfluxDB is down: the writer notices InfluxDB is back at most 1.5 × this late",
    default: d.INFLUX_RETRY_MAX_MS,
    schema: z.coerce.number().int().min(1).max(300_000).default(d.INFLUX_RETRY_MAX_MS),
  },
  INFLUX_MAX_BUFFER_BYTES: {
    env: ["INFLUX_MAX_BUFFER_BYTES"],
    flag: "--max-buffer-bytes <n>",
    help: "bytes of messages held unwritten before the writer stops reading from the broker",
    doc: "bytes of messages held unwritten; at this bound the writer stops reading from the broker until a write frees room",
    default: d.INFLUX_MAX_BUFFER_BYTES,
    schema: z.coerce.number().int().min(1024).default(d.INFLUX_MAX_BUFFER_BYTES),
  },
  INFLUX_WRITER_PORT: {
    env: ["INFLUX_WRITER_PORT"],
    flag: "--port <port>",
    help: "port of /healthz and /metrics",
    doc: "port of `/healthz`, `/livez` and `/metrics`",
    default: d.INFLUX_WRITER_PORT,
    schema: z.coerce.number().int().min(0).max(65_535).default(d.INFLUX_WRITER_PORT),
  },
  HEALTH_HOST: HEALTH_HOST_SETTING,
});

/** The writer's settings, typed: what its flags give and what `readWriterConfig` takes besides the environment. */
export type WriterSettings = SettingValues<typeof WRITER_SETTINGS>;

/**
 * INFLUX_URL, then the 2.x API when INFLUX_TOKEN (or its file) is set or INFLUX_API=2: INFLUX_ORG,
 * INFLUX_BUCKET (default fan); otherwise the 1.x API: INFLUX_DB (default fan), optional
 * INFLUX_USERNAME/INFLUX_PASSWORD. Secrets may come from *_FILE or the OpenFaaS secret folder.
 * `given` settings (flags, or `fanwatch start`'s choices) beat the environment.
 */
export function readWriterConfig(env?: NodeJS.ProcessEnv, given: Partial<WriterSettings> = {}): WriterConfig {
  const { values: s, from } = readSettingsFrom(WRITER_SETTINGS, env, given);
  const url = s.INFLUX_URL;
  if (url === undefined)
    throw new ConfigError(
      "INFLUX_URL is not set: the writer needs an InfluxDB to write to (e.g. http://127.0.0.1:8086)",
    );
  const token = s.INFLUX_TOKEN;
  const api = s.INFLUX_API ?? (token === undefined ? "1" : "2");
  let influx: InfluxTarget;
  if (api === "2") {
    const org = s.INFLUX_ORG;
    if (token === undefined || org === undefined)
      throw new ConfigError("the InfluxDB 2.x API needs INFLUX_TOKEN (or INFLUX_TOKEN_FILE) and INFLUX_ORG");
    influx = { api: "v2", url: trimSlash(url), bucket: s.INFLUX_BUCKET ?? s.INFLUX_DB ?? d.INFLUX_DB, org, token };
  } else {
    const username = s.INFLUX_USERNAME;
    const password = s.INFLUX_PASSWORD;
    influx = {
      api: "v1",
      url: trimSlash(url),
      database: s.INFLUX_DB ?? s.INFLUX_BUCKET ?? d.INFLUX_DB,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
    };
  }
  return {
    influx,
    mqtt: mqttSettingsFromEnv(env, { url: s.broker, from: from.broker, secretPath: s.SECRET_MOUNT_PATH }),
    topics: readTopics(env),
    clientId: s.INFLUX_CLIENT_ID,
    batchSize: s.INFLUX_BATCH_SIZE,
    flushMs: s.INFLUX_FLUSH_MS,
    retryBaseMs: s.INFLUX_RETRY_BASE_MS,
    retryMaxMs: s.INFLUX_RETRY_MAX_MS,
    maxBufferBytes: s.INFLUX_MAX_BUFFER_BYTES,
    port: s.INFLUX_WRITER_PORT,
    healthHost: s.HEALTH_HOST,
  };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
