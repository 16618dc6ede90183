import type { FunctionContext } from "./types.js";

export interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/**
 * The `context` a handler receives. `succeed`/`fail` settle the answer once; the server races that
 * against the handler's own return value.
 */
export class HandlerContext implements FunctionContext {
  #status = 200;
  #headers: Record<string, string> = {};
  #onSettled: ((outcome: Outcome) => void) | undefined;
  #outcome: Outcome | undefined;

  /** Calls `listener` once succeed() or fail() settles the answer (at once if already settled). */
  onSettled(listener: (outcome: Outcome) => void): void {
    if (this.#outcome !== undefined) listener(this.#outcome);
    else this.#onSettled = listener;
  }

  status(code: number): FunctionContext;
  status(): number;
  status(code?: number): FunctionContext | number {
    if (code === undefined) return this.#status;
    if (!Number.isInteger(code) || code < 100 || code > 599)
      throw new RangeError(`status code must be 100-599, not ${code}`);
    this.#status = code;
    return this;
  }

  headers(values: Record<string, string>): FunctionContext;
  headers(): Record<string, string>;
  headers(values?: Record<string, string>): FunctionContext | Record<string, string> {
    if (values === undefined) return this.#headers;
    this.#headers = { ...this.#headers, ...values };
    return this;
  }

  succeed(value?: unknown): void {
    this.#finish({ status: this.#status, headers: this.#headers, body: value });
  }

  fail(value?: unknown): void {
    const status = this.#status >= 400 ? this.#status : 500;
    this.#finish({ status, headers: this.#headers, body: errorBody(value) });
  }

  #finish(outcome: Outcome): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = outcome;
    this.#onSettled?.(outcome);
  }
}

/** The official template sends `[object Object]` for fail({...}); ours always sends JSON. */
export function errorBody(value: unknown): Record<string, unknown> {
  if (value instanceof Error) return { error: value.message };
  if (Buffer.isBuffer(value)) return { error: value.toString() };
  switch (typeof value) {
    case "string":
      return { error: value };
    case "undefined":
      return { error: "function failed" };
    case "object":
      return value === null ? { error: "null" } : (value as Record<string, unknown>);
    default:
      // A number, a boolean, a bigint, a symbol or a function, as String() writes it.
      return { error: String(value) };
  }
}
