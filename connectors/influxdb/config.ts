import { join } from "node:path";
import { z } from "zod";
import { envValue, parseEnv, readTopics, type Topics } from "../../lib/infra/config.js";
import { ConfigError } from "../../lib/errors.js";
import { healthHostFromEnv } from "../../lib/infra/health-server.js";
import { mqttSettingsFromEnv, type MqttSettings } from "../../lib/mqtt/client.js";
import { DEFAULT_SECRET_PATH, readSecret } from "../../lib/infra/secrets.js";

export type InfluxTarget =
  | { api: "v1"; url: string; database: string; username?: string; password?: string }
  | { api: "v2"; url: string; bucket: string; org: string; token: string };

export interface WriterConfig {
  influx: InfluxTarget;
  mqtt: MqttSettings;
  topics: Topics;
  clientId: string;
  batchSize: number;
  flushMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Bytes of messages received and not yet stored; above it the writer stops reading from the broker. */
  maxBufferBytes: number;
  /** /healthz and /metrics. */
  port: number;
  healthHost: string;
}

const Numbers = z.object({
  INFLUX_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000),
  INFLUX_FLUSH_MS: z.coerce.number().int().min(1).max(60_000).default(1000),
  INFLUX_RETRY_BASE_MS: z.coerce.number().int().min(1).max(60_000).default(500),
  // The longest wait between two write attempts (1.5 × this with jitter) is how late the writer can
  // notice that InfluxDB is back: with 30 s, storage resumed 37 s after a 60 s outage in the fault suite.
  INFLUX_RETRY_MAX_MS: z.coerce.number().int().min(1).max(300_000).default(5_000),
  INFLUX_MAX_BUFFER_BYTES: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  INFLUX_WRITER_PORT: z.coerce.number().int().min(0).max(65_535).default(8082),
});

/**
 * INFLUX_URL, then the 2.x API when INFLUX_TOKEN (or its file) is set or INFLUX_API=2: INFLUX_ORG,
 * INFLUX_BUCKET (default fan); otherwise the 1.x API: INFLUX_DB (default fan), optional
 * INFLUX_USERNAME/INFLUX_PASSWORD. Secrets may come from *_FILE or the OpenFaaS secret folder.
 */
export function readWriterConfig(env: NodeJS.ProcessEnv = process.env): WriterConfig {
  const url = envValue(env, "INFLUX_URL");
  if (url === undefined) throw new ConfigError("INFLUX_URL is not set: the writer needs an InfluxDB to write to (e.g. http://127.0.0.1:8086)");
  const secretPath = envValue(env, "SECRET_MOUNT_PATH") ?? DEFAULT_SECRET_PATH;
  const secret = (name: string, file: string) => envValue(env, name) ?? readSecret(envValue(env, `${name}_FILE`) ?? join(secretPath, file));
  const token = secret("INFLUX_TOKEN", "influx-token");
  const api = envValue(env, "INFLUX_API") ?? (token === undefined ? "1" : "2");
  if (api !== "1" && api !== "2") throw new ConfigError(`INFLUX_API is 1 or 2, not "${api}"`);
  let influx: InfluxTarget;
  if (api === "2") {
    const org = envValue(env, "INFLUX_ORG");
    if (token === undefined || org === undefined) throw new ConfigError("the InfluxDB 2.x API needs INFLUX_TOKEN (or INFLUX_TOKEN_FILE) and INFLUX_ORG");
    influx = { api: "v2", url: trimSlash(url), bucket: envValue(env, "INFLUX_BUCKET", "INFLUX_DB") ?? "fan", org, token };
  } else {
    const username = envValue(env, "INFLUX_USERNAME");
    const password = secret("INFLUX_PASSWORD", "influx-password");
    influx = { api: "v1", url: trimSlash(url), database: envValue(env, "INFLUX_DB", "INFLUX_BUCKET") ?? "fan", ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) };
  }
  const numbers = parseEnv(Numbers, env);
  return {
    influx,
    mqtt: mqttSettingsFromEnv(env, secretPath),
    topics: readTopics(env),
    clientId: envValue(env, "INFLUX_CLIENT_ID") ?? "fanwatch-influx-writer",
    batchSize: numbers.INFLUX_BATCH_SIZE,
    flushMs: numbers.INFLUX_FLUSH_MS,
    retryBaseMs: numbers.INFLUX_RETRY_BASE_MS,
    retryMaxMs: numbers.INFLUX_RETRY_MAX_MS,
    maxBufferBytes: numbers.INFLUX_MAX_BUFFER_BYTES,
    port: numbers.INFLUX_WRITER_PORT,
    healthHost: healthHostFromEnv(env),
  };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
