import { z } from "zod";
import { parseEnv } from "../../lib/infra/config.js";
import { BACKENDS, type BackendName } from "../../lib/inference/backend-names.js";
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS } from "./batcher.js";

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
