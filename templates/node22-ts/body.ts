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
  const bodyBytes = await readLimitedBody(request, limit, setting);
  const size = bodyBytes.length;
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

/**
 * Reads a body of at most `limit` bytes (`setting` names what sets it). A copy of the servers'
 * reader (lib/infra/http/body.ts), kept because the template builds alone; one table of cases,
 * test/unit/body-reader.test.ts, runs against both. Where they overlap they behave the same:
 *
 * - A declared Content-Length over the limit is refused before a byte is read; a body that
 *   streams past it is refused as soon as it does (FANWATCH_TEMPLATE_BODY_TOO_LARGE).
 * - The rest of a refused body is read and dropped, not cut off, so that a client still sending
 *   gets the answer rather than a reset connection (the watchdog's read_timeout, or Node's
 *   requestTimeout without one, bounds how long).
 * - A client that goes away mid-body settles the read (FANWATCH_TEMPLATE_BODY_ABORTED): no fault
 *   of the function, a refusal, not an error.
 *
 * Unlike the servers' reader it sets no deadline of its own: the watchdog's read_timeout is it.
 */
export function readLimitedBody(request: IncomingMessage, limit: number, setting: string): Promise<Buffer> {
  // Plain events rather than `for await`: the async iterator costs several microseconds a request.
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (then: () => void): void => {
      if (settled) return;
      settled = true;
      then();
    };
    const chunks: Buffer[] = [];
    let size = 0;
    let dropping = false;
    const drop = (): void => {
      dropping = true;
      chunks.length = 0;
      settle(() => reject(tooLarge(limit, setting)));
      request.resume(); // flowing, whatever a caller did: the rest is read and dropped
    };
    request.on("data", (chunk: Buffer) => {
      if (dropping) return;
      size += chunk.length;
      if (size > limit) drop();
      else chunks.push(chunk);
    });
    request.once("end", () =>
      settle(() => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size))),
    );
    const aborted = (cause?: Error): void =>
      settle(() =>
        reject(
          new RequestError("FANWATCH_TEMPLATE_BODY_ABORTED", "the client went away before it sent the whole body", {
            cause,
          }),
        ),
      );
    request.on("error", aborted);
    request.once("close", () => {
      if (!request.complete) aborted();
    });
    if (Number(request.headers["content-length"]) > limit) drop();
  });
}

function tooLarge(limit: number, setting: string): RequestError {
  return new RequestError(
    "FANWATCH_TEMPLATE_BODY_TOO_LARGE",
    `request body is too large: the limit is ${limit} bytes (${setting})`,
  );
}
