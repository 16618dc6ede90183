import { z } from "zod";
import { envValue, parseEnv, readTopics, type Topics } from "../../lib/infra/config.js";

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
