/**
 * The error contract of fanwatch: every error the project throws on purpose is a FanwatchError with
 * a stable `code` from ERROR_CODES (docs/errors.md lists them; test/unit/errors.test.ts checks the
 * two agree), a message that names what is wrong and what to do, and the `cause` it wraps.
 *
 * Two readers act on it. The functions answer an error whose code has an HTTP status with
 * `{"error", "code", "field"}` (errorAnswer, wired into the template by each handler); anything
 * else is a 500. The CLI exits 2 on a usage error and 1 on any other FanwatchError, printing its
 * message without a stack; an error that is not a FanwatchError is a bug and keeps its stack.
 *
 * This module imports nothing of the project, so that every part may use it.
 */

/**
 * What an error means to whoever meets it:
 * - input: the caller sent something it must fix (an HTTP 4xx);
 * - usage: a flag, argument or setting with an impossible value (the CLI exits 2);
 * - unavailable: something needed is down, overloaded or too slow; try again later (HTTP 503);
 * - failure: a known failure that is neither (a bad model or data file, a rejected call; the CLI exits 1);
 * - signal: passed between modules and handled there, never answered or printed.
 */
export type ErrorKind = "input" | "usage" | "unavailable" | "failure" | "signal";

export interface ErrorCodeInfo {
  readonly kind: ErrorKind;
  /** The HTTP status a function answers with; absent when the error never becomes an answer. */
  readonly status?: number;
  /** One line: what happened. docs/errors.md says more, and what to do. */
  readonly meaning: string;
}

