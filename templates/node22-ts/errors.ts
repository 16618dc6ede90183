/**
 * The template's own errors. The template builds without the rest of the repository, so it does
 * not share lib/errors.ts; its codes follow the same pattern and docs/errors.md lists them too.
 */
export const TEMPLATE_ERROR_CODES = {
  FANWATCH_TEMPLATE_BODY_INVALID: { status: 400, meaning: "a JSON request body is empty, not UTF-8 or not valid JSON" },
  FANWATCH_TEMPLATE_BODY_TOO_LARGE: { status: 413, meaning: "a request body is over MAX_JSON_SIZE or MAX_RAW_SIZE" },
  FANWATCH_TEMPLATE_BODY_ABORTED: { status: 400, meaning: "the client went away before it sent the whole body" },
  FANWATCH_TEMPLATE_CROSS_SITE: { status: 403, meaning: "another site's page made a browser send the request" },
  FANWATCH_TEMPLATE_CALLER_REFUSED: {
    status: 403,
    meaning: "the function runs behind a gateway and the call did not come through it",
  },
  FANWATCH_TEMPLATE_SETTING_INVALID: { meaning: "http_port, MAX_JSON_SIZE or MAX_RAW_SIZE has an impossible value" },
} as const satisfies Record<string, { status?: number; meaning: string }>;

export type TemplateErrorCode = keyof typeof TEMPLATE_ERROR_CODES;

/** The codes a refused request can carry: those of the table with a status. */
export type RequestErrorCode = {
  [K in TemplateErrorCode]: (typeof TEMPLATE_ERROR_CODES)[K] extends { status: number } ? K : never;
}[TemplateErrorCode];

/** A request the server refuses before the handler sees it; answered as `{"error", "code", "field"}`. */
export class RequestError extends Error {
  override readonly name = "RequestError";
  /** As lib/errors.ts's kinds: the caller sent something it must fix. */
  readonly kind = "input";
  readonly code: RequestErrorCode;
  readonly status: number;
  readonly field: "body" | "headers";

  constructor(code: RequestErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = TEMPLATE_ERROR_CODES[code].status;
    this.field =
      code === "FANWATCH_TEMPLATE_CROSS_SITE" || code === "FANWATCH_TEMPLATE_CALLER_REFUSED" ? "headers" : "body";
  }
}

/** A server setting (environment variable) with an impossible value; the message names it. */
export class ServerSettingError extends Error {
  override readonly name = "ServerSettingError";
  /** As lib/errors.ts's kinds: a setting with an impossible value (the CLI exits 2). */
  readonly kind = "usage";
  readonly code = "FANWATCH_TEMPLATE_SETTING_INVALID";
}
