import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";
import sjson from "secure-json-parse";
import { RequestError } from "./errors.js";

export interface BodyLimits {
  maxJsonSize: number;
  maxRawSize: number;
  /** RAW_BODY=true: every body is raw, MAX_RAW_SIZE its limit (the official templates' rule). */
  rawBody: boolean;
}

/**
 * The limit a body of this content type gets, and the setting that sets it: MAX_JSON_SIZE for
 * application/json and +json, MAX_RAW_SIZE for anything else or with RAW_BODY. The local gateway
 * applies the same rule, so that it refuses what the function would before sending it a byte.
 */
export function bodyLimit(
  contentType: string | undefined,
  limits: BodyLimits,
): { bytes: number; setting: "MAX_JSON_SIZE" | "MAX_RAW_SIZE" } {
  return !limits.rawBody && isJsonType(contentType)
    ? { bytes: limits.maxJsonSize, setting: "MAX_JSON_SIZE" }
    : { bytes: limits.maxRawSize, setting: "MAX_RAW_SIZE" };
}

function isJsonType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  return type === "application/json" || type.endsWith("+json");
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/**
 * Reads and parses a request body: JSON for application/json (and +json), a string for text/*,
 * a Buffer otherwise, with RAW_BODY, or when the handler parses bodies itself (`parse` false: its
 * module exports rawBody). Rejects bodies over their limit (bodyLimit) without buffering them,
 * JSON that is not UTF-8, and JSON with __proto__/constructor.prototype keys (prototype poisoning).
 */
export async function readBody(request: IncomingMessage, limits: BodyLimits, parse = true): Promise<unknown> {
  const type = mediaType(request.headers["content-type"]);
  const raw = !parse || limits.rawBody;
  const json = !raw && isJsonType(type);
  const { bytes: limit, setting } = bodyLimit(type, limits);
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > limit) throw tooLarge(limit, setting);

  const chunks: Buffer[] = [];
  let size = 0;
  // Plain events rather than `for await`: the async iterator costs several microseconds a request.
  await new Promise<void>((resolve, reject) => {
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners("data");
        request.pause();
        reject(tooLarge(limit, setting));
      } else chunks.push(chunk);
    });
    request.once("end", resolve);
    // A client that goes away mid-body is no fault of the function: a refusal, not an error.
    const aborted = () =>
      reject(new RequestError("FANWATCH_TEMPLATE_BODY_ABORTED", "the client went away before it sent the whole body"));
    request.once("error", aborted);
    request.once("close", () => {
      if (!request.complete) aborted();
    });
  });
  const bodyBytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
  if (json) {
    if (size === 0)
      throw new RequestError("FANWATCH_TEMPLATE_BODY_INVALID", "request body is empty; send a JSON document");
    // A lossy decode would turn bad bytes into U+FFFD and let a mangled document through.
    if (!isUtf8(bodyBytes))
      throw new RequestError("FANWATCH_TEMPLATE_BODY_INVALID", "request body is not valid JSON: not valid UTF-8 text");
    try {
      return sjson.parse(bodyBytes.toString("utf8"), undefined, { protoAction: "error", constructorAction: "error" });
    } catch (error) {
      throw new RequestError(
        "FANWATCH_TEMPLATE_BODY_INVALID",
        `request body is not valid JSON: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  if (raw) return bodyBytes;
  if (size === 0) return undefined;
  return type.startsWith("text/") ? bodyBytes.toString("utf8") : bodyBytes;
}

function tooLarge(limit: number, setting: string): RequestError {
  return new RequestError(
    "FANWATCH_TEMPLATE_BODY_TOO_LARGE",
    `request body is too large: the limit is ${limit} bytes (${setting})`,
  );
}
