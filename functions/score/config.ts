import { z } from "zod";
import { readSettings } from "../../lib/infra/config.js";
import type { Setting } from "../../lib/infra/settings.js";
import { BACKENDS, type BackendName } from "../../lib/inference/backend-names.js";
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS } from "./batcher.js";

/** Relative to the working directory: /home/app in the image, the repository for the local gateway. */
export const DEFAULT_MODEL_DIR = "model/artifact";

/** Environment of the score function. Resolved once at start-up; a bad value stops the start. */
const ScoreSchema = z.object({
  MODEL_DIR: z.string().min(1).default(DEFAULT_MODEL_DIR),
  TFJS_BACKEND: z.enum(BACKENDS).optional(),
  SCORE_MAX_BATCH: z.coerce.number().int().min(1).default(DEFAULT_MAX_BATCH_SIZE),
  SCORE_BATCH_WAIT_MS: z.coerce.number().min(0).max(1000).default(DEFAULT_MAX_WAIT_MS),
});

export const SCORE_SETTINGS: Readonly<Record<keyof z.output<typeof ScoreSchema>, Setting>> = Object.freeze({
  MODEL_DIR: { env: ["MODEL_DIR"], help: "model directory", default: DEFAULT_MODEL_DIR },
  TFJS_BACKEND: { env: ["TFJS_BACKEND"], help: `${BACKENDS.join(", ")}`, default: "best available" },
  SCORE_MAX_BATCH: { env: ["SCORE_MAX_BATCH"], help: "largest coalesced batch", default: DEFAULT_MAX_BATCH_SIZE },
  SCORE_BATCH_WAIT_MS: {
    env: ["SCORE_BATCH_WAIT_MS"],
    help: "longest wait for company, ms (0: the next event-loop turn)",
    default: DEFAULT_MAX_WAIT_MS,
  },
});

export interface ScoreConfig {
  /** @default DEFAULT_MODEL_DIR */
  modelDir: string;
  /** The best available when not set. */
  backend: BackendName | undefined;
  /** @default DEFAULT_MAX_BATCH_SIZE */
  maxBatchSize: number;
  /** @default DEFAULT_MAX_WAIT_MS */
  maxWaitMs: number;
}

export function readScoreConfig(env: NodeJS.ProcessEnv = process.env): ScoreConfig {
  const s = readSettings(ScoreSchema, SCORE_SETTINGS, env);
  return {
    modelDir: s.MODEL_DIR,
    backend: s.TFJS_BACKEND,
    maxBatchSize: s.SCORE_MAX_BATCH,
    maxWaitMs: s.SCORE_BATCH_WAIT_MS,
  };
}
