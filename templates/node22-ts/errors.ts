/**
 * The template's own errors. The template builds without the rest of the repository, so it does
 * not share lib/errors.ts; its codes follow the same pattern and docs/errors.md lists them too.
 */
export const TEMPLATE_ERROR_CODES = {
  FANWATCH_TEMPLATE_BODY_INVALID: { status: 400, meaning: "a JSON request body is empty, not UTF-8 or not valid JSON" },
  FANWATCH_TEMPLATE_BODY_TOO_LARGE: { status: 413, meaning: "a request body is over MAX_JSON_SIZE or MAX_RAW_SIZE" },
  FANWATCH_TEMPLATE_SETTING_INVALID: { meaning: "http_port, MAX_JSON_SIZE or MAX_RAW_SIZE has an impossible value" },
} as const satisfies Record<string, { status?: number; meaning: string }>;

export type TemplateErrorCode = keyof typeof TEMPLATE_ERROR_CODES;

/** A request the server refuses before the handler sees it; answered as `{"error", "code", "field"}`. */
export class RequestError extends Error {
  override readonly name = "RequestError";
  readonly code: "FANWATCH_TEMPLATE_BODY_INVALID" | "FANWATCH_TEMPLATE_BODY_TOO_LARGE";
  readonly status: 400 | 413;
  readonly field = "body";

  constructor(status: 400 | 413, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.code = status === 413 ? "FANWATCH_TEMPLATE_BODY_TOO_LARGE" : "FANWATCH_TEMPLATE_BODY_INVALID";
  }
}

/** A server setting (environment variable) with an impossible value; the message names it. */
export class ServerSettingError extends Error {
  override readonly name = "ServerSettingError";
  readonly code = "FANWATCH_TEMPLATE_SETTING_INVALID";
}
