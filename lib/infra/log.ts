import { pino, type Logger } from "pino";
import { DEFAULT_LOG_LEVEL, logLevelSetting } from "./log-level.js";

export type { Logger };

/**
 * Services log one JSON object per line on stdout (what of-watchdog and kubectl logs pass through).
 * LOG_LEVEL=silent turns logging off, e.g. in tests and benchmarks. `write`, when given, takes each
 * line instead of stdout: `fanwatch start` on a terminal shows them as readableLine() renders them.
 */
export function createLogger(
  name: string,
  level: string = logLevelSetting() ?? DEFAULT_LOG_LEVEL,
  write?: (line: string) => void,
): Logger {
  const options = { name, level, base: { service: name }, timestamp: pino.stdTimeFunctions.isoTime };
  return write === undefined ? pino(options) : pino(options, { write });
}

const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };
/** What every pino line carries and the readable line says otherwise (or not at all). */
const SHOWN_APART = new Set(["level", "time", "pid", "hostname", "name", "service", "msg", "err", "event"]);

/**
 * A log line as a person reads it at a terminal: `warn  score: handler threw: model missing
 * (event=…, path=/)`, one line, the error's message without its stack. A line that is not one of
 * our JSON records is returned as it is.
 */
export function readableLine(line: string): string {
  if (!line.startsWith("{")) return line.trimEnd();
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.trimEnd();
  }
  if (typeof record.level !== "number" || typeof record.msg !== "string") return line.trimEnd();
  const level = (LEVELS[record.level] ?? String(record.level)).padEnd(5);
  const who = typeof record.service === "string" ? `${record.service}: ` : "";
  const err = record.err as { message?: unknown } | undefined;
  const cause = typeof err?.message === "string" ? `: ${err.message.split("\n", 1)[0]}` : "";
  const details = Object.entries(record)
    .filter(([key, value]) => !SHOWN_APART.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  if (typeof record.event === "string") details.unshift(`event=${record.event}`);
  return `${level} ${who}${record.msg}${cause}${details.length === 0 ? "" : ` (${details.join(", ")})`}`.replace(
    /\s*\n\s*/g,
    " ",
  );
}