export const ERROR_CODES = {
  FANWATCH_INPUT_INVALID: {
    kind: "input",
    status: 400,
    meaning: "a request body, field or query parameter is invalid",
  },
  FANWATCH_HEALTH_NOT_FOUND: { kind: "input", status: 404, meaning: "the health function has no record of the fan" },
  FANWATCH_HEALTH_CONFLICT: { kind: "input", status: 409, meaning: "the command does not fit the fan's state" },
  FANWATCH_METHOD_NOT_ALLOWED: {
    kind: "input",
    status: 405,
    meaning: "a function was called with an HTTP method it does not answer",
  },
  FANWATCH_USAGE: { kind: "usage", meaning: "a command-line flag or argument has an impossible value" },
  FANWATCH_CONFIG_INVALID: {
    kind: "usage",
    meaning: "a setting (environment variable, secret or flag) has an impossible value",
  },
  FANWATCH_SCALE_LABEL_INVALID: {
    kind: "usage",
    meaning: "a function's com.openfaas.scale.* label is one OpenFaaS CE would refuse",
  },
  FANWATCH_MODEL_INVALID: { kind: "failure", meaning: "a model directory cannot be loaded" },
  FANWATCH_MODEL_REFUSED: {
    kind: "failure",
    meaning: "a model version was refused: its digest does not match, it cannot load, or it fails its golden set",
  },
  FANWATCH_MODEL_NOT_FOUND: { kind: "failure", meaning: "the model registry has no model version with that id" },
  FANWATCH_MODEL_GATE_FAILED: {
    kind: "failure",
    meaning: "a candidate model failed a promotion gate (promote --force overrides)",
  },
  FANWATCH_NO_REGISTRY: { kind: "usage", meaning: "a model command needs the model registry, and NATS_URL is not set" },
  FANWATCH_MODEL_POINTER_MOVED: {
    kind: "failure",
    meaning: "a site's active model pointer changed since it was read (someone else promoted, rolled back or shadowed)",
  },
  FANWATCH_REGISTRY_UNAVAILABLE: {
    kind: "unavailable",
    status: 503,
    meaning: "the model registry (NATS JetStream) cannot be reached or did not answer in time",
  },
  FANWATCH_DATA_FORMAT: { kind: "failure", meaning: "a file of readings does not follow the reference CSV format" },
  FANWATCH_SCORE_REJECTED: {
    kind: "failure",
    status: 502,
    meaning: "the score function refused predict's request or answered nonsense",
  },
  FANWATCH_NOT_BUILT: { kind: "failure", meaning: "a compiled file the command needs is missing from dist/" },
  FANWATCH_PORT_IN_USE: { kind: "failure", meaning: "the port a server was to listen on is in use" },
  FANWATCH_HTTP_STATUS: { kind: "failure", meaning: "an HTTP call answered with a status that is not a success" },
  FANWATCH_INFLUX_QUERY: { kind: "failure", meaning: "InfluxDB refused a query statement" },
  FANWATCH_BODY_TOO_LARGE: {
    kind: "input",
    status: 413,
    meaning: "the local gateway refused a request body over its limit",
  },
  FANWATCH_BODY_TIMEOUT: {
    kind: "input",
    status: 408,
    meaning: "the local gateway stopped waiting for a request body that did not arrive in time",
  },
  FANWATCH_BODY_ABORTED: {
    kind: "input",
    status: 400,
    meaning: "the client went away before it sent the whole body",
  },
  FANWATCH_NOT_FOUND: { kind: "input", status: 404, meaning: "the local gateway has no such function or route" },
  FANWATCH_UNAUTHORIZED: { kind: "input", status: 401, meaning: "the local gateway's /system API needs basic auth" },
  FANWATCH_CROSS_SITE: {
    kind: "input",
    status: 403,
    meaning: "another site's page made a browser send the request to the local gateway or the page",
  },
  FANWATCH_NOT_IMPLEMENTED: {
    kind: "input",
    status: 501,
    meaning: "the local gateway runs stack.yml's functions and cannot deploy, change or delete them",
  },
  FANWATCH_GATEWAY_BUSY: {
    kind: "unavailable",
    status: 429,
    meaning: "GATEWAY_MAX_ASYNC_PENDING async calls are waiting already",
  },
  FANWATCH_FUNCTION_UNAVAILABLE: {
    kind: "unavailable",
    status: 502,
    meaning: "the function has no replica ready (scaled to 0, starting, restarting) or its replica failed",
  },
  FANWATCH_FUNCTION_START_FAILED: {
    kind: "failure",
    status: 500,
    meaning: "a replica the scale API asked for did not start",
  },
  FANWATCH_PAGE_BUSY: {
    kind: "unavailable",
    status: 503,
    meaning: "the page serves its most event streams (4 per signed-in user, 16 or 64 in all), or fanwatch is stopping",
  },
  FANWATCH_PACKET_TOO_LARGE: { kind: "input", meaning: "the embedded MQTT broker refused a packet over its limit" },
  FANWATCH_STORE_UNAVAILABLE: {
    kind: "unavailable",
    status: 503,
    meaning: "the health store or its event stream (NATS JetStream) cannot be reached or is not ready",
  },
  FANWATCH_STORE_CONTENDED: {
    kind: "unavailable",
    status: 503,
    meaning: "other writers kept changing the fan while the health function tried to update it",
  },
  FANWATCH_SCORE_UNAVAILABLE: {
    kind: "unavailable",
    status: 503,
    meaning: "the score function is down, overloaded or too slow",
  },
  FANWATCH_BUDGET_EXHAUSTED: {
    kind: "unavailable",
    status: 503,
    meaning: "the invocation's time ran out before it finished",
  },
  FANWATCH_PUBLISH_FAILED: {
    kind: "unavailable",
    status: 503,
    meaning: "the MQTT broker refused a publish, or the client is closing",
  },
  FANWATCH_BROKER_UNAVAILABLE: { kind: "unavailable", meaning: "the MQTT broker cannot be reached" },
  FANWATCH_INFLUX_UNAVAILABLE: { kind: "unavailable", meaning: "InfluxDB cannot store or answer anything for now" },
  FANWATCH_STORE_CAS_CONFLICT: {
    kind: "signal",
    meaning: "someone else wrote the fan since it was read: read it again and re-apply",
  },
  // The notifier (issue 21: notifier/, `fanwatch notifications`).
  FANWATCH_NOTIFY_UNAVAILABLE: {
    kind: "unavailable",
    meaning: "the NATS server holding the notifier's queues and dead letters cannot be reached",
  },
  FANWATCH_NOTIFY_NO_MATCH: {
    kind: "failure",
    meaning: "no dead letter matches what `fanwatch notifications redrive` was asked to send again",
  },
  // The workbench (issue 22: the page as a service with sign-in, health's history).
  FANWATCH_UNAUTHENTICATED: {
    kind: "input",
    status: 401,
    meaning: "the page needs a signed-in user, or health an action without the page's valid signed user header",
  },
  FANWATCH_FORBIDDEN: { kind: "input", status: 403, meaning: "the signed-in user's role may not do this" },
  FANWATCH_CSRF_REFUSED: {
    kind: "input",
    status: 403,
    meaning: "a change was posted to the page without the session's CSRF token",
  },
  FANWATCH_HOST_REFUSED: {
    kind: "input",
    status: 421,
    meaning: "the Host header names no host this server answers for (a DNS rebinding guard)",
  },
  FANWATCH_TOO_MANY_ATTEMPTS: {
    kind: "unavailable",
    status: 429,
    meaning: "too many failed sign-ins or /system logins from this address or for this user",
  },
  FANWATCH_INTERNAL: {
    kind: "failure",
    status: 500,
    meaning: "a server failed where nobody foresaw (a bug); its log has the details",
  },
  FANWATCH_READING_IMPLAUSIBLE: {
    kind: "input",
    status: 400,
    meaning: "a sensor reads outside its physical limits: a sensor fault, not a fan fault",
  },
  FANWATCH_DEVICE_UNKNOWN: {
    kind: "input",
    status: 404,
    meaning: "the device registry has no fan with this id, or not in a state that allows the command",
  },
  FANWATCH_DEVICE_ID_INVALID: {
    kind: "input",
    status: 400,
    meaning: "a device id the registry cannot hold: empty, too long, or with characters outside its set",
  },
  FANWATCH_REGISTRY_FULL: {
    kind: "input",
    status: 429,
    meaning: "the device registry holds as many pending fans as it may: new ids are refused until some are decided",
  },
  FANWATCH_IDENTITY_MISMATCH: {
    kind: "input",
    status: 403,
    meaning: "a reading's deviceID is not the fan its topic (its credentials) belongs to",
  },
  FANWATCH_HISTORY_NEEDS_NATS: {
    kind: "input",
    status: 501,
    meaning: "health keeps its history in NATS JetStream, and runs without NATS_URL",
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorOptions {
  cause?: unknown;
}

/** The base of every error in ERROR_CODES. Subclasses set their code; `status` and `field` where they apply. */
export class FanwatchError extends Error {
  override readonly name: string = "FanwatchError";
  readonly code: ErrorCode;
  /** The HTTP status a function answers with (ERROR_CODES' unless the thrower chose another). */
  readonly status: number | undefined;
  /** The request field that is wrong, named in the answer's `field`. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { status?: number; field?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    const info: ErrorCodeInfo = ERROR_CODES[code];
    this.status = options?.status ?? info.status;
    this.field = options?.field;
  }

  get kind(): ErrorKind {
    return ERROR_CODES[this.code].kind;
  }
}

/**
 * Input that a caller sent and must fix. Carries the offending field so that HTTP answers can say
 * `{"error": "...", "field": "..."}` as docs/architecture.md, "Contracts", requires.
 */
export class InputError extends FanwatchError {
  override readonly name: string = "InputError";
  declare readonly status: number;
  declare readonly field: string;

  constructor(message: string, field: string, options?: ErrorOptions & { status?: number; code?: ErrorCode }) {
    super(options?.code ?? "FANWATCH_INPUT_INVALID", message, {
      field,
      status: options?.status ?? 400,
      cause: options?.cause,
    });
  }
}

/** The health function has no record of the fan (or of some of the fans named): nothing to act on (404). */
export class HealthNotFoundError extends InputError {
  override readonly name = "HealthNotFoundError";

  constructor(deviceID: string | readonly string[], field = "deviceID") {
    const ids = typeof deviceID === "string" ? [deviceID] : deviceID;
    const named = ids
      .slice(0, 10)
      .map((id) => `"${id}"`)
      .join(", ");
    const more = ids.length > 10 ? ` and ${ids.length - 10} more` : "";
    super(
      ids.length === 1
        ? `no health record for fan ${named}: it has not reported since the health state was created; check the deviceID`
        : `no health record for fans ${named}${more}: they have not reported since the health state was created; check the device IDs`,
      field,
      { status: 404, code: "FANWATCH_HEALTH_NOT_FOUND" },
    );
  }
}

/** The command does not fit the fan's state: nothing open to acknowledge or shelve, or already acknowledged (409). */
export class HealthConflictError extends InputError {
  override readonly name = "HealthConflictError";

  constructor(message: string, field = "action") {
    super(message, field, { status: 409, code: "FANWATCH_HEALTH_CONFLICT" });
  }
}

/** A command-line flag or argument with an impossible value; the message names it. The CLI exits 2. */
export class UsageError extends FanwatchError {
  override readonly name: string = "UsageError";

  constructor(message: string, options?: ErrorOptions & { code?: ErrorCode }) {
    super(options?.code ?? "FANWATCH_USAGE", message, options);
  }
}

/** A setting (environment variable, secret or flag) with an impossible value; the message names it. */
export class ConfigError extends UsageError {
  override readonly name = "ConfigError";

  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: "FANWATCH_CONFIG_INVALID" });
  }
}

