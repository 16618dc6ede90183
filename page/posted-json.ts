import type { IncomingMessage, ServerResponse } from "node:http";
import { BodyAbortedError, BodyTimeoutError, BodyTooLargeError } from "../lib/errors.js";
import { readBody } from "../lib/infra/http/body.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import { parseUntrustedJson } from "../lib/infra/json.js";

/**
 * The JSON body a browser posted (an action of the page), or undefined having answered why there
 * is none: too large, too slow, cut off, or not JSON. `what` names what was expected, for the answer
 * (`a health action ({deviceID, alarmId, action, …})`). The caller checks its shape.
 */
export async function readPostedJson(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  what: string,
): Promise<{ json: unknown } | undefined> {
  let raw: Buffer;
  try {
    raw = await readBody(req, limit, what);
  } catch (error) {
    if (error instanceof BodyTooLargeError) sendErrorCode(res, "FANWATCH_BODY_TOO_LARGE", error.message);
    else if (error instanceof BodyTimeoutError) sendErrorCode(res, "FANWATCH_BODY_TIMEOUT", error.message);
    else if (error instanceof BodyAbortedError) res.destroy();
    else throw error;
    return undefined;
  }
  try {
    return { json: parseUntrustedJson(raw) };
  } catch {
    sendErrorCode(res, "FANWATCH_INPUT_INVALID", `the body is not JSON: post ${what}`);
    return undefined;
  }
}
