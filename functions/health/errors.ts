/**
 * Errors of the health rules that a caller can act on. Each carries the HTTP status the health
 * function answers with and the field to name in `{"error","field"}`.
 */
export class HealthNotFoundError extends Error {
  override readonly name = "HealthNotFoundError";
  readonly status = 404;
  readonly field = "deviceID";

  constructor(deviceID: string) {
    super(`no health record for fan "${deviceID}": it has not reported since the health state was created; check the deviceID`);
  }
}

/** The command does not fit the fan's state: nothing open to acknowledge, or already acknowledged. */
export class HealthConflictError extends Error {
  override readonly name = "HealthConflictError";
  readonly status = 409;
  readonly field: string;

  constructor(message: string, field = "action") {
    super(message);
    this.field = field;
  }
}