/** A com.openfaas.scale.* label OpenFaaS CE would refuse; the message names the label. */
export class ScaleLabelError extends UsageError {
  override readonly name = "ScaleLabelError";

  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: "FANWATCH_SCALE_LABEL_INVALID" });
  }
}

/** A model directory that cannot be loaded: missing files, a wrong format or an unsupported layer. */
export class ModelError extends FanwatchError {
  override readonly name = "ModelError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_MODEL_INVALID", message, options);
  }
}

/**
 * A model version that must never be served: its bytes do not match its id, it cannot be loaded,
 * or it does not give its golden set's answers. The message says which, with the numbers.
 */
export class ModelRefusedError extends FanwatchError {
  override readonly name = "ModelRefusedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_MODEL_REFUSED", message, options);
  }
}

/** No model version with that id in the registry. */
export class ModelNotFoundError extends FanwatchError {
  override readonly name = "ModelNotFoundError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_MODEL_NOT_FOUND", message, options);
  }
}

/** A candidate that failed a promotion gate; the message names each failed gate with its numbers. */
export class ModelGateError extends FanwatchError {
  override readonly name = "ModelGateError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_MODEL_GATE_FAILED", message, options);
  }
}

/** A model command run without NATS_URL: there is no registry to talk to. */
export class NoRegistryError extends UsageError {
  override readonly name = "NoRegistryError";

  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: "FANWATCH_NO_REGISTRY" });
  }
}

