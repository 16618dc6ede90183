import { z } from "zod";
import { readSite, readTopics, type Topics } from "../../lib/infra/config.js";
import { durationSchema } from "../../lib/infra/duration.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { USER_SIGNING_SETTINGS } from "../../lib/infra/signed-user.js";

/** The health function's defaults, by variable (its rules are functions/health/policy.ts, HEALTH_* as well). */
export const HEALTH_DEFAULTS = Object.freeze({
  HEALTH_BUCKET: "fan_health",
  HEALTH_BUDGET_MS: 9_000,
  HEALTH_MAX_PREDICTIONS: 10_000,
  HEALTH_CAS_ATTEMPTS: 10,
  HEALTH_OUTBOX_RESEND_MS: 15_000,
  HEALTH_SILENT_CHECK_MS: 5_000,
  NATS_KV_REPLICAS: 1,
  NATS_TIMEOUT_MS: 5_000,
  HEALTH_HISTORY_MAX_AGE: "400d",
});

const d = HEALTH_DEFAULTS;

/** The health function's settings (besides the topics, lib/infra/config.ts, and its rules, HEALTH_POLICY_SETTINGS). */
export const HEALTH_SETTINGS = defineSettings({
  NATS_URL: {
    env: ["NATS_URL"],
    help: "the NATS server (JetStream) keeping the fans' health; without it, memory (not durable)",
    doc: "the NATS server (JetStream) keeping the fans' health, e.g. `nats://nats.fanwatch:4222`; without it, memory (not durable)",
    schema: z.string().optional(),
  },
  HEALTH_BUCKET: {
    env: ["HEALTH_BUCKET"],
    help: "the key-value bucket of the fans' health",
    doc: "the key-value bucket of the fans' health (letters, digits, `_`, `-`)",
    default: d.HEALTH_BUCKET,
    schema: z
      .string()
      .regex(/^[-\w]+$/, "letters, digits, _ and - only (a NATS bucket name)")
      .default(d.HEALTH_BUCKET),
  },
  // Below the connector's timeout: stack.yml has the arithmetic.
  HEALTH_BUDGET_MS: {
    env: ["HEALTH_BUDGET_MS"],
    help: "an invocation's store writes and publishes together",
    default: d.HEALTH_BUDGET_MS,
    schema: z.coerce.number().int().min(1).default(d.HEALTH_BUDGET_MS),
  },
  HEALTH_MAX_PREDICTIONS: {
    env: ["HEALTH_MAX_PREDICTIONS"],
    help: "predictions per invocation",
    doc: "predictions per invocation (413 beyond)",
    default: d.HEALTH_MAX_PREDICTIONS,
    schema: z.coerce.number().int().min(1).default(d.HEALTH_MAX_PREDICTIONS),
  },
  HEALTH_CAS_ATTEMPTS: {
    env: ["HEALTH_CAS_ATTEMPTS"],
    help: "compare-and-set attempts per fan and invocation before a 503",
    default: d.HEALTH_CAS_ATTEMPTS,
    schema: z.coerce.number().int().min(1).max(100).default(d.HEALTH_CAS_ATTEMPTS),
  },
  // Above the budget, so a writer that is merely slow is not doubled.
  HEALTH_OUTBOX_RESEND_MS: {
    env: ["HEALTH_OUTBOX_RESEND_MS"],
    help: "after this long an unpublished transition is sent by whoever touches its fan",
    doc: "after this long an unpublished transition is sent by whoever touches its fan; above the budget, so a writer that is only slow is not doubled",
    default: d.HEALTH_OUTBOX_RESEND_MS,
    schema: z.coerce.number().int().min(1).default(d.HEALTH_OUTBOX_RESEND_MS),
  },
  HEALTH_SILENT_CHECK_MS: {
    env: ["HEALTH_SILENT_CHECK_MS"],
    help: "how often the silence timer looks at every fan",
    default: d.HEALTH_SILENT_CHECK_MS,
    schema: z.coerce.number().int().min(100).default(d.HEALTH_SILENT_CHECK_MS),
  },
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "replicas of the bucket in a NATS cluster",
    default: d.NATS_KV_REPLICAS,
    schema: z.coerce.number().int().min(1).max(5).default(d.NATS_KV_REPLICAS),
  },
  NATS_TIMEOUT_MS: {
    env: ["NATS_TIMEOUT_MS"],
    help: "per NATS request",
    doc: "one read or write; longer counts as NATS unavailable",
    default: d.NATS_TIMEOUT_MS,
    schema: z.coerce.number().int().min(1).default(d.NATS_TIMEOUT_MS),
  },
  // Over a year by default: last year's episodes of a fan are there to compare with.
  HEALTH_HISTORY_MAX_AGE: {
    env: ["HEALTH_HISTORY_MAX_AGE"],
    help: "how long the stream FAN_HEALTH_EVENTS keeps transitions (with NATS)",
    doc: "how long the JetStream stream `FAN_HEALTH_EVENTS` keeps every transition (a duration: `90d`, `400d`); with NATS only",
    default: d.HEALTH_HISTORY_MAX_AGE,
    // At least the stream's duplicate window's order of magnitude: a shorter history would forget a transition before a resend.
    schema: durationSchema(d.HEALTH_HISTORY_MAX_AGE, 60 * 60_000),
  },
  // The page's: set here too, every action needs the page's signed user (docs/health.md, "Who acts").
  PAGE_USER_SECRET: USER_SIGNING_SETTINGS.PAGE_USER_SECRET,
});

