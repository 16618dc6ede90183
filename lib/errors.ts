/**
 * Input that a caller sent and must fix. Carries the offending field so that HTTP answers can say
 * `{"error": "...", "field": "..."}` as docs/architecture.md, "Contracts", requires.
 */
export class InputError extends Error {
  override readonly name = "InputError";
  readonly field: string;
  readonly status: number;

  constructor(message: string, field: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = field;
    this.status = options?.status ?? 400;
  }
}

/** A model directory that cannot be loaded: missing files, a wrong format or an unsupported layer. */
export class ModelError extends Error {
  override readonly name = "ModelError";
}

/** A file of readings that does not follow the reference CSV format. */
export class DataFormatError extends Error {
  override readonly name = "DataFormatError";
}

/** A setting (environment variable or flag) with an impossible value; the message names it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
