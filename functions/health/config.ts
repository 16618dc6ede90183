import { z } from "zod";
import { envValue, parseEnv, readTopics, type Topics } from "../../lib/infra/config.js";

/**
 * The health function's settings (its rules are functions/health/policy.ts, HEALTH_* as well).
 * HEALTH_BUDGET_MS: an invocation's store writes and publishes together, below the connector's
 * timeout (stack.yml has the arithmetic). HEALTH_CAS_ATTEMPTS: compare-and-set attempts per fan
 * and invocation before a 503. HEALTH_OUTBOX_RESEND_MS: after this long an unpublished transition
 * is sent by whoever touches its fan; above the budget, so a writer that is merely slow is not
 * doubled. HEALTH_SILENT_CHECK_MS: how often the silence timer looks at every fan.
 */
const HealthEnv = z.object({
  HEALTH_BUCKET: z.string().regex(/^[-\w]+$/, "letters, digits, _ and - only (a NATS bucket name)").default("fan_health"),
  HEALTH_BUDGET_MS: z.coerce.number().int().min(1).default(9_000),
  HEALTH_MAX_PREDICTIONS: z.coerce.number().int().min(1).default(10_000),
  HEALTH_CAS_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  HEALTH_OUTBOX_RESEND_MS: z.coerce.number().int().min(1).default(15_000),
  HEALTH_SILENT_CHECK_MS: z.coerce.number().int().min(100).default(5_000),
  NATS_KV_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  NATS_TIMEOUT_MS: z.coerce.number().int().min(1).default(5_000),
});

export interface HealthConfig {
  /** NATS_URL; without it the function keeps its state in memory (not durable). */
  natsUrl: string | undefined;
  bucket: string;
  kvReplicas: number;
  natsTimeoutMs: number;
  topics: Topics;
  budgetMs: number;
  maxPredictions: number;
  casAttempts: number;
  outboxResendMs: number;
  silentCheckMs: number;
}

export function readHealthConfig(env: NodeJS.ProcessEnv = process.env): HealthConfig {
  const e = parseEnv(HealthEnv, env);
  return {
    natsUrl: envValue(env, "NATS_URL"),
    bucket: e.HEALTH_BUCKET,
    kvReplicas: e.NATS_KV_REPLICAS,
    natsTimeoutMs: e.NATS_TIMEOUT_MS,
    topics: readTopics(env),
    budgetMs: e.HEALTH_BUDGET_MS,
    maxPredictions: e.HEALTH_MAX_PREDICTIONS,
    casAttempts: e.HEALTH_CAS_ATTEMPTS,
    outboxResendMs: e.HEALTH_OUTBOX_RESEND_MS,
    silentCheckMs: e.HEALTH_SILENT_CHECK_MS,
  };
}
