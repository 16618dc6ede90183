import type { EvaluationMetrics } from "../lib/inference/metadata.js";

/** Human-readable metrics for the terminal. */
export function formatMetrics(metrics: EvaluationMetrics): string {
  const c = metrics.confusion;
  const f = (v: number | null) => (v === null ? "n/a" : v.toFixed(4));
  return [
    `rows       ${metrics.rows}`,
    `accuracy   ${f(metrics.accuracy)}`,
    `precision  ${f(metrics.precision)}  (fault class)`,
    `recall     ${f(metrics.recall)}  (fault class)`,
    `f1         ${f(metrics.f1)}`,
    `roc-auc    ${f(metrics.rocAuc)}`,
    "confusion  predicted fault  predicted healthy",
    `  faulty   ${String(c.truePositive).padStart(15)}  ${String(c.falseNegative).padStart(17)}`,
    `  healthy  ${String(c.falsePositive).padStart(15)}  ${String(c.trueNegative).padStart(17)}`,
  ].join("\n");
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m > 0 ? `${m}m ${String(s).padStart(2, "0")}s` : `${s}s`;
}
