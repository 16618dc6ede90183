import { InputError } from "../errors.js";

/** The registry has no such fan, or not in a state the command needs (FANWATCH_DEVICE_UNKNOWN, 404). */
export class DeviceUnknownError extends InputError {
  override readonly name = "DeviceUnknownError";

  constructor(message: string, field = "deviceID") {
    super(message, field, { status: 404, code: "FANWATCH_DEVICE_UNKNOWN" });
  }
}

/** An id the registry cannot hold (FANWATCH_DEVICE_ID_INVALID, 400). */
export class DeviceIdError extends InputError {
  override readonly name = "DeviceIdError";

  constructor(message: string, field = "deviceID") {
    super(message, field, { status: 400, code: "FANWATCH_DEVICE_ID_INVALID" });
  }
}
