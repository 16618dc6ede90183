import { z } from "zod";
import { readSettings, readTopics, type Topics } from "../../lib/infra/config.js";
import type { Setting } from "../../lib/infra/settings.js";

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
});

const d = HEALTH_DEFAULTS;

const HealthSchema = z.object({
  NATS_URL: z.string().optional(),
  HEALTH_BUCKET: z
    .string()
    .regex(/^[-\w]+$/, "letters, digits, _ and - only (a NATS bucket name)")
    .default(d.HEALTH_BUCKET),
  HEALTH_BUDGET_MS: z.coerce.number().int().min(1).default(d.HEALTH_BUDGET_MS),
  HEALTH_MAX_PREDICTIONS: z.coerce.number().int().min(1).default(d.HEALTH_MAX_PREDICTIONS),
  HEALTH_CAS_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(d.HEALTH_CAS_ATTEMPTS),
  HEALTH_OUTBOX_RESEND_MS: z.coerce.number().int().min(1).default(d.HEALTH_OUTBOX_RESEND_MS),
  HEALTH_SILENT_CHECK_MS: z.coerce.number().int().min(100).default(d.HEALTH_SILENT_CHECK_MS),
  NATS_KV_REPLICAS: z.coerce.number().int().min(1).max(5).default(d.NATS_KV_REPLICAS),
  NATS_TIMEOUT_MS: z.coerce.number().int().min(1).default(d.NATS_TIMEOUT_MS),
});

/** The health function's settings (besides the topics: lib/infra/config.ts). */
export const HEALTH_SETTINGS: Readonly<Record<keyof z.output<typeof HealthSchema>, Setting>> = Object.freeze({
  NATS_URL: {
    env: ["NATS_URL"],
    help: "the NATS server (JetStream) keeping the fans' health; without it, memory (not durable)",
  },
  HEALTH_BUCKET: { env: ["HEALTH_BUCKET"], help: "the key-value bucket of the fans' health", default: d.HEALTH_BUCKET },
  // Below the connector's timeout: stack.yml has the arithmetic.
  HEALTH_BUDGET_MS: {
    env: ["HEALTH_BUDGET_MS"],
    help: "an invocation's store writes and publishes together",
    default: d.HEALTH_BUDGET_MS,
  },
  HEALTH_MAX_PREDICTIONS: {
    env: ["HEALTH_MAX_PREDICTIONS"],
    help: "predictions per invocation",
    default: d.HEALTH_MAX_PREDICTIONS,
  },
  HEALTH_CAS_ATTEMPTS: {
    env: ["HEALTH_CAS_ATTEMPTS"],
    help: "compare-and-set attempts per fan and invocation before a 503",
    default: d.HEALTH_CAS_ATTEMPTS,
  },
  // Above the budget, so a writer that is merely slow is not doubled.
  HEALTH_OUTBOX_RESEND_MS: {
    env: ["HEALTH_OUTBOX_RESEND_MS"],
    help: "after this long an unpublished transition is sent by whoever touches its fan",
    default: d.HEALTH_OUTBOX_RESEND_MS,
  },
  HEALTH_SILENT_CHECK_MS: {
    env: ["HEALTH_SILENT_CHECK_MS"],
    help: "how often the silence timer looks at every fan",
    default: d.HEALTH_SILENT_CHECK_MS,
  },
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "replicas of the bucket in a NATS cluster",
    default: d.NATS_KV_REPLICAS,
  },
  NATS_TIMEOUT_MS: { env: ["NATS_TIMEOUT_MS"], help: "per NATS request", default: d.NATS_TIMEOUT_MS },
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
}

export function readHealthConfig(env: NodeJS.ProcessEnv = process.env): HealthConfig {
  const s = readSettings(HealthSchema, HEALTH_SETTINGS, env);
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
  };
}
