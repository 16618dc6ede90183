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

/** The sum of a metric's samples whose labels pass `where` (all of them without it). */
export function total(
  samples: readonly Sample[],
  name: string,
  where?: (labels: Record<string, string>) => boolean,
): number {
  return samples
    .filter((s) => s.name === name && (where === undefined || where(s.labels)))
    .reduce((sum, s) => sum + s.value, 0);
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
