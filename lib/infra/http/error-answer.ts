import type { ServerResponse } from "node:http";
import { errorAnswer, FanwatchError, type ErrorCode } from "../../errors.js";

/**
 * Answers an error as every fanwatch server does (the functions through the template, the local
 * gateway, the page): its code's HTTP status and `{"error", "code", "field"?}` (docs/errors.md).
 * An error without a status of its own is a 500 that says only its message.
 */
function sendError(res: ServerResponse, error: FanwatchError, headers: Record<string, string> = {}): void {
  const answer = errorAnswer(error) ?? { status: 500, body: { error: error.message, code: error.code } };
  res.writeHead(answer.status, { ...headers, "content-type": "application/json" }).end(JSON.stringify(answer.body));
}

/** sendError for an error of the server's own, made from its code and message. */
export function sendErrorCode(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendError(res, new FanwatchError(code, message), headers);
}
