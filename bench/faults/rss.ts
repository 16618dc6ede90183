import { rssMb } from "../support/process-stats.js";

export interface RssSample {
  /** ms on the sampler's clock */
  at: number;
  mb: Record<string, number>;
}

/**
 * Samples the resident memory of named processes every `everyMs`: the largest value seen per name
 * (over every process that held the name: a restarted one counts too), when it was seen, and, for
 * the soak, a timeline.
 */
export class RssSampler {
  readonly peak: Record<string, number> = {};
  /** When each peak was sampled, on `clock`. */
  readonly peakAt: Record<string, number> = {};
  readonly timeline: RssSample[] = [];
  readonly #timer: NodeJS.Timeout;
  #sampling = false;

  constructor(
    pids: () => Promise<Record<string, number | undefined>>,
    everyMs: number,
    private readonly clock: () => number,
    private readonly timelineEveryMs = Number.POSITIVE_INFINITY,
  ) {
    this.#timer = setInterval(() => void this.#sample(pids), everyMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #sample(pids: () => Promise<Record<string, number | undefined>>): Promise<void> {
    if (this.#sampling) return;
    this.#sampling = true;
    try {
      const mb: Record<string, number> = {};
      const at = this.clock();
      for (const [name, pid] of Object.entries(await pids())) {
        if (pid === undefined) continue;
        const value = await rssMb(pid).catch(() => undefined); // it may have just been killed
        if (value === undefined || Number.isNaN(value)) continue;
        mb[name] = value;
        if (value > (this.peak[name] ?? 0)) {
          this.peak[name] = value;
          this.peakAt[name] = at;
        }
      }
      const last = this.timeline.at(-1);
      if (last === undefined || at - last.at >= this.timelineEveryMs) this.timeline.push({ at, mb });
    } finally {
      this.#sampling = false;
    }
  }
}

/**
 * Least-squares slope of each process's RSS over the timeline, in MB per minute, leaving out the
 * first `warmUpShare` of it (start-up, JIT, buffers filling).
 */
export function rssSlopes(timeline: RssSample[], warmUpShare = 0.25): Record<string, number> {
  const end = timeline.at(-1)?.at ?? 0;
  const kept = timeline.filter((s) => s.at >= end * warmUpShare);
  const names = new Set(kept.flatMap((s) => Object.keys(s.mb)));
  const slopes: Record<string, number> = {};
  for (const name of names) {
    const points = kept
      .filter((s) => s.mb[name] !== undefined)
      .map((s) => [s.at / 60_000, s.mb[name] as number] as const);
    if (points.length < 2) continue;
    const meanX = points.reduce((sum, [x]) => sum + x, 0) / points.length;
    const meanY = points.reduce((sum, [, y]) => sum + y, 0) / points.length;
    const sxx = points.reduce((sum, [x]) => sum + (x - meanX) ** 2, 0);
    const sxy = points.reduce((sum, [x, y]) => sum + (x - meanX) * (y - meanY), 0);
    slopes[name] = sxx === 0 ? 0 : Math.round((sxy / sxx) * 100) / 100;
  }
  return slopes;
}
