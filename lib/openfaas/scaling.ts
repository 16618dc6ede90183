import { ScaleLabelError } from "../errors.js";

/**
 * The scaling policy of a function, pure (no clock, no timers): what the local gateway's
 * autoscaler applies every sample, and what the connector may use to ask for replicas on K3s.
 *
 * The labels follow OpenFaaS CE (faas gateway and faas-netes): com.openfaas.scale.min (default 1),
 * com.openfaas.scale.max (default 5, and CE refuses a deployment whose min or max is above 5),
 * com.openfaas.scale.factor (default 10, a percentage of max: CE's step up is
 * ceil(max × factor / 100); it refuses a factor above 100, and a factor of 0 stops its scaling).
 * min = max also leaves nothing to scale. Where CE then drops straight back to min when its alert
 * resolves, this policy scales down one replica at a time after a stable low period.
 */

/** The most replicas OpenFaaS CE runs of a function. */
export const CE_MAX_REPLICAS = 5;
export const DEFAULT_MIN_REPLICAS = 1;
export const DEFAULT_MAX_REPLICAS = 5;
export const DEFAULT_SCALING_FACTOR = 10;

export const MIN_LABEL = "com.openfaas.scale.min";
export const MAX_LABEL = "com.openfaas.scale.max";
export const FACTOR_LABEL = "com.openfaas.scale.factor";

export interface ScaleBounds {
  min: number;
  max: number;
  /** Percent of max added per step up. */
  factor: number;
  /** Replicas added per step up: ceil(max × factor / 100), at least 1. */
  step: number;
  /** False when min = max or factor = 0: the function runs min replicas, set by hand only. */
  enabled: boolean;
}

/** A function's bounds from its labels; a label CE would refuse (or cannot read) throws ScaleLabelError saying which and why. */
export function readScaleLabels(labels: Readonly<Record<string, string>>): ScaleBounds {
  const min = label(labels, MIN_LABEL, DEFAULT_MIN_REPLICAS);
  const max = label(labels, MAX_LABEL, DEFAULT_MAX_REPLICAS);
  const factor = label(labels, FACTOR_LABEL, DEFAULT_SCALING_FACTOR);
  if (min < 1)
    throw new ScaleLabelError(`${MIN_LABEL} is ${min}: it must be at least 1 (scaling to zero is not in OpenFaaS CE)`);
  if (max > CE_MAX_REPLICAS)
    throw new ScaleLabelError(`${MAX_LABEL} is ${max}: OpenFaaS CE runs at most ${CE_MAX_REPLICAS} replicas`);
  if (min > max) throw new ScaleLabelError(`${MIN_LABEL} (${min}) is above ${MAX_LABEL} (${max})`);
  if (factor > 100)
    throw new ScaleLabelError(`${FACTOR_LABEL} is ${factor}: it is a percentage of ${MAX_LABEL}, 0 to 100`);
  return { min, max, factor, step: Math.max(1, Math.ceil((max * factor) / 100)), enabled: min < max && factor > 0 };
}

function label(labels: Readonly<Record<string, string>>, name: string, fallback: number): number {
  const value = labels[name];
  if (value === undefined || value === "") return fallback;
  if (!/^\d+$/.test(value.trim()))
    throw new ScaleLabelError(`${name} is ${JSON.stringify(value)}: it must be a whole number`);
  return Number(value.trim());
}

/** Whether `replicas` may be set by hand (the scale API): 0 (stop) or within the bounds; otherwise why not. */
export function replicasRefusal(replicas: number, bounds: Pick<ScaleBounds, "min" | "max">): string | undefined {
  if (replicas === 0 || (replicas >= bounds.min && replicas <= bounds.max)) return undefined;
  return `replicas must be 0 (stop the function) or between ${MIN_LABEL} ${bounds.min} and ${MAX_LABEL} ${bounds.max}, not ${replicas}`;
}

/**
 * Down when the load would fit one replica fewer at this share of the target. Below 1, so that the
 * replicas left are not at once over the target (no flapping); not as low as a half, which kept
 * 2 predict replicas for good at 500 readings/s (2.1 in flight, the target 4).
 */
const SCALE_DOWN_SHARE = 0.75;

/** What the autoscaler aims at; the local gateway reads it from GATEWAY_SCALE_* (docs/start.md). */
export interface ScalePolicy {
  /** Requests in flight per replica it aims for: above it, more replicas. */
  targetInFlight: number;
  /** p99 latency above which the function counts as overloaded, if its replicas are all busy. */
  latencyMs: number;
  /** How long the load must stay low before one replica is removed (and again before the next). */
  scaleDownWindowMs: number;
  /**
   * The share of the machine's CPU that must be idle for a scale-up (0–1), where the replicas
   * share one machine; undefined where they do not (a cluster). A replica needs a core to run on:
   * with every core busy it only adds a process to share them.
   */
  minIdleCpu?: number | undefined;
}

