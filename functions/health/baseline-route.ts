import { z } from "zod";
import type { PublishedBaseline } from "../../lib/domain/baseline.js";
import { HealthNotFoundError, InputError, StoreUnavailableError } from "../../lib/errors.js";
import { publishedBaseline, type BaselinePolicy } from "./baseline.js";
import type { HealthStore } from "./store.js";

/**
 * GET /function/health/baseline?deviceID=<id> (docs/health.md, "Baselines"): the fan's own
 * baseline as the rules hold it now, in the form fan_baselines publishes (which may be up to an
 * hour behind). 404 for a fan health has not seen; a fan without one yet (health was upgraded
 * while it ran) answers 404 too, naming that.
 */
export function isBaselineRoute(path: string): boolean {
  return path.replace(/\/+$/, "") === "/baseline";
}

const QuerySchema = z.object({ deviceID: z.string().min(1).max(128) });

export function baselineGet(
  store: HealthStore,
  policy: BaselinePolicy,
  query: Record<string, string | string[] | undefined>,
): PublishedBaseline {
  const parsed = QuerySchema.safeParse(query);
  if (!parsed.success) throw new InputError("GET /baseline needs ?deviceID=<id>", "deviceID");
  const { deviceID } = parsed.data;
  if (!store.available)
    throw new StoreUnavailableError(`the health store is unavailable (${store.description}); try again later`);
  const health = store.cached(deviceID)?.entry?.health;
  if (health === undefined) throw new HealthNotFoundError(deviceID);
  const baseline = health.tracker.baseline;
  if (baseline === undefined)
    throw new InputError(`fan "${deviceID}" has no baseline yet: it is learnt from its next readings`, "deviceID", {
      status: 404,
      code: "FANWATCH_HEALTH_NOT_FOUND",
    });
  const frozen = health.tracker.state === "warning" || health.tracker.state === "alarm";
  return publishedBaseline(deviceID, baseline, frozen, policy);
}
