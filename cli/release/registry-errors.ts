import { FanwatchError } from "../../lib/errors.js";

/**
 * Why a registry gave no digest, for the three things a release engineer does next: fix the
 * network (unreachable), the credentials (refused) or the tag (not-found). `failed` is anything
 * else the registry answered. All carry FANWATCH_HTTP_STATUS (docs/errors.md): the registry's own
 * status when it answered, none when it could not be reached.
 */
export type RegistryFailure = "unreachable" | "refused" | "not-found" | "failed";

export class RegistryError extends FanwatchError {
  override readonly name = "RegistryError";

  constructor(
    readonly reason: RegistryFailure,
    message: string,
    options?: ErrorOptions & { status?: number },
  ) {
    super("FANWATCH_HTTP_STATUS", message, options);
  }
}
