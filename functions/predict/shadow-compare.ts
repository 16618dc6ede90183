import type { Prediction } from "../../lib/domain/prediction.js";
import { parseTimestamp } from "../../lib/domain/telemetry.js";
import type { ShadowComparison } from "../../lib/models/schemas.js";
// The health rules are a pure function (docs/health.md): run here on both models' predictions,
// so that the comparison says which fans would alarm differently under the shadow. Imported, never
// copied, so that the comparison judges by the rules health applies: the one exception to "a
// function never imports another" (docs/architecture.md). Written from the repository root
// (../../functions/health/), which is also where stack.yml's `configuration.copy` puts them in
// the image's build context.
import { evaluate, type FanHealth } from "../../functions/health/evaluator.js";
import { DEFAULT_POLICY, type HealthPolicy } from "../../functions/health/policy.js";

/** One reading as both models answered it: the active's prediction as published, and the shadow's verdict. */
export interface ShadowPair {
  active: Prediction;
  shadow: { fault: 0 | 1; probability: number };
}

/** A batch score answered with a shadow: which models, their answers per reading, and score's time for each. */
export interface ShadowBatch {
  active: string;
  shadow: string;
  pairs: readonly ShadowPair[];
  timing?: { activeMs: number; shadowMs: number } | undefined;
}

export interface ComparerOptions {
  site: string;
  replica: string;
  /** Fans whose health is followed under both models; readings of further fans count towards agreement only. */
  maxFans: number;
  policy?: HealthPolicy;
}

/** Fans listed in a comparison as opened or closed, each (the schema's bound). */
const MAX_LISTED = 100;
/**
 * Readings of a fan run through the rules at once. The rules' cost is mostly per call (a fan's
 * state is copied), and a batch usually holds one reading of each fan: queuing them
 * cuts what the comparison costs predict to a third (measured: 22 → 7 µs a reading, 200 fans,
 * 100 batches of one reading each).
 */
const RULES_EVERY = 8;
/** Batches whose latency ratio is kept for the median. */
const LATENCY_SAMPLES = 1_024;

interface FanTrack {
  active: FanHealth | undefined;
  shadow: FanHealth | undefined;
  alarmsActive: number;
  alarmsShadow: number;
  /** Readings not yet run through the rules: at most RULES_EVERY - 1 between summaries. */
  queued: Array<{ active: Prediction; shadow: Prediction; at: number }>;
}

/** What has been seen of one (active, shadow) pair since it started on this replica. */
interface Window {
  active: string;
  shadow: string;
  since: string;
  readings: number;
  agreed: number;
  fans: Map<string, FanTrack>;
  activeMs: number;
  shadowMs: number;
  latencyRatios: number[];
}

/**
 * Predict's comparison of a shadow with the active model (docs/models.md, "Shadow"): per reading,
 * whether both gave the same fault; per fan, the health rules run on each model's predictions, so
 * that the alarms each would have raised are counted; and score's compute time for each model.
 * Memory is bounded: at most `maxFans` fans are followed (two health states and fewer than
 * RULES_EVERY queued readings each), and the latency sample is a ring. A new pair (a promote, another shadow) starts a new comparison.
 */
export class ShadowComparer {
  readonly #options: Required<ComparerOptions>;
  #window: Window | undefined;
  #untracked = 0;
  /** Bumped on every batch, whatever the pair: the writer puts only what changed. */
  #version = 0;

  constructor(options: ComparerOptions) {
    this.#options = { policy: DEFAULT_POLICY, ...options };
  }

  /** Readings of fans beyond maxFans since the comparison started: compared, but no fan's rules were run for them. */
  get untrackedReadings(): number {
    return this.#untracked;
  }

