/**
 * The handler contract of the official OpenFaaS node templates, so existing handlers port over:
 * `export async function handler(event, context)`. A handler module may also export `init()`, run
 * once before the first request is handed over (load a model, open connections), `close()`, run on
 * SIGTERM after in-flight requests finished, `rawBody = true` to parse bodies itself, and
 * `errorAnswer(error)` to answer the errors it knows with their own status and body.
 */
export interface FunctionEvent {
  /**
   * Parsed JSON for application/json, a string for text/*, a Buffer otherwise; always a Buffer
   * (empty when there is none) if the module exports `rawBody = true` or RAW_BODY=true is set.
   */
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  method: string;
  query: Record<string, string | string[] | undefined>;
  path: string;
}

export interface FunctionContext {
  /** Sets the status code (chainable); without an argument returns it. */
  status(code: number): FunctionContext;
  status(): number;
  /** Adds response headers (chainable); without an argument returns them. */
  headers(values: Record<string, string>): FunctionContext;
  headers(): Record<string, string>;
  /** Answers with `value` now; a later return value is ignored. */
  succeed(value?: unknown): void;
  /** Answers with an error: status 500 unless a 4xx/5xx status was set, body {"error": ...}. */
  fail(value?: unknown): void;
}

export type Handler = (event: FunctionEvent, context: FunctionContext) => unknown;

export interface FunctionModule {
  handler: Handler;
  /**
   * Runs once before the first request is handed over. Keep it short and local: the function
   * counts as alive (the watchdog's /_/health) only once it has finished, and OpenFaaS restarts a
   * function that is not alive a few seconds after its start. Connections to other services are
   * opened here without waiting for them; `waitingFor()` says what is still missing.
   */
  init?: () => unknown;
  /**
   * What the module is waiting for right now before it can answer calls, e.g. `["NATS"]`: a
   * dependency that is away, not yet reached, or lost. Empty (or not exported) when nothing is
   * missing. GET /_/ready answers 503 naming them; /_/health stays 200, so an outage elsewhere
   * takes the function out of service without restarting it.
   */
  waitingFor?: () => readonly string[];
  close?: () => unknown;
  /**
   * The answer to an error the handler threw: `{status, body}` (status 400-599) for errors the
   * module knows, undefined for any other, which the server answers 500 `{"error": message}`.
   */
  errorAnswer?: (error: unknown) => { status: number; body: unknown } | undefined;
  /** Prometheus text appended to the server's own metrics at GET /_/metrics. */
  metrics?: () => string | Promise<string>;
  /**
   * `export const rawBody = true`: the handler reads the body itself. Every body arrives as the
   * bytes sent, whatever its content type, and malformed JSON reaches the handler (which can, say,
   * dead-letter it) instead of being answered 400 by the template. Limits stay by content type
   * (MAX_JSON_SIZE for JSON, MAX_RAW_SIZE otherwise), so callers and the gateway see the same.
   */
  rawBody?: boolean;
}