/** The load measured over one sample period. */
export interface LoadSample {
  /** Requests in flight on the function, averaged over the period (all replicas together). */
  inFlight: number;
  /** Invocations per second over the period. */
  rate: number;
  /** p99 latency over the period in ms; undefined when nothing finished. */
  p99Ms: number | undefined;
  /** The share of the machine's CPU that was idle over the period (0–1), where it is measured. */
  idleCpu?: number | undefined;
}

/** What the policy remembers between samples: since when the load has been low. */
export interface ScaleMemory {
  lowSince: number | undefined;
}

export type ScaleDirection = "up" | "down" | "hold";

export interface ScaleDecision {
  replicas: number;
  direction: ScaleDirection;
  reason: string;
  memory: ScaleMemory;
}

/**
 * The replicas a function should run, given those it runs, its bounds, the load of the last
 * sample, the time (ms) and the memory of the previous decision. Up by the bounds' step when the
 * replicas are over their target in flight, or slow while all busy; down by one when the load
 * would fit in one replica fewer at three quarters of the target, and has done so for the whole window.
 */
export function decideReplicas(
  current: number,
  bounds: ScaleBounds,
  sample: LoadSample,
  now: number,
  memory: ScaleMemory,
  policy: ScalePolicy,
): ScaleDecision {
  const hold = (reason: string, lowSince: number | undefined = undefined): ScaleDecision => ({
    replicas: current,
    direction: "hold",
    reason,
    memory: { lowSince },
  });
  if (current === 0) return hold("scaled to 0 by hand: the autoscaler does not start a stopped function");
  if (!bounds.enabled)
    return hold(bounds.factor === 0 ? "scaling disabled (factor 0)" : "scaling disabled (min = max)");
  if (current < bounds.min)
    return {
      replicas: bounds.min,
      direction: "up",
      reason: `below min ${bounds.min}`,
      memory: { lowSince: undefined },
    };
  if (current > bounds.max)
    return { replicas: bounds.max, direction: "down", reason: `above max ${bounds.max}`, memory: { lowSince: now } };
  const perReplica = sample.inFlight / current;
  const slow = sample.p99Ms !== undefined && sample.p99Ms > policy.latencyMs && perReplica >= 1;
  const load = `${round(perReplica)} in flight per replica (target ${policy.targetInFlight}), ${round(sample.rate)}/s, p99 ${sample.p99Ms === undefined ? "-" : `${Math.round(sample.p99Ms)} ms`}`;
  if (perReplica > policy.targetInFlight || slow) {
    const why =
      slow && perReplica <= policy.targetInFlight
        ? `p99 over ${policy.latencyMs} ms with every replica busy`
        : "over target";
    if (current >= bounds.max) return hold(`${why} at max ${bounds.max}: ${load}`);
    if (policy.minIdleCpu !== undefined && sample.idleCpu !== undefined && sample.idleCpu < policy.minIdleCpu) {
      return hold(
        `${why}, but the machine's CPU is ${Math.round((1 - sample.idleCpu) * 100)}% busy (a replica needs ${Math.round(policy.minIdleCpu * 100)}% idle): another replica would not get a core: ${load}`,
      );
    }
    return {
      replicas: Math.min(bounds.max, current + bounds.step),
      direction: "up",
      reason: `${why}: ${load}`,
      memory: { lowSince: undefined },
    };
  }
  const low = current > bounds.min && sample.inFlight <= policy.targetInFlight * (current - 1) * SCALE_DOWN_SHARE;
  if (!low) return hold(`steady: ${load}`);
  const lowSince = memory.lowSince ?? now;
  const lowFor = now - lowSince;
  if (lowFor < policy.scaleDownWindowMs)
    return hold(
      `low for ${Math.floor(lowFor / 1000)} s of the ${Math.round(policy.scaleDownWindowMs / 1000)} s window: ${load}`,
      lowSince,
    );
  // The window starts again: each further replica removed needs its own stable low period.
  return {
    replicas: current - 1,
    direction: "down",
    reason: `low for ${Math.round(lowFor / 1000)} s (window ${Math.round(policy.scaleDownWindowMs / 1000)} s): ${load}`,
    memory: { lowSince: now },
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
