import { cpuSeconds } from "./process-stats.js";

/**
 * What the end-to-end benchmarks (pipeline.ts, pipeline-health.ts) share about one offered-load
 * step: pacing the publishes, waiting for the stragglers, percentiles and CPU per reading.
 */

/** Calls `publish(n)` for n = 0, 1, … at `rate` a second for `seconds`, paced every 10 ms; resolves with the count once every publish settled. */
export async function publishPaced(
  rate: number,
  seconds: number,
  publish: (n: number) => Promise<unknown>,
): Promise<number> {
  const started = Date.now();
  let sent = 0;
  const publishes: Array<Promise<unknown>> = [];
  while (Date.now() - started < seconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++) publishes.push(publish(sent));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await Promise.all(publishes);
  return sent;
}

/** Resolves once `done()` reaches `expected`, or once it stopped moving for `quietMs`. */
export async function waitUntilDone(done: () => number, expected: number, quietMs = 3_000): Promise<void> {
  let last = -1;
  let quietSince = Date.now();
  while (Date.now() - quietSince < quietMs && done() < expected) {
    if (done() !== last) {
      last = done();
      quietSince = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The q-quantile (0..1) of values sorted in ascending order; NaN for none. */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** CPU seconds used so far by each named process (0 for one that is gone). */
export async function cpuByProcess(pids: Record<string, number | undefined>): Promise<Record<string, number>> {
  const entries = await Promise.all(
    Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid).catch(() => 0)] as const),
  );
  return Object.fromEntries(entries);
}

/** CPU milliseconds each process spent per 1,000 readings between two `cpuByProcess` samples. */
export function cpuMsPer1000(
  before: Record<string, number>,
  after: Record<string, number>,
  readings: number,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after).map(([name, seconds]) => [
      name,
      Math.round(((seconds - (before[name] ?? 0)) * 1e6) / Math.max(1, readings)),
    ]),
  );
}
