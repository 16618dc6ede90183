import { FanwatchError, type ErrorOptions } from "../lib/errors.js";

/** `fanwatch notifications` cannot reach NATS; the message names the address and the setting. */
export class NotifyUnavailableError extends FanwatchError {
  override readonly name = "NotifyUnavailableError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_NOTIFY_UNAVAILABLE", message, options);
  }
}

/** `fanwatch notifications redrive` found no dead letter matching what it was asked for. */
export class NoDeadLetterMatchError extends FanwatchError {
  override readonly name = "NoDeadLetterMatchError";

  constructor(message: string, options?: ErrorOptions) {
    super("FANWATCH_NOTIFY_NO_MATCH", message, options);
  }
}
