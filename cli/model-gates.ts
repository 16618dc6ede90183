import type { Prediction } from "../lib/domain/prediction.js";
import { parseTimestamp } from "../lib/domain/telemetry.js";
import type { ScoringModel } from "../lib/inference/runtime.js";
import { loadBundleModel } from "../lib/models/bundle.js";
import { readEpisodeEvidence, readFindings, type JetStreamAccess } from "../lib/models/gate-sources.js";
import { promotionGates, readGateSettings, type GateSettings, type PromotionGates } from "../lib/models/gates.js";
import type { ModelRegistry } from "../lib/models/registry.js";
import { evaluate } from "../functions/health/evaluator.js";
import { readHealthPolicy, type HealthPolicy } from "../functions/health/policy.js";

export interface SiteGates {
  gates: PromotionGates;
  /** Lets go of the models the gates loaded. */
  dispose: () => void;
}

/**
 * The promotion gates of lib/models/gates.ts, wired to what they read: the registry's bundles
 * (golden sets, and the models themselves, loaded once each and checked as score checks them),
 * health's streams in NATS (findings, evidence), predict's comparisons, and health's own rules
 * with the site's HEALTH_* settings. Here in cli/ because only cli/ may import both lib/ and a
 * function's code.
 */
export function siteGates(
  nats: JetStreamAccess,
  registry: ModelRegistry,
  settings: GateSettings = readGateSettings(),
  policy: HealthPolicy = readHealthPolicy(),
): SiteGates {
  const models = new Map<string, Promise<ScoringModel>>();
  const model = (id: string): Promise<ScoringModel> => {
    let loaded = models.get(id);
    if (loaded === undefined) {
      loaded = registry.get(id).then(async (bundle) => (await loadBundleModel(bundle, id)).model);
      models.set(id, loaded);
    }
    return loaded;
  };
  const gates = promotionGates(
    {
      golden: async (id) => (await registry.get(id)).golden,
      verdicts: async (id, inputs) => (await model(id)).predict(inputs),
      findings: (site, since) => readFindings(nats, site, since),
      evidence: (site, deviceID, alarmId) => readEpisodeEvidence(nats, site, deviceID, alarmId),
      comparisons: (site, shadow) => registry.comparisons(site, shadow),
      alarms: (deviceID, predictions) => alarmsUnderRules(deviceID, predictions, policy),
    },
    settings,
  );
  return {
    gates,
    dispose: () => {
      for (const loaded of models.values()) void loaded.then((m) => m.dispose()).catch(() => undefined);
      models.clear();
    },
  };
}

/** Whether health's rules, from a fresh fan, raise an alarm on these predictions (in reading-time order). */
export function alarmsUnderRules(deviceID: string, predictions: readonly Prediction[], policy: HealthPolicy): boolean {
  const inputs = predictions.map((prediction) => ({
    prediction,
    at: (prediction.timeStamp === undefined ? undefined : parseTimestamp(prediction.timeStamp)) ?? 0,
  }));
  // "Now" just after the last reading: the rules judge reading time, and none of it is in the future.
  const now = inputs.reduce((latest, i) => Math.max(latest, i.at), 0) + 1;
  return evaluate(undefined, deviceID, inputs, now, policy).transitions.some((t) => t.event === "alarm");
}
