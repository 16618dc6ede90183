import { z } from "zod";
import { ConfigError } from "./errors.js";
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS } from "./model/batcher.js";
import { BACKENDS, type BackendName } from "./model/backend-names.js";

/** Environment of the score function. Resolved once at start-up; a bad value stops the start. */
const ScoreEnv = z.object({
  MODEL_DIR: z.string().min(1).default("model/artifact"),
  TFJS_BACKEND: z.enum(BACKENDS).optional(),
  SCORE_MAX_BATCH: z.coerce.number().int().min(1).default(DEFAULT_MAX_BATCH_SIZE),
  SCORE_BATCH_WAIT_MS: z.coerce.number().min(0).max(1000).default(DEFAULT_MAX_WAIT_MS),
});

export interface ScoreConfig {
  modelDir: string;
  backend: BackendName | undefined;
  maxBatchSize: number;
  maxWaitMs: number;
}

export function readScoreConfig(env: NodeJS.ProcessEnv = process.env): ScoreConfig {
  const e = parseEnv(ScoreEnv, env);
  return { modelDir: e.MODEL_DIR, backend: e.TFJS_BACKEND, maxBatchSize: e.SCORE_MAX_BATCH, maxWaitMs: e.SCORE_BATCH_WAIT_MS };
}

/** The first of `names` set to a non-empty value: the reference system's names are aliases. */
export function envValue(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

export interface Topics {
  telemetry: string;
  anomaly: string;
  deadletter: string;
  /** Health transitions (fan/alarm), published by the health function. */
  alarm: string;
}

/** TELEMETRY_TOPIC (MQTT_DEV_TOPIC), ANOMALY_TOPIC (MQTT_PREDICT_TOPIC), DEADLETTER_TOPIC, ALARM_TOPIC. */
export function readTopics(env: NodeJS.ProcessEnv = process.env): Topics {
  return {
    telemetry: envValue(env, "TELEMETRY_TOPIC", "MQTT_DEV_TOPIC") ?? "fan/messages",
    anomaly: envValue(env, "ANOMALY_TOPIC", "MQTT_PREDICT_TOPIC") ?? "fan/anomaly",
    deadletter: envValue(env, "DEADLETTER_TOPIC") ?? "fan/deadletter",
    alarm: envValue(env, "ALARM_TOPIC") ?? "fan/alarm",
  };
}

/**
 * predict's time limits. An invocation gets one budget, shared by the score call and the
 * publishes: PREDICT_BUDGET_MS, or less when the caller says it gives up sooner (X-Timeout-Ms).
 * The defaults fit stack.yml's timeouts (the arithmetic is there).
 */
const PredictEnv = z.object({
  PREDICT_BUDGET_MS: z.coerce.number().int().min(1).default(9_000),
  SCORE_TIMEOUT_MS: z.coerce.number().int().min(1).default(5_000),
  PREDICT_MAX_READINGS: z.coerce.number().int().min(1).default(10_000),
});

/** Settings predict no longer reads: retries live in the connector, publishes share the budget. */
const REMOVED_PREDICT_SETTINGS = ["SCORE_RETRIES", "PUBLISH_TIMEOUT_MS"] as const;

export interface PredictConfig {
  scoreUrl: string;
  topics: Topics;
  budgetMs: number;
  scoreTimeoutMs: number;
  maxReadings: number;
  /** Removed settings found in the environment, to be reported at start. */
  ignored: string[];
}

export function readPredictConfig(env: NodeJS.ProcessEnv = process.env): PredictConfig {
  const e = parseEnv(PredictEnv, env);
  return {
    scoreUrl: envValue(env, "SCORE_URL", "SCORING_URL") ?? "http://127.0.0.1:8080/function/score",
    topics: readTopics(env),
    budgetMs: e.PREDICT_BUDGET_MS,
    scoreTimeoutMs: e.SCORE_TIMEOUT_MS,
    maxReadings: e.PREDICT_MAX_READINGS,
    ignored: REMOVED_PREDICT_SETTINGS.filter((name) => envValue(env, name) !== undefined),
  };
}

/** Parses the variables a schema names; empty values count as unset. */
export function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid configuration: ${String(issue?.path[0])}: ${issue?.message}`);
  }
  return parsed.data;
}

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
