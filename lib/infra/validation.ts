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

/** Parses a body that arrived as text (e.g. `faas-cli invoke`, which sends text/plain) or raw bytes. */
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
    return JSON.parse(body.toString());
  } catch (error) {
    throw new InputError(`request body is not valid JSON: ${(error as Error).message}`, "body", { cause: error });
  }
}

/**
 * A function's body, parsed strictly: the template has parsed JSON bodies already; text and other
 * content types (faas-cli invoke, a connector sending raw bytes) are parsed here as UTF-8 only,
 * with no prototype keys.
 */
export function readUntrustedBody(body: unknown): unknown {
  const text = typeof body === "string" || Buffer.isBuffer(body);
  if (!text || body.length === 0 || (typeof body === "string" && body.trim() === "")) return parseJsonBody(body);
  try {
    return parseUntrustedJson(body);
  } catch (error) {
    throw new InputError(`request body is not valid JSON: ${(error as Error).message}`, "body", { cause: error });
  }
}
