import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Services log one JSON object per line on stdout (what of-watchdog and kubectl logs pass through).
 * LOG_LEVEL=silent turns logging off, e.g. in tests and benchmarks.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level, base: { service: name }, timestamp: pino.stdTimeFunctions.isoTime });
}
