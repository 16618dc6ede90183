import { ModelRefusedError } from "../lib/errors.js";
import { sumComparisons, type ComparisonTotals } from "../lib/models/comparison-sum.js";
import { summarizeGolden } from "../lib/models/golden.js";
import type { ModelRegistry, ModelVersion } from "../lib/models/registry.js";
import { REPLICA_STATUS_EVERY_MS, type ActivePointer } from "../lib/models/schemas.js";

/** A replica that has not written its status for this long has stopped: shown as gone. */
export const REPLICA_GONE_AFTER_MS = 3 * REPLICA_STATUS_EVERY_MS;

/** One of the site's models as the panel shows it. */
export interface ModelShown {
  id: string;
  /** When it was pushed; null when the registry does not hold it (deleted by hand). */
  pushed: string | null;
  parent: string | null;
  by: string | null;
  /** Its trainer's held-out accuracy, as pushed. */
  heldOutAccuracy: number | null;
  /** Its golden set's stored answers against the labels; null with none labelled or the bundle unreadable. */
  goldenAccuracy: number | null;
  goldenLabelled: number;
  /** Why its stored bytes cannot be served (digest mismatch, not a bundle…); null when they can. */
  refused: string | null;
}

export interface ReplicaShown {
  replica: string;
  active: string;
  shadow: string | null;
  revision: number;
  /** When it last wrote its status. */
  at: string;
  /** Not seen for REPLICA_GONE_AFTER_MS. */
  gone: boolean;
}

export interface RefusalShown {
  replica: string;
  id: string;
  /** The one-line reason the replica gave. */
  error: string;
  at: string;
}

/** GET /ui/api/models with a registry: everything the Models panel shows. */
export interface ModelsPanel {
  registry: "nats";
  site: string;
  /** The pointer's revision and its last change; null on a site with no model yet. */
  pointer: (Omit<ActivePointer, "active" | "previous" | "shadow"> & { revision: number }) | null;
  active: ModelShown | null;
  previous: ModelShown | null;
  shadow: ModelShown | null;
  /** The site's score replicas, by name. */
  replicas: ReplicaShown[];
  /** Every refusal the replicas report, newest first. */
  refusals: RefusalShown[];
  /** The shadow against the active model over every predict replica; null without a shadow. */
  comparison: ComparisonTotals | null;
  goneAfterMs: number;
}

/** A version's golden set never changes (its id is its digest): summed once per id. */
type GoldenCache = Map<string, { accuracy: number | null; labelled: number; refused: string | null }>;

/**
 * Reads the site's models from the registry: the pointer, its three models, the score replicas'
 * statuses and refusals, and the shadow's comparisons added up. Reads only: nothing is changed.
 */
export async function readModelsPanel(
  registry: ModelRegistry,
  site: string,
  now: Date,
  golden: GoldenCache = new Map(),
): Promise<ModelsPanel> {
  const [entry, versions, statuses] = await Promise.all([
    registry.pointer(site),
    registry.list(),
    registry.replicaStatuses(site),
  ]);
  const pointer = entry?.pointer;
  const byId = new Map(versions.map((v) => [v.id, v]));
  const shown = async (id: string | null | undefined): Promise<ModelShown | null> =>
    id === null || id === undefined ? null : modelShown(registry, id, byId.get(id), golden);
  const [active, previous, shadow, comparisons] = await Promise.all([
    shown(pointer?.active),
    shown(pointer?.previous),
    shown(pointer?.shadow),
    pointer?.shadow == null ? Promise.resolve(null) : registry.comparisons(site, pointer.shadow),
  ]);
  const replicas = statuses
    .map((s) => ({
      replica: s.replica,
      active: s.active,
      shadow: s.shadow,
      revision: s.revision,
      at: s.at,
      gone: now.getTime() - Date.parse(s.at) > REPLICA_GONE_AFTER_MS,
    }))
    .sort((a, b) => a.replica.localeCompare(b.replica, "en", { numeric: true }));
  const refusals = statuses
    .flatMap((s) => s.refused.map((r) => ({ replica: s.replica, id: r.id, error: r.error, at: r.at })))
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return {
    registry: "nats",
    site,
    pointer:
      entry === undefined
        ? null
        : {
            revision: entry.revision,
            reason: entry.pointer.reason,
            by: entry.pointer.by,
            at: entry.pointer.at,
            forced: entry.pointer.forced,
            note: entry.pointer.note,
          },
    active,
    previous,
    shadow,
    replicas,
    refusals,
    comparison:
      pointer?.shadow == null || comparisons === null
        ? null
        : sumComparisons(comparisons, pointer.active, pointer.shadow, site),
    goneAfterMs: REPLICA_GONE_AFTER_MS,
  };
}

async function modelShown(
  registry: ModelRegistry,
  id: string,
  version: ModelVersion | undefined,
  cache: GoldenCache,
): Promise<ModelShown> {
  let golden = cache.get(id);
  if (golden === undefined && version !== undefined) {
    try {
      const summary = summarizeGolden((await registry.get(id)).golden);
      golden = { accuracy: summary.accuracy, labelled: summary.labelled, refused: null };
      cache.set(id, golden);
    } catch (error) {
      // Not cached: bytes put back by hand are read again.
      if (!(error instanceof ModelRefusedError)) throw error;
      golden = { accuracy: null, labelled: 0, refused: error.message };
    }
  }
  return {
    id,
    pushed: version?.created ?? null,
    parent: version?.parent ?? null,
    by: version?.by ?? null,
    heldOutAccuracy: version?.metrics?.accuracy ?? null,
    goldenAccuracy: golden?.accuracy ?? null,
    goldenLabelled: golden?.labelled ?? 0,
    refused: version === undefined ? "the registry does not hold it" : (golden?.refused ?? null),
  };
}
