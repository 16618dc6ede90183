import { hostname } from "node:os";
import { z } from "zod";
import { SITE_SETTINGS } from "../../lib/infra/config.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { BACKENDS, type BackendName } from "../../lib/inference/backend-names.js";
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS } from "./batcher.js";

/** Relative to the working directory: /home/app in the image, the repository for the local gateway. */
export const DEFAULT_MODEL_DIR = "model/artifact";

/** The score function's settings. Resolved once at start-up; a bad value stops the start. */
export const SCORE_SETTINGS = defineSettings({
  MODEL_DIR: {
    env: ["MODEL_DIR"],
    help: "model directory, relative to the working directory (/home/app in the image)",
    default: DEFAULT_MODEL_DIR,
    schema: z.string().min(1).default(DEFAULT_MODEL_DIR),
  },
  TFJS_BACKEND: {
    env: ["TFJS_BACKEND"],
    help: `${BACKENDS.join(", ")}`,
    default: "best available",
    schema: z
      .enum(BACKENDS, { error: (issue) => `must be one of ${BACKENDS.join(", ")}, not ${JSON.stringify(issue.input)}` })
      .optional(),
  },
  SCORE_MAX_BATCH: {
    env: ["SCORE_MAX_BATCH"],
    help: "largest coalesced batch",
    default: DEFAULT_MAX_BATCH_SIZE,
    schema: z.coerce.number().int().min(1).default(DEFAULT_MAX_BATCH_SIZE),
  },
  SCORE_BATCH_WAIT_MS: {
    env: ["SCORE_BATCH_WAIT_MS"],
    help: "longest wait for company, ms (0: the next event-loop turn)",
    default: DEFAULT_MAX_WAIT_MS,
    schema: z.coerce.number().min(0).max(1000).default(DEFAULT_MAX_WAIT_MS),
  },
  NATS_URL: {
    env: ["NATS_URL"],
    help: "the NATS server holding the model registry; without it, MODEL_DIR only",
    doc: "the NATS server holding the model registry (docs/models.md), e.g. `nats://nats.fanwatch:4222`: score serves the site's active model and follows it; without it, `MODEL_DIR` only",
    schema: z.string().optional(),
  },
  NATS_KV_REPLICAS: {
    env: ["NATS_KV_REPLICAS"],
    help: "copies of the model registry's buckets in a NATS cluster, should this replica make them",
    doc: "copies of the model registry's buckets (`fan_models`, `fan_models_active`) in a NATS cluster, should this replica make them (the first replica of a fresh site does); as health's bucket, at most 5",
    default: 1,
    schema: z.coerce.number().int().min(1).max(5).default(1),
  },
  // The site whose active model this replica follows.
  SITE: SITE_SETTINGS.SITE,
  SCORE_REPLICA: {
    env: ["SCORE_REPLICA"],
    help: "this replica's name in the model registry; host name and process id when not set",
    doc: "this replica's name in the model registry's replica statuses (`fanwatch model show`); when not set, the host name and the process id, unique on one machine too",
    schema: z
      .string()
      .min(1)
      .max(128)
      .default(() => `${hostname()}-${process.pid}`),
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
  /** NATS_URL: with it, score follows the site's active model in the registry (model-follower.ts). */
  natsUrl: string | undefined;
  /** NATS_KV_REPLICAS: the registry's buckets' copies, when this replica makes them. */
  kvReplicas: number;
  site: string;
  replica: string;
}

/** From the environment unless `env` is given. */
export function readScoreConfig(env?: NodeJS.ProcessEnv): ScoreConfig {
  const s = readSettings(SCORE_SETTINGS, env);
  return {
    modelDir: s.MODEL_DIR,
    backend: s.TFJS_BACKEND,
    maxBatchSize: s.SCORE_MAX_BATCH,
    maxWaitMs: s.SCORE_BATCH_WAIT_MS,
    natsUrl: s.NATS_URL,
    kvReplicas: s.NATS_KV_REPLICAS,
    site: s.SITE,
    replica: s.SCORE_REPLICA,
  };
}

/** TFJS_BACKEND alone: what `fanwatch train` and `evaluate` read. */
export function readBackendSetting(env?: NodeJS.ProcessEnv): BackendName | undefined {
  return readSettings({ TFJS_BACKEND: SCORE_SETTINGS.TFJS_BACKEND }, env).TFJS_BACKEND;
}
