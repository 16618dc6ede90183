import { ModelNotFoundError, ModelRefusedError } from "../lib/errors.js";
import type { EvaluationMetrics } from "../lib/inference/metadata.js";
import { summarizeGolden, type GoldenSummary } from "../lib/models/golden.js";
import type { ModelRegistry, ModelVersion } from "../lib/models/registry.js";
import type { ModelBundle } from "../lib/models/schemas.js";

/** Ancestors followed at most: a lineage longer than this is cut, and says so. */
const LINEAGE_DEPTH = 20;

export interface VersionShown {
  id: string;
  site: string;
  /** What the site's pointer makes of it. */
  role: "active" | "previous" | "shadow" | null;
  version: ModelVersion;
  /** null when its stored bytes match its id; else why it is refused here. */
  refused: string | null;
  model: {
    trained: string;
    architecture: string;
    threshold: number;
    data: { file: string; rows: number; sha256: string };
    epochs: number;
    metrics: EvaluationMetrics;
  } | null;
  golden: GoldenSummary | null;
  /** Its parent, the parent's parent…; `stored` false for an id this registry does not hold. */
  lineage: Array<{ id: string; stored: boolean; trained: string | null; accuracy: number | null }>;
  /** Versions trained from it. */
  children: string[];
  /** Score replicas of the site serving it, as each last reported. */
  replicas: Array<{ replica: string; as: "active" | "shadow"; at: string }>;
  /** Replicas of the site that would not serve it, and why. */
  refusals: Array<{ replica: string; error: string; at: string }>;
}

/** Everything `fanwatch model show` says about one version. */
export async function describeVersion(registry: ModelRegistry, site: string, id: string): Promise<VersionShown> {
  const [versions, pointer, statuses] = await Promise.all([
    registry.list(),
    registry.pointer(site),
    registry.replicaStatuses(site),
  ]);
  const byId = new Map(versions.map((v) => [v.id, v]));
  const version = byId.get(id);
  if (version === undefined) throw new ModelNotFoundError(`the model registry has no model ${id}: fanwatch model list`);
  let bundle: ModelBundle | undefined;
  let refused: string | null = null;
  try {
    bundle = await registry.get(id);
  } catch (error) {
    if (!(error instanceof ModelRefusedError)) throw error;
    refused = error.message;
  }
  const p = pointer?.pointer;
  return {
    id,
    site,
    role: p?.active === id ? "active" : p?.shadow === id ? "shadow" : p?.previous === id ? "previous" : null,
    version,
    refused,
    model: bundle === undefined ? null : modelOf(bundle),
    golden: bundle === undefined ? null : summarizeGolden(bundle.golden),
    lineage: lineageOf(version, byId),
    children: versions.filter((v) => v.parent === id).map((v) => v.id),
    replicas: statuses.flatMap((s): VersionShown["replicas"] => {
      const as = s.active === id ? "active" : s.shadow === id ? "shadow" : undefined;
      return as === undefined ? [] : [{ replica: s.replica, as, at: s.at }];
    }),
    refusals: statuses.flatMap((s) =>
      s.refused.filter((r) => r.id === id).map((r) => ({ replica: s.replica, error: r.error, at: r.at })),
    ),
  };
}

function modelOf(bundle: ModelBundle): NonNullable<VersionShown["model"]> {
  const m = bundle.metadata;
  return {
    trained: m.createdAt,
    architecture: m.architecture,
    threshold: m.threshold,
    data: m.training.data,
    epochs: m.training.epochs,
    metrics: m.metrics,
  };
}

function lineageOf(version: ModelVersion, byId: ReadonlyMap<string, ModelVersion>): VersionShown["lineage"] {
  const lineage: VersionShown["lineage"] = [];
  let parent = version.parent;
  while (parent !== null && lineage.length < LINEAGE_DEPTH && !lineage.some((l) => l.id === parent)) {
    const stored = byId.get(parent);
    lineage.push({
      id: parent,
      stored: stored !== undefined,
      trained: stored?.trained ?? null,
      accuracy: stored?.metrics?.accuracy ?? null,
    });
    parent = stored?.parent ?? null;
  }
  return lineage;
}
