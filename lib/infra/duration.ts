import { z } from "zod";

/**
 * Durations as people write them in settings and flags: `90s`, `15m`, `2h`, `400d`, `1500ms`, or a
 * sum such as `1h30m`. A bare number is milliseconds (what the older `*_MS` settings take).
 */
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Milliseconds, or undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (!WHOLE.test(t)) return undefined;
  let ms = 0;
  for (const [, value, unit] of t.matchAll(PART)) ms += Number(value) * (UNIT_MS[unit ?? "ms"] ?? 1);
  return Math.round(ms);
}

/** The shortest exact form: 86400000 → "1d", 5400000 → "1h30m", 1500 → "1s500ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (const unit of ["d", "h", "m", "s", "ms"] as const) {
    const size = UNIT_MS[unit] as number;
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

/** A setting's schema for a duration: its text parsed to milliseconds, at least `minMs`. */
export function durationSchema(defaultText: string, minMs = 1): z.ZodType<number, string | undefined> {
  return z
    .string()
    .default(defaultText)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: `"${text}" is not a duration: write 90s, 15m, 2h or 7d` });
        return z.NEVER;
      }
      if (ms < minMs) {
        ctx.addIssue({ code: "custom", message: `${text} is shorter than ${formatDuration(minMs)}` });
        return z.NEVER;
      }
      return ms;
    });
}
