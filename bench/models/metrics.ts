import { readFileSync } from "node:fs";
import { readArgs } from "../support/process-stats.js";

/** One sample of a Prometheus text exposition: its name, labels and value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Scrapes a URL's Prometheus text ([] when it does not answer: a counter read as 0 says so in the report). */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  try {
    const answer = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
    return answer.ok ? parseMetrics(await answer.text()) : [];
  } catch {
    return [];
  }
}

/**
 * One function replica's own /_/metrics. The local gateway balances /function/<name>/_/metrics
 * over the replicas, so each is asked directly: its port is on its command line, and it answers
 * only callers with this run's token, which the gateway put in its environment (readable here:
 * the benchmark runs as the same user).
 */
export async function replicaMetrics(pid: number): Promise<Sample[]> {
  const port = /--port (\d+)/.exec(readArgs(pid))?.[1];
  const token = readFileSync(`/proc/${pid}/environ`, "utf8")
    .split("\0")
    .find((v) => v.startsWith("FANWATCH_CALLER_TOKEN="))
    ?.slice("FANWATCH_CALLER_TOKEN=".length);
  if (port === undefined || token === undefined) return [];
  return scrape(`http://127.0.0.1:${port}/_/metrics`, { "x-fanwatch-caller": token });
}

/** The counters of a failed request, by process kind: the connector's, the gateway's, predict's and score's. */
const FAILURES: Array<{ process: string; name: string; failed: (labels: Record<string, string>) => boolean }> = [
  { process: "connector", name: "connector_invocations_total", failed: (l) => l.code !== "200" },
  { process: "connector", name: "connector_retries_total", failed: () => true },
  { process: "connector", name: "connector_dead_lettered_total", failed: () => true },
  { process: "gateway", name: "gateway_function_invocation_total", failed: (l) => !(l.code ?? "").startsWith("2") },
  { process: "predict", name: "predict_readings_total", failed: (l) => l.outcome !== "scored" },
  { process: "predict", name: "predict_score_calls_total", failed: (l) => l.outcome !== "ok" },
  { process: "predict", name: "predict_explain_calls_total", failed: (l) => l.outcome !== "ok" },
  { process: "score", name: "score_model_refusals_total", failed: () => true },
];

/**
 * Every failure counter's samples above zero, added over a kind's replicas, keyed by metric and
 * labels (`predict_score_calls_total{outcome=out_of_time}`), from metrics by process name ("predict-1234").
 */
export function failureCounts(byProcess: Record<string, Sample[]>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [process, samples] of Object.entries(byProcess)) {
    const kind = process.replace(/-\d+$/, "");
    for (const f of FAILURES.filter((f) => f.process === kind)) {
      for (const s of samples.filter((s) => s.name === f.name && f.failed(s.labels) && s.value > 0)) {
        const labels = Object.entries(s.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",");
        const key = `${f.name}{${labels}}`;
        counts[key] = (counts[key] ?? 0) + s.value;
      }
    }
  }
  return counts;
}

/** What `after` counts beyond `before`, keeping only keys that grew. */
export function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([key, n]) => [key, n - (before[key] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  );
}
