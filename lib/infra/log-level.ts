import { z } from "zod";
import { defineSettings, readSettings } from "./settings.js";

// Apart from log.ts so that the CLI's help, which lists LOG_LEVEL, does not load pino.

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LOG_LEVEL: LogLevel = "info";

export const LOG_SETTINGS = defineSettings({
  // No default in the schema: fanwatch start and gateway put their own (warn) where it is not set.
  LOG_LEVEL: {
    env: ["LOG_LEVEL"],
    help: `${LOG_LEVELS.join(", ")}; silent turns logging off`,
    default: `${DEFAULT_LOG_LEVEL}, or warn under fanwatch start and gateway`,
    schema: z
      .enum(LOG_LEVELS, {
        error: (issue) => `must be one of ${LOG_LEVELS.join(", ")}, not ${JSON.stringify(issue.input)}`,
      })
      .optional(),
  },
});

/** LOG_LEVEL when it is set, else undefined: each caller has its own default. From the environment unless `env` is given. */
export function logLevelSetting(env?: NodeJS.ProcessEnv): LogLevel | undefined {
  return readSettings(LOG_SETTINGS, env).LOG_LEVEL;
}
