import type { PromotionGates } from "./gates.js";
import type { PointerEntry } from "./registry.js";
import type { ActivePointer, GateResult, ShadowComparison } from "./schemas.js";

/** What auto-promotion reads and moves: the registry's pointer and the shadow's comparisons. */
export interface AutoPromoteRegistry {
  pointer(site: string): Promise<PointerEntry | undefined>;
  comparisons(site: string, shadow: string): Promise<ShadowComparison[]>;
  setPointer(site: string, pointer: ActivePointer, expectedRevision: number): Promise<number>;
}

export type AutoPromoteOutcome =
  | { outcome: "no-shadow"; detail: string }
  | { outcome: "too-soon"; detail: string }
  | { outcome: "failed"; detail: string; results: GateResult[] }
  | { outcome: "promoted"; detail: string; results: GateResult[]; revision: number };

/**
 * Optional auto-promotion (docs/models.md, "Promotion gates"): the site's shadow becomes its active
 * model once it has shadowed the active model for at least `afterMs` (by the earliest `since` of
 * the replicas' comparisons against that active model) and passes every gate. Never forced: a
 * failing gate leaves the pointer as it is. The pointer moves by compare-and-set on the revision
 * read, so a promote or rollback by hand meanwhile wins (the registry's conflict error).
 */
export async function autoPromote(
  registry: AutoPromoteRegistry,
  gates: PromotionGates,
  site: string,
  afterMs: number,
  now: number = Date.now(),
): Promise<AutoPromoteOutcome> {
  const current = await registry.pointer(site);
  const shadow = current?.pointer.shadow ?? null;
  if (current === undefined || shadow === null)
    return { outcome: "no-shadow", detail: `site ${site} has no shadow model: nothing to promote` };
  const { active } = current.pointer;
  // A `since` that is not a time (a record written by hand) dates nothing: NaN would make every
  // other replica's record count for nothing too.
  const since = (await registry.comparisons(site, shadow))
    .filter((c) => c.active === active)
    .map((c) => Date.parse(c.since))
    .reduce((earliest, at) => (Number.isFinite(at) ? Math.min(earliest, at) : earliest), Infinity);
  if (!(now - since >= afterMs)) {
    const shadowed = Number.isFinite(since) ? `${Math.round((now - since) / 60_000)} min` : "no comparison yet";
    return {
      outcome: "too-soon",
      detail: `shadow ${shadow} of site ${site}: ${shadowed} of the ${Math.round(afterMs / 60_000)} min MODEL_AUTO_PROMOTE_AFTER`,
    };
  }
  const results = await gates({ site, active, candidate: shadow });
  const failed = results.filter((r) => !r.passed).map((r) => r.gate);
  if (failed.length > 0)
    return { outcome: "failed", detail: `shadow ${shadow} not promoted: it failed ${failed.join(", ")}`, results };
  const pointer: ActivePointer = {
    active: shadow,
    previous: active,
    shadow: null,
    reason: "auto-promote",
    by: "auto-promote",
    at: new Date(now).toISOString(),
    forced: false,
    note: results
      .map((r) => `${r.gate}: ${r.detail}`)
      .join("; ")
      .slice(0, 1024),
  };
  const revision = await registry.setPointer(site, pointer, current.revision);
  return {
    outcome: "promoted",
    detail: `promoted shadow ${shadow} at site ${site} (revision ${revision}); rollback returns to ${active}`,
    results,
    revision,
  };
}
