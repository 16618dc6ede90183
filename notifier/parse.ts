import type { z } from "zod";
import { AlarmTransitionSchema, type AlarmTransition } from "../lib/domain/health.js";
import { parseUntrustedJson } from "../lib/infra/json.js";
import { DeadLetterSchema, MAX_PAYLOAD_CHARS } from "./records.js";

/**
 * What a queue reads: a transition, or why a message is not one (with the message as text, cut
 * at MAX_PAYLOAD_CHARS, for its dead letter). Messages come from outside the notifier (health's
 * stream, a redrive), so each is checked once here.
 */
export type Parsed = { ok: true; transition: AlarmTransition } | { ok: false; error: string; payload: string };

/** A message of health's stream. */
export function parseTransition(data: Uint8Array): Parsed {
  const parsed = parseWith(data, (v) => AlarmTransitionSchema.safeParse(v));
  return "value" in parsed ? { ok: true, transition: parsed.value } : parsed;
}

/** A redriven dead letter: its transition is delivered again. */
export function parseRedrive(data: Uint8Array): Parsed {
  const parsed = parseWith(data, (v) => DeadLetterSchema.safeParse(v));
  if (!("value" in parsed)) return parsed;
  const { transition } = parsed.value;
  if (transition === null)
    return { ok: false, error: "a redriven dead letter without a transition", payload: JSON.stringify(parsed.value) };
  return { ok: true, transition };
}

function parseWith<T>(data: Uint8Array, parse: (value: unknown) => z.ZodSafeParseResult<T>): Parsed | { value: T } {
  const text = Buffer.from(data).toString("utf8");
  const payload = text.length > MAX_PAYLOAD_CHARS ? `${text.slice(0, MAX_PAYLOAD_CHARS)}…` : text;
  let json: unknown;
  try {
    json = parseUntrustedJson(Buffer.from(data));
  } catch (error) {
    return { ok: false, error: `not JSON: ${(error as Error).message}`, payload };
  }
  const result = parse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, error: `${issue?.path.join(".") || "(top)"}: ${issue?.message ?? "invalid"}`, payload };
  }
  return { value: result.data };
}
