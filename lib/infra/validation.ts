import type { z } from "zod";
import { InputError } from "../errors.js";
import { parseUntrustedJson } from "./json.js";

/** `instances[3][1]` from a zod issue path, under `root`. */
export function fieldPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (field, key) =>
      typeof key === "number" ? `${field}[${key}]` : field === "" ? String(key) : `${field}.${String(key)}`,
    root,
  );
}

/** The first issue of a failed parse as an InputError naming the field. */
export function toInputError(error: z.ZodError, root: string, hint = ""): InputError {
  const issue = error.issues[0];
  const field = fieldPath(root, issue?.path ?? []);
  const message = `${field}: ${issue?.message ?? "invalid"}${hint === "" ? "" : ` (${hint})`}`;
  return new InputError(message, field, { cause: error });
}

/**
 * A function's body, parsed strictly. The template has parsed JSON bodies already (with the same
 * rules); text and other content types (faas-cli invoke sends text/plain, a connector may send raw
 * bytes) are parsed here: UTF-8 only, no prototype keys (parseUntrustedJson).
 */
export function parseJsonBody(body: unknown): unknown {
  if (
    body === undefined ||
    body === null ||
    (typeof body === "string" && body.trim() === "") ||
    (Buffer.isBuffer(body) && body.length === 0)
  ) {
    throw new InputError("request body is empty; send a JSON document", "body");
  }
  if (typeof body !== "string" && !Buffer.isBuffer(body)) return body;
  try {
    return parseUntrustedJson(body);
  } catch (error) {
    throw new InputError(`request body is not valid JSON: ${(error as Error).message}`, "body", { cause: error });
  }
}
