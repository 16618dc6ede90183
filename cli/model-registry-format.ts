import type { ModelVersion, PointerEntry } from "../lib/models/registry.js";
import type { VersionShown } from "./model-registry-show.js";

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v.toFixed(4));

/** Pointer changes `fanwatch model list` shows, newest first. */
const CHANGES_SHOWN = 10;

/** `fanwatch model list` as a table, the site's pointer in one line, then its last changes. */
export function formatVersions(
  versions: readonly ModelVersion[],
  site: string,
  history: readonly PointerEntry[],
): string[] {
  const pointer = history.at(-1);
  if (versions.length === 0)
    return ["no models in the registry: fanwatch model push <dir>, or start score with NATS_URL"];
  const p = pointer?.pointer;
  const role = (id: string) =>
    p?.active === id ? "active" : p?.shadow === id ? "shadow" : p?.previous === id ? "previous" : "";
  const rows = versions.map((v) => [
    v.id,
    role(v.id),
    v.created.slice(0, 19).replace("T", " "),
    v.parent ?? "–",
    f4(v.metrics?.accuracy),
    f4(v.metrics?.f1),
    `${Math.round(v.size / 1024)} KiB`,
    v.by,
  ]);
  const header = ["ID", "ROLE", "PUSHED (UTC)", "PARENT", "ACCURACY", "F1", "SIZE", "BY"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  const summary =
    p === undefined
      ? `site ${site} has no active model yet`
      : `site ${site}: active ${p.active}, previous ${p.previous ?? "none"}, shadow ${p.shadow ?? "none"} (revision ${pointer?.revision}, ${p.reason} by ${p.by} at ${p.at}${p.forced ? ", forced" : ""})`;
  const changes = history
    .slice(-CHANGES_SHOWN)
    .reverse()
    .map(
      ({ pointer: c, revision }) =>
        `  ${String(revision).padStart(4)}  ${c.at}  ${c.reason.padEnd(12)}  active ${c.active}${c.shadow === null ? "" : `, shadow ${c.shadow}`}  by ${c.by}${c.forced ? " (forced)" : ""}${c.note === null ? "" : `: ${c.note}`}`,
    );
  return [
    line(header),
    ...rows.map(line),
    `${versions.length} version${versions.length === 1 ? "" : "s"}; ${summary}`,
    ...(changes.length === 0 ? [] : [`the pointer's last changes, newest first:`, ...changes]),
  ];
}

/** `fanwatch model show` as text. */
export function formatShow(s: VersionShown): string[] {
  const lines = [
    `model ${s.id}${s.role === null ? "" : ` (${s.role} at site ${s.site})`}`,
    `pushed    ${s.version.created} by ${s.version.by}, ${s.version.size.toLocaleString("en")} bytes`,
    s.refused === null ? "integrity its stored bytes match its id" : `REFUSED   ${s.refused}`,
  ];
  if (s.model !== null) {
    const m = s.model;
    lines.push(
      `trained   ${m.trained}, ${m.architecture}, threshold ${m.threshold}, ${m.epochs} epochs on ${m.data.rows.toLocaleString("en")} rows of ${m.data.file} (sha256 ${m.data.sha256.slice(0, 12)})`,
      `held out  accuracy ${f4(m.metrics.accuracy)}, precision ${f4(m.metrics.precision)}, recall ${f4(m.metrics.recall)}, f1 ${f4(m.metrics.f1)}, roc-auc ${f4(m.metrics.rocAuc)} on ${m.metrics.rows} rows`,
    );
  }
  if (s.golden !== null) {
    const g = s.golden;
    lines.push(
      `golden    ${g.readings} readings (${g.labelled} labelled, ${g.faults} answered fault), tolerance ${g.tolerance}; accuracy on the labels ${f4(g.accuracy)}`,
    );
  }
  const ancestors = s.lineage.map((l) =>
    l.stored ? `${l.id} (accuracy ${f4(l.accuracy)})` : `${l.id} (not in this registry)`,
  );
  lines.push(`lineage   ${ancestors.length === 0 ? "none: trained from scratch" : `← ${ancestors.join(" ← ")}`}`);
  if (s.children.length > 0) lines.push(`children  ${s.children.join(", ")}`);
  lines.push(
    s.replicas.length === 0
      ? `served    by no score replica of site ${s.site}`
      : `served    ${s.replicas.map((r) => `${r.replica} (${r.as}, reported ${r.at})`).join(", ")}`,
  );
  for (const r of s.refusals) lines.push(`refused   by ${r.replica} at ${r.at}: ${r.error}`);
  return lines;
}
