import { z } from "zod";
import { ConfigError } from "../lib/errors.js";
import { readSite } from "../lib/infra/config.js";
import { durationSchema } from "../lib/infra/duration.js";
import { HEALTH_HOST_SETTING } from "../lib/infra/health-server.js";
import { defineSettings, readSettingsFrom, SECRET_SETTINGS, type SettingValues } from "../lib/infra/settings.js";

/** The notifier's defaults, by variable. */
export const NOTIFIER_DEFAULTS = Object.freeze({
  NOTIFY_MAX_AGE: "24h",
  NOTIFY_TIMEOUT: "10s",
  NOTIFY_RETRY_MAX: "5m",
  ALERTMANAGER_RESEND: "1m",
  PAGE_URL: "http://localhost:8080",
  NOTIFIER_PORT: 8084,
  NATS_KV_REPLICAS: 1,
});

const d = NOTIFIER_DEFAULTS;

/**
 * A comma-separated list of http(s) URLs, each checked; empty entries are ignored. A bad entry is
 * named by its place and, when it parses, its scheme and host: never echoed whole, since a
 * webhook's user, password, path and query are often its secret.
 */
const urlList = z
  .string()
  .optional()
  .transform((text, ctx) => {
    const urls = (text ?? "")
      .split(",")
      .map((u) => u.trim())
      .filter((u) => u !== "");
    for (const [i, u] of urls.entries()) {
      const entry = `entry ${i + 1}${urls.length === 1 ? "" : ` of ${urls.length}`}`;
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        ctx.addIssue({ code: "custom", message: `${entry} is not a URL` });
        return z.NEVER;
      }
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        ctx.addIssue({ code: "custom", message: `${entry} (${schemeAndHost(parsed)}) is not an http(s) URL` });
        return z.NEVER;
      }
    }
    return urls;
  });

/** `scheme://host[:port]`: what a message may show of a URL. */
function schemeAndHost(url: URL): string {
  return url.host === "" ? url.protocol : `${url.protocol}//${url.host}`;
}

export const NOTIFIER_SETTINGS = defineSettings({
  NATS_URL: {
    env: ["NATS_URL"],
    flag: "--nats <url>",
    help: "the NATS server (JetStream) holding health's event stream and the notifier's queues",
    schema: z.string().optional(),
  },
  ALERTMANAGER_URL: {
    env: ["ALERTMANAGER_URL"],
    sensitive: true,
    flag: "--alertmanager <urls>",
    help: "Alertmanager(s) to push alerts and silences to, comma-separated (each of an HA pair)",
    doc: "Alertmanager(s) to push alerts (API v2) and silences to, comma-separated: every one gets every alert (an HA pair)",
    schema: urlList,
  },
  NOTIFY_WEBHOOK_URL: {
    env: ["NOTIFY_WEBHOOK_URL"],
    sensitive: true,
    flag: "--webhook <urls>",
    help: "webhook(s) sent one signed JSON body per transition, comma-separated",
    schema: urlList,
  },
  NOTIFY_WEBHOOK_SECRET: {
    env: ["NOTIFY_WEBHOOK_SECRET"],
    help: "the key of the webhooks' HMAC-SHA256 signature (X-Fanwatch-Signature)",
    schema: z.string().min(16, "at least 16 characters").optional(),
    secret: "notify-webhook-secret",
  },
  NOTIFY_MAX_AGE: {
    env: ["NOTIFY_MAX_AGE"],
    help: "a notification not delivered after this long becomes a dead letter",
    doc: "a notification not delivered after this long (retried with back-off meanwhile) becomes a dead letter: `fanwatch notifications list\\|redrive`",
    default: d.NOTIFY_MAX_AGE,
    schema: durationSchema(d.NOTIFY_MAX_AGE),
  },
  NOTIFY_TIMEOUT: {
    env: ["NOTIFY_TIMEOUT"],
    help: "one HTTP request to a receiver",
    default: d.NOTIFY_TIMEOUT,
    schema: durationSchema(d.NOTIFY_TIMEOUT),
  },
  NOTIFY_RETRY_MAX: {
    env: ["NOTIFY_RETRY_MAX"],
    help: "longest wait between two attempts at a receiver that is down",
    default: d.NOTIFY_RETRY_MAX,
    schema: durationSchema(d.NOTIFY_RETRY_MAX, 10),
  },
  ALERTMANAGER_RESEND: {
    env: ["ALERTMANAGER_RESEND"],
    help: "how often open alerts are sent again (well within Alertmanager's resolve_timeout, 5m by default)",
    default: d.ALERTMANAGER_RESEND,
    schema: durationSchema(d.ALERTMANAGER_RESEND, 10),
  },
  PAGE_URL: {
    env: ["PAGE_URL"],
    help: "the page's address as people reach it: the link to the fan in every notification",
    default: d.PAGE_URL,
    schema: z.url().default(d.PAGE_URL),
  },
  NOTIFIER_PORT: {
    env: ["NOTIFIER_PORT"],
    flag: "--port <port>",
    help: "port of /healthz and /metrics",
    doc: "port of `/healthz`, `/livez` and `/metrics`",
    default: d.NOTIFIER_PORT,
    schema: z.coerce.number().int().min(0).max(65_535).default(d.NOTIFIER_PORT),
  },
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "copies of the notifier's stream and bucket in a NATS cluster (as health's)",
    doc: "copies in a NATS cluster (health's setting too): of FAN_NOTIFICATIONS, of FAN_HEALTH_EVENTS when the notifier creates it, and of the Alertmanager target's bucket `fan_alerts`",
    default: d.NATS_KV_REPLICAS,
    schema: z.coerce.number().int().min(1).max(5).default(d.NATS_KV_REPLICAS),
  },
  HEALTH_HOST: HEALTH_HOST_SETTING,
  SECRET_MOUNT_PATH: SECRET_SETTINGS.SECRET_MOUNT_PATH,
});