export interface HealthConfig {
  /** NATS_URL; without it the function keeps its state in memory (not durable). */
  natsUrl: string | undefined;
  /** @default HEALTH_DEFAULTS.HEALTH_BUCKET */
  bucket: string;
  /** @default HEALTH_DEFAULTS.NATS_KV_REPLICAS */
  kvReplicas: number;
  /** @default HEALTH_DEFAULTS.NATS_TIMEOUT_MS */
  natsTimeoutMs: number;
  topics: Topics;
  /** @default HEALTH_DEFAULTS.HEALTH_BUDGET_MS */
  budgetMs: number;
  /** @default HEALTH_DEFAULTS.HEALTH_MAX_PREDICTIONS */
  maxPredictions: number;
  /** @default HEALTH_DEFAULTS.HEALTH_CAS_ATTEMPTS */
  casAttempts: number;
  /** @default HEALTH_DEFAULTS.HEALTH_OUTBOX_RESEND_MS */
  outboxResendMs: number;
  /** @default HEALTH_DEFAULTS.HEALTH_SILENT_CHECK_MS */
  silentCheckMs: number;
  /** HEALTH_HISTORY_MAX_AGE in ms. @default HEALTH_DEFAULTS.HEALTH_HISTORY_MAX_AGE */
  historyMaxAgeMs: number;
  /** SITE (lib/infra/config.ts): stamped on every transition. */
  site: string;
  /** PAGE_USER_SECRET: when set, every action must carry the page's signed user, who is then `by`. */
  userSecret: string | undefined;
}

/** From the environment unless `env` is given. */
export function readHealthConfig(env?: NodeJS.ProcessEnv): HealthConfig {
  const s = readSettings(HEALTH_SETTINGS, env);
  return {
    natsUrl: s.NATS_URL,
    bucket: s.HEALTH_BUCKET,
    kvReplicas: s.NATS_KV_REPLICAS,
    natsTimeoutMs: s.NATS_TIMEOUT_MS,
    topics: readTopics(env),
    budgetMs: s.HEALTH_BUDGET_MS,
    maxPredictions: s.HEALTH_MAX_PREDICTIONS,
    casAttempts: s.HEALTH_CAS_ATTEMPTS,
    outboxResendMs: s.HEALTH_OUTBOX_RESEND_MS,
    silentCheckMs: s.HEALTH_SILENT_CHECK_MS,
    historyMaxAgeMs: s.HEALTH_HISTORY_MAX_AGE,
    site: readSite(env),
    userSecret: s.PAGE_USER_SECRET,
  };
}