  /**
   * Adds a batch. When it is of another pair than the one compared so far, that comparison ends
   * and is returned (to be published one last time); a new one starts with this batch.
   */
  observe(batch: ShadowBatch, now: number): ShadowComparison | undefined {
    let ended: ShadowComparison | undefined;
    let w = this.#window;
    if (w !== undefined && (w.active !== batch.active || w.shadow !== batch.shadow)) {
      ended = this.#summary(w, now);
      w = undefined;
    }
    if (w === undefined) {
      this.#untracked = 0;
      w = this.#window = {
        active: batch.active,
        shadow: batch.shadow,
        since: new Date(now).toISOString(),
        readings: 0,
        agreed: 0,
        fans: new Map(),
        activeMs: 0,
        shadowMs: 0,
        latencyRatios: [],
      };
    }
    this.#version++;
    w.readings += batch.pairs.length;
    for (const pair of batch.pairs) if (pair.active.fault === pair.shadow.fault) w.agreed++;
    this.#judge(w, batch, now);
    const t = batch.timing;
    if (t !== undefined && t.activeMs > 0) {
      w.activeMs += t.activeMs;
      w.shadowMs += t.shadowMs;
      if (w.latencyRatios.length === LATENCY_SAMPLES) w.latencyRatios.shift();
      w.latencyRatios.push((t.activeMs + t.shadowMs) / t.activeMs);
    }
    return ended;
  }

  /** The comparison so far, or undefined when no shadow was seen; `version` changes with every batch. */
  current(now: number): { comparison: ShadowComparison; version: number } | undefined {
    const w = this.#window;
    return w === undefined ? undefined : { comparison: this.#summary(w, now), version: this.#version };
  }

  /**
   * Queues each reading with its fan, both models' predictions side by side; a fan's queue is run
   * through the rules once it holds RULES_EVERY readings (and every queue before a summary).
   */
  #judge(w: Window, batch: ShadowBatch, now: number): void {
    for (const { active, shadow } of batch.pairs) {
      const deviceID = active.deviceID;
      let track = w.fans.get(deviceID);
      if (track === undefined) {
        if (w.fans.size >= this.#options.maxFans) {
          this.#untracked++;
          continue;
        }
        track = { active: undefined, shadow: undefined, alarmsActive: 0, alarmsShadow: 0, queued: [] };
        w.fans.set(deviceID, track);
      }
      // What health would get from the shadow: the same reading, the shadow's verdict, no explanation.
      const seen: Prediction = { deviceID, fault: shadow.fault, probability: shadow.probability, model: batch.shadow };
      if (active.timeStamp !== undefined) seen.timeStamp = active.timeStamp;
      if (active.reading !== undefined) seen.reading = active.reading;
      const at = active.timeStamp === undefined ? undefined : parseTimestamp(active.timeStamp);
      track.queued.push({ active, shadow: seen, at: at ?? now });
      if (track.queued.length >= RULES_EVERY) this.#runRules(deviceID, track, now);
    }
  }

  /** Every fan's queue through the rules: what a summary counts. */
  #runAll(w: Window, now: number): void {
    for (const [deviceID, track] of w.fans) if (track.queued.length > 0) this.#runRules(deviceID, track, now);
  }

  /** The health rules on each model's predictions of one fan, in reading-time order (evaluate sorts them). */
  #runRules(deviceID: string, track: FanTrack, now: number): void {
    const policy = this.#options.policy;
    const queued = track.queued;
    track.queued = [];
    const active = evaluate(
      track.active,
      deviceID,
      queued.map((q) => ({ prediction: q.active, at: q.at })),
      now,
      policy,
    );
    const shadow = evaluate(
      track.shadow,
      deviceID,
      queued.map((q) => ({ prediction: q.shadow, at: q.at })),
      now,
      policy,
    );
    track.active = active.next;
    track.shadow = shadow.next;
    for (const t of active.transitions) if (t.event === "alarm") track.alarmsActive++;
    for (const t of shadow.transitions) if (t.event === "alarm") track.alarmsShadow++;
  }

  #summary(w: Window, now: number): ShadowComparison {
    this.#runAll(w, now);
    let alarmsActive = 0;
    let alarmsShadow = 0;
    const opened: string[] = [];
    const closed: string[] = [];
    for (const [deviceID, track] of w.fans) {
      alarmsActive += track.alarmsActive;
      alarmsShadow += track.alarmsShadow;
      if (track.alarmsShadow > 0 && track.alarmsActive === 0 && opened.length < MAX_LISTED) opened.push(deviceID);
      if (track.alarmsActive > 0 && track.alarmsShadow === 0 && closed.length < MAX_LISTED) closed.push(deviceID);
    }
    return {
      site: this.#options.site,
      replica: this.#options.replica,
      active: w.active,
      shadow: w.shadow,
      since: w.since,
      at: new Date(now).toISOString(),
      readings: w.readings,
      agreed: w.agreed,
      alarms: { active: alarmsActive, shadow: alarmsShadow },
      fans: { opened, closed },
      cost: {
        cpuRatio: w.activeMs > 0 ? round3((w.activeMs + w.shadowMs) / w.activeMs) : null,
        latencyRatio: w.latencyRatios.length > 0 ? round3(median(w.latencyRatios)) : null,
      },
    };
  }
}

function median(values: readonly number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