export type NotifierSettings = SettingValues<typeof NOTIFIER_SETTINGS>;

export interface NotifierConfig {
  natsUrl: string;
  site: string;
  alertmanagerUrls: string[];
  webhookUrls: string[];
  /** Required when there is a webhook: an unsigned notification could come from anyone. */
  webhookSecret: string | undefined;
  maxAgeMs: number;
  timeoutMs: number;
  retryMaxMs: number;
  alertmanagerResendMs: number;
  pageUrl: string;
  port: number;
  healthHost: string;
  /** NATS_KV_REPLICAS: copies of the streams and the bucket the notifier creates. */
  replicas: number;
}

/** From the environment unless `env` is given; `given` (flags, `fanwatch start`'s choices) beats it. */
export function readNotifierConfig(env?: NodeJS.ProcessEnv, given: Partial<NotifierSettings> = {}): NotifierConfig {
  const { values: s } = readSettingsFrom(NOTIFIER_SETTINGS, env, given);
  if (s.NATS_URL === undefined)
    throw new ConfigError(
      "NATS_URL is not set: the notifier reads health's event stream and keeps its queues in NATS JetStream",
    );
  if (s.NOTIFY_WEBHOOK_URL.length > 0 && s.NOTIFY_WEBHOOK_SECRET === undefined)
    throw new ConfigError(
      "NOTIFY_WEBHOOK_URL is set but no signing key: set NOTIFY_WEBHOOK_SECRET_FILE (or the secret notify-webhook-secret)",
    );
  return {
    natsUrl: s.NATS_URL,
    site: readSite(env),
    alertmanagerUrls: s.ALERTMANAGER_URL,
    webhookUrls: s.NOTIFY_WEBHOOK_URL,
    webhookSecret: s.NOTIFY_WEBHOOK_SECRET,
    maxAgeMs: s.NOTIFY_MAX_AGE,
    timeoutMs: s.NOTIFY_TIMEOUT,
    retryMaxMs: s.NOTIFY_RETRY_MAX,
    alertmanagerResendMs: s.ALERTMANAGER_RESEND,
    pageUrl: s.PAGE_URL.replace(/\/+$/, ""),
    port: s.NOTIFIER_PORT,
    healthHost: s.HEALTH_HOST,
    replicas: s.NATS_KV_REPLICAS,
  };
}