/** A compare-and-set of a site's pointer lost to another writer: read the pointer again, and decide again. */
export class ModelPointerMovedError extends FanwatchError {
  override readonly name = "ModelPointerMovedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_MODEL_POINTER_MOVED", message, options);
  }
}

/** The model registry's NATS cannot be reached, has no JetStream, or did not answer in time. */
export class RegistryUnavailableError extends FanwatchError {
  override readonly name = "RegistryUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_REGISTRY_UNAVAILABLE", message, options);
  }
}

/** A file of readings that does not follow the reference CSV format. */
export class DataFormatError extends FanwatchError {
  override readonly name = "DataFormatError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_DATA_FORMAT", message, options);
  }
}

/** The health store cannot be reached (or is not ready yet): a 503, the caller tries again later. */
export class StoreUnavailableError extends FanwatchError {
  override readonly name = "StoreUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_STORE_UNAVAILABLE", message, options);
  }
}

/** Every compare-and-set attempt for a fan lost to another writer: a 503, tried again later. */
export class ContendedError extends FanwatchError {
  override readonly name = "ContendedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_STORE_CONTENDED", message, options);
  }
}

/** Someone else wrote the fan since it was read: read again and re-apply. Handled by the health function's updater. */
export class CasConflictError extends FanwatchError {
  override readonly name = "CasConflictError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_STORE_CAS_CONFLICT", message, options);
  }
}

/** The score function is down, overloaded (429, 5xx) or too slow: worth trying again later (503). */
export class ScoreUnavailableError extends FanwatchError {
  override readonly name = "ScoreUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_SCORE_UNAVAILABLE", message, options);
  }
}

/** The score function refused the request (4xx) or answered nonsense: a bug on our side (502). */
export class ScoreRejectedError extends FanwatchError {
  override readonly name = "ScoreRejectedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_SCORE_REJECTED", message, options);
  }
}

/** The invocation's budget ran out: a 503, so that the caller tries again later. */
export class BudgetExhaustedError extends FanwatchError {
  override readonly name = "BudgetExhaustedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_BUDGET_EXHAUSTED", message, options);
  }
}

/** The broker refused a publish, or the client is closing: worth trying again later (503). */
export class PublishFailedError extends FanwatchError {
  override readonly name = "PublishFailedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_PUBLISH_FAILED", message, options);
  }
}

/** The port a server was to listen on is taken; the message names the flag that picks another. */
export class PortInUseError extends FanwatchError {
  override readonly name = "PortInUseError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_PORT_IN_USE", message, options);
  }
}

