import { quantile } from "../support/load-step.js";

/**
 * Per-second windows of publish→prediction latency over a phase, split into those near a swap
 * (a window overlapping a swap's time ±1 s) and the steady rest.
 */
export interface WindowSplit {
  /** The p99 (ms) of each window near a swap, and of each other window. */
  swap: number[];
  steady: number[];
  /** Every window in order: its start (s into the phase), readings, p99 and whether it is near a swap. */
  windows: Array<{ t: number; readings: number; p99Ms: number; nearSwap: boolean }>;
}

/** `readings`: each reading's publish time and latency; `swaps`: when each swap command was sent. */
export function splitWindows(
  readings: ReadonlyArray<{ sentAt: number; ms: number }>,
  phaseStart: number,
  swaps: readonly number[],
  marginMs = 1000,
): WindowSplit {
  const byWindow = new Map<number, number[]>();
  for (const { sentAt, ms } of readings) {
    const w = Math.floor((sentAt - phaseStart) / 1000);
    const list = byWindow.get(w);
    if (list === undefined) byWindow.set(w, [ms]);
    else list.push(ms);
  }
  const split: WindowSplit = { swap: [], steady: [], windows: [] };
  for (const w of [...byWindow.keys()].sort((a, b) => a - b)) {
    const from = phaseStart + w * 1000;
    const near = swaps.some((at) => from < at + marginMs && from + 1000 > at - marginMs);
    const latencies = (byWindow.get(w) as number[]).sort((a, b) => a - b);
    const p99 = quantile(latencies, 0.99);
    (near ? split.swap : split.steady).push(p99);
    split.windows.push({ t: w, readings: latencies.length, p99Ms: p99, nearSwap: near });
  }
  return split;
}

/** Median, p10 and p90 of a list (NaN for none), rounded to 1/`per`. */
export function spread(values: readonly number[], per = 10): { median: number; p10: number; p90: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const r = (q: number) => Math.round(quantile(sorted, q) * per) / per;
  return { median: r(0.5), p10: r(0.1), p90: r(0.9), n: sorted.length };
}
