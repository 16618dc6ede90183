import { quantile } from "../support/load-step.js";

/** A latency distribution as the results print it: how many, the median and the 99th percentile (ms). */
export interface Latency {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Count, p50, p99 and max of `values` (ms, one decimal); NaN percentiles become null in JSON. */
export function latency(values: readonly number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    count: sorted.length,
    p50Ms: round(quantile(sorted, 0.5)),
    p99Ms: round(quantile(sorted, 0.99)),
    maxMs: round(sorted.at(-1) ?? Number.NaN),
  };
}

/** `a / b` with two decimals (null when b is not positive). */
export function ratio(a: number, b: number): number | null {
  return b > 0 && Number.isFinite(a) ? Math.round((a / b) * 100) / 100 : null;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Now, in ms since the epoch to a fraction of a ms: publishes and receipts are timed with it. */
export const clock = () => performance.timeOrigin + performance.now();