/** The MQTT broker cannot be reached (down, or refusing the credentials); the message says which and what to check. */
export class BrokerUnavailableError extends FanwatchError {
  override readonly name = "BrokerUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_BROKER_UNAVAILABLE", message, options);
  }
}

/**
 * An HTTP answer that was not a success. `status` is the status the server answered, which
 * isRetryable (lib/infra/retry.ts) judges; it is never passed on as a function's own answer.
 */
export class HttpStatusError extends FanwatchError {
  override readonly name = "HttpStatusError";
  declare readonly status: number;

  constructor(status: number, message: string, options?: ErrorOptions) {
    super("FANWATCH_HTTP_STATUS", message, { ...options, status });
  }
}

/**
 * InfluxDB cannot store anything for now: unreachable, too slow, failing (5xx), overloaded (429),
 * refusing the credentials, or missing its database. Nothing in the batch is known to be bad, so
 * the caller keeps it and retries later; the message says what is wrong and, if it is a
 * configuration problem, what to do.
 */
export class InfluxUnavailableError extends FanwatchError {
  override readonly name = "InfluxUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_INFLUX_UNAVAILABLE", message, options);
  }
}

/** InfluxDB answered a query with an error of the statement itself (a syntax error, no rights, no database). */
export class InfluxQueryError extends FanwatchError {
  override readonly name = "InfluxQueryError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_INFLUX_QUERY", message, options);
  }
}

/** A request body over the local gateway's limit; the gateway answers 413. */
export class BodyTooLargeError extends FanwatchError {
  override readonly name = "BodyTooLargeError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_BODY_TOO_LARGE", message, options);
  }
}

/** A request body the local gateway reads itself did not arrive within its deadline. */
export class BodyTimeoutError extends FanwatchError {
  override readonly name = "BodyTimeoutError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_BODY_TIMEOUT", message, options);
  }
}

/** The client went away before it sent the whole body; nobody is left to read the answer. */
export class BodyAbortedError extends FanwatchError {
  override readonly name = "BodyAbortedError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_BODY_ABORTED", message, options);
  }
}

/** An MQTT packet whose header announces more bytes than the embedded broker accepts. */
export class PacketTooLargeError extends FanwatchError {
  override readonly name = "PacketTooLargeError";

  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super("FANWATCH_PACKET_TOO_LARGE", `MQTT packet of ${size} bytes refused: the limit is ${limit} bytes`);
  }
}

/** A function's answer to an error: its HTTP status and `{"error", "code", "field"?}` body. */
export interface ErrorAnswer {
  status: number;
  body: { error: string; code: string; field?: string };
}

/**
 * The answer a function gives to a thrown error whose code has an HTTP status; undefined for any
 * other error, which the template answers with a 500. Handlers export it as their `errorAnswer`.
 */
export function errorAnswer(error: unknown): ErrorAnswer | undefined {
  if (!(error instanceof FanwatchError)) return undefined;
  const info: ErrorCodeInfo = ERROR_CODES[error.code];
  if (info.status === undefined || error.status === undefined) return undefined;
  const body: ErrorAnswer["body"] = { error: error.message, code: error.code };
  if (error.field !== undefined) body.field = error.field;
  return { status: error.status, body };
}

/** An error of the contract: ours, or the template's (which builds alone and repeats the shape). */
interface ContractError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
}

const KINDS: ReadonlySet<unknown> = new Set<ErrorKind>(["input", "usage", "unavailable", "failure", "signal"]);

function isContractError(error: unknown): error is ContractError {
  if (error instanceof FanwatchError) return true;
  if (!(error instanceof Error)) return false;
  const { code, kind } = error as Error & { code?: unknown; kind?: unknown };
  return typeof code === "string" && code.startsWith("FANWATCH_") && KINDS.has(kind);
}

/**
 * How the CLI ends on an error: exit 2 for a usage error, 1 for any other; an error of the contract
 * (docs/errors.md) is one line ending in its code, any other error is a bug and keeps its stack.
 */
export function exitOutcome(error: unknown): { exitCode: 1 | 2; line: string } {
  if (isContractError(error))
    return { exitCode: error.kind === "usage" ? 2 : 1, line: `${error.message} [${error.code}]` };
  return { exitCode: 1, line: error instanceof Error ? (error.stack ?? error.message) : String(error) };
}
