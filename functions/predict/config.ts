import { z } from "zod";
import { hostname } from "node:os";
import { readSite, readTopics, type Topics } from "../../lib/infra/config.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";

/**
 * predict's defaults, by variable. An invocation gets one budget, shared by the score call and
 * the publishes: PREDICT_BUDGET_MS, or less when the caller says it gives up sooner (X-Timeout-Ms).
 * The time limits fit stack.yml's timeouts (the arithmetic is there).
 */
export const PREDICT_DEFAULTS = Object.freeze({
  SCORE_URL: "http://127.0.0.1:8080/function/score",
  PREDICT_BUDGET_MS: 9_000,
  SCORE_TIMEOUT_MS: 5_000,
  PREDICT_MAX_READINGS: 10_000,
  PREDICT_COMPARE_EVERY_MS: 5_000,
  PREDICT_SHADOW_MAX_FANS: 2_000,
});

const d = PREDICT_DEFAULTS;

/** predict's settings (besides the topics, lib/infra/config.ts, and the broker, lib/mqtt/settings.ts). */
export const PREDICT_SETTINGS = defineSettings({
  SCORE_URL: {
    env: ["SCORE_URL", "SCORING_URL"],
    help: "the score function",
    default: d.SCORE_URL,
    schema: z.string().default(d.SCORE_URL),
  },
  PREDICT_BUDGET_MS: {
    env: ["PREDICT_BUDGET_MS"],
    help: "an invocation's time: score call and publishes; keep it below the caller's timeout and exec_timeout",
    default: d.PREDICT_BUDGET_MS,
    schema: z.coerce.number().int().min(1).default(d.PREDICT_BUDGET_MS),
  },
  SCORE_TIMEOUT_MS: {
    env: ["SCORE_TIMEOUT_MS"],
    help: "the longest the score call may take within the budget",
    default: d.SCORE_TIMEOUT_MS,
    schema: z.coerce.number().int().min(1).default(d.SCORE_TIMEOUT_MS),
  },
  PREDICT_MAX_READINGS: {
    env: ["PREDICT_MAX_READINGS"],
    help: "readings per invocation",
    default: d.PREDICT_MAX_READINGS,
    schema: z.coerce.number().int().min(1).default(d.PREDICT_MAX_READINGS),
  },
  NATS_URL: {
    env: ["NATS_URL"],
    help: "the NATS server holding the model registry; predict writes its shadow comparisons there (none without it)",
    doc: "the NATS server holding the model registry (docs/models.md); predict writes its shadow comparisons to KV `fan_models_active` there. Without it a shadow is still compared and counted in the metrics, not stored",
    schema: z.string().optional(),
  },
  PREDICT_REPLICA: {
    env: ["PREDICT_REPLICA"],
    help: "this replica's name in its shadow comparisons (default: the host name and the process id, unique on one machine too)",
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,128}$/, "letters, digits, _ . and - only, at most 128")
      .optional(),
  },
  PREDICT_COMPARE_EVERY_MS: {
    env: ["PREDICT_COMPARE_EVERY_MS"],
    help: "how often a shadow comparison that changed is written to NATS (and once more on drain)",
    default: d.PREDICT_COMPARE_EVERY_MS,
    schema: z.coerce.number().int().min(100).default(d.PREDICT_COMPARE_EVERY_MS),
  },
  PREDICT_SHADOW_MAX_FANS: {
    env: ["PREDICT_SHADOW_MAX_FANS"],
    help: "fans whose health a replica follows under both models while a shadow runs (memory: two health states each)",
    doc: "fans whose health a replica follows under both models while a shadow runs: about 5 KiB each (measured), so 2,000 is some 11 MB within predict's 256 MiB; readings of further fans count towards agreement only",
    default: d.PREDICT_SHADOW_MAX_FANS,
    schema: z.coerce.number().int().min(1).default(d.PREDICT_SHADOW_MAX_FANS),
  },
});

/**
 * Settings predict no longer reads: retries live in the connector, publishes share the budget.
 * Read only to warn at start that they have no effect; not in the registry, so no help lists them.
 */
const REMOVED_PREDICT_SETTINGS = defineSettings({
  SCORE_RETRIES: { env: ["SCORE_RETRIES"], help: "removed", schema: z.string().optional() },
  PUBLISH_TIMEOUT_MS: { env: ["PUBLISH_TIMEOUT_MS"], help: "removed", schema: z.string().optional() },
});

export interface PredictConfig {
  /** @default PREDICT_DEFAULTS.SCORE_URL */
  scoreUrl: string;
  topics: Topics;
  /** @default PREDICT_DEFAULTS.PREDICT_BUDGET_MS */
  budgetMs: number;
  /** @default PREDICT_DEFAULTS.SCORE_TIMEOUT_MS */
  scoreTimeoutMs: number;
  /** @default PREDICT_DEFAULTS.PREDICT_MAX_READINGS */
  maxReadings: number;
  /** NATS_URL: where shadow comparisons are written; none without it. */
  natsUrl: string | undefined;
  /** SITE (lib/infra/config.ts). */
  site: string;
  /**
   * PREDICT_REPLICA, else the host name and process id, as score's SCORE_REPLICA: replicas on one
   * machine (the local gateway scales predict) each keep their own comparison key rather than
   * overwrite one another's running totals.
   */
  replica: string;
  /** @default PREDICT_DEFAULTS.PREDICT_COMPARE_EVERY_MS */
  compareEveryMs: number;
  /** @default PREDICT_DEFAULTS.PREDICT_SHADOW_MAX_FANS */
  shadowMaxFans: number;
  /** Removed settings found in the environment, to be reported at start. */
  ignored: string[];
}

/** From the environment unless `env` is given. */
export function readPredictConfig(env?: NodeJS.ProcessEnv): PredictConfig {
  const s = readSettings(PREDICT_SETTINGS, env);
  const removed = readSettings(REMOVED_PREDICT_SETTINGS, env);
  return {
    scoreUrl: s.SCORE_URL,
    topics: readTopics(env),
    budgetMs: s.PREDICT_BUDGET_MS,
    scoreTimeoutMs: s.SCORE_TIMEOUT_MS,
    maxReadings: s.PREDICT_MAX_READINGS,
    // Empty is unset: the local runner gives every function NATS_URL, empty when there is no NATS.
    natsUrl: s.NATS_URL === "" ? undefined : s.NATS_URL,
    site: readSite(env),
    replica: s.PREDICT_REPLICA ?? `${hostname()}-${process.pid}`,
    compareEveryMs: s.PREDICT_COMPARE_EVERY_MS,
    shadowMaxFans: s.PREDICT_SHADOW_MAX_FANS,
    ignored: Object.entries(removed)
      .filter(([, value]) => value !== undefined)
      .map(([name]) => name),
  };
}
