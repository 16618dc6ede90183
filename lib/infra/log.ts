import { pino, type Logger } from "pino";
import { DEFAULT_LOG_LEVEL, logLevelSetting } from "./log-level.js";

export type { Logger };

/**
 * Services log one JSON object per line on stdout (what of-watchdog and kubectl logs pass through).
 * LOG_LEVEL=silent turns logging off, e.g. in tests and benchmarks.
 */
export function createLogger(name: string, level: string = logLevelSetting() ?? DEFAULT_LOG_LEVEL): Logger {
  return pino({ name, level, base: { service: name }, timestamp: pino.stdTimeFunctions.isoTime });
}
