import type { ComparisonTotals } from "../lib/models/comparison-sum.js";

/** `fanwatch model compare` as text. */
export function formatComparison(t: ComparisonTotals): string[] {
  const percent = (v: number | null) => (v === null ? "n/a" : `${(v * 100).toFixed(2)}%`);
  const ratio = (v: number | null) => (v === null ? "not measured" : `${v.toFixed(2)}×`);
  const fans = (ids: string[]) => (ids.length === 0 ? "none" : ids.join(", "));
  const lines = [
    `shadow ${t.shadow} against active ${t.active} at site ${t.site}`,
    t.replicas === 0
      ? "no comparison yet: predict writes one every few seconds while the shadow scores readings"
      : `${t.readings.toLocaleString("en")} readings since ${t.since ?? "?"} (${t.replicas} predict replica${t.replicas === 1 ? "" : "s"}, latest ${t.at ?? "?"})`,
    `agreement  ${percent(t.agreement)} (${t.agreed.toLocaleString("en")} readings with the same verdict)`,
    `alarms     active ${t.alarms.active}, shadow ${t.alarms.shadow}`,
    `would open  ${fans(t.fans.opened)}`,
    `would close ${fans(t.fans.closed)}`,
    `cost       CPU ${ratio(t.cost.cpuRatio)}, latency ${ratio(t.cost.latencyRatio)} of the active model alone`,
  ];
  if (t.stale > 0)
    lines.push(`(${t.stale} older record${t.stale === 1 ? "" : "s"} against another active model not counted)`);
  return lines;
}
