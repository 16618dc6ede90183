import { cpus } from "node:os";
import { z } from "zod";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import {
  decideReplicas,
  type ScaleBounds,
  type ScaleDecision,
  type ScaleMemory,
  type ScalePolicy,
} from "../../lib/openfaas/scaling.js";
import type { ReplicaSet } from "./replica-set.js";

export interface AutoscalerSettings {
  /** How often the load is sampled and a decision taken. */
  intervalMs: number;
  policy: ScalePolicy;
}

/** The autoscaler's defaults, by variable. */
export const SCALE_DEFAULTS = Object.freeze({
  GATEWAY_SCALE_INTERVAL_MS: 1_000,
  GATEWAY_SCALE_TARGET_INFLIGHT: 4,
  GATEWAY_SCALE_LATENCY_MS: 1_000,
  GATEWAY_SCALE_DOWN_WINDOW_MS: 60_000,
  // The replicas share this machine's cores: below a fifth idle, a replica has no core to gain.
  GATEWAY_SCALE_MIN_IDLE_CPU: 0.2,
});

const d = SCALE_DEFAULTS;

/** GATEWAY_SCALE_*: how the local gateway scales the functions (docs/start.md). */
export const SCALE_SETTINGS = defineSettings({
  GATEWAY_SCALE_INTERVAL_MS: {
    env: ["GATEWAY_SCALE_INTERVAL_MS"],
    help: "how often the load is sampled and a decision taken (10 to 60,000)",
    default: d.GATEWAY_SCALE_INTERVAL_MS,
    schema: z.coerce.number().int().min(10).max(60_000).default(d.GATEWAY_SCALE_INTERVAL_MS),
  },
  GATEWAY_SCALE_TARGET_INFLIGHT: {
    env: ["GATEWAY_SCALE_TARGET_INFLIGHT"],
    help: "calls in flight per replica aimed at; above it, more replicas",
    doc: "calls in flight per replica aimed at; above it, more replicas. Below the connector's in-flight per replica (8), so that a saturated connector scales its target up",
    default: d.GATEWAY_SCALE_TARGET_INFLIGHT,
    schema: z.coerce.number().positive().default(d.GATEWAY_SCALE_TARGET_INFLIGHT),
  },
  GATEWAY_SCALE_LATENCY_MS: {
    env: ["GATEWAY_SCALE_LATENCY_MS"],
    help: "p99 above which busy replicas count as overloaded",
    default: d.GATEWAY_SCALE_LATENCY_MS,
    schema: z.coerce.number().int().min(1).default(d.GATEWAY_SCALE_LATENCY_MS),
  },
  GATEWAY_SCALE_DOWN_WINDOW_MS: {
    env: ["GATEWAY_SCALE_DOWN_WINDOW_MS"],
    help: "how long the load must stay low before one replica is removed",
    default: d.GATEWAY_SCALE_DOWN_WINDOW_MS,
    schema: z.coerce.number().int().min(0).default(d.GATEWAY_SCALE_DOWN_WINDOW_MS),
  },
  GATEWAY_SCALE_MIN_IDLE_CPU: {
    env: ["GATEWAY_SCALE_MIN_IDLE_CPU"],
    help: "the share of this machine's CPU (all cores) that must be idle for a scale-up; 0 turns the check off",
    default: d.GATEWAY_SCALE_MIN_IDLE_CPU,
    schema: z.coerce.number().min(0).max(1).default(d.GATEWAY_SCALE_MIN_IDLE_CPU),
  },
});

/** The autoscaler's settings from GATEWAY_SCALE_* (docs/start.md); a bad value stops the start with its name. */
export function readAutoscalerSettings(env?: NodeJS.ProcessEnv): AutoscalerSettings {
  const e = readSettings(SCALE_SETTINGS, env);
  return {
    intervalMs: e.GATEWAY_SCALE_INTERVAL_MS,
    policy: {
      targetInFlight: e.GATEWAY_SCALE_TARGET_INFLIGHT,
      latencyMs: e.GATEWAY_SCALE_LATENCY_MS,
      scaleDownWindowMs: e.GATEWAY_SCALE_DOWN_WINDOW_MS,
      minIdleCpu: e.GATEWAY_SCALE_MIN_IDLE_CPU,
    },
  };
}

/** The machine's CPU time so far (ms, all cores): idle, and in all. */
export interface CpuTimes {
  idle: number;
  total: number;
}

export interface Scalable {
  name: string;
  bounds: ScaleBounds;
  set: ReplicaSet;
}

/**
 * Samples each function's load every interval and applies lib/openfaas/scaling.ts's decision to its
 * replicas. Functions whose labels disable scaling are left alone. `onDecision` hears every
 * decision, holds included (the gateway logs and counts them).
 */
export class Autoscaler {
  readonly #memory = new Map<string, ScaleMemory>();
  #timer: NodeJS.Timeout | undefined;
  #cpu: CpuTimes;

  constructor(
    private readonly targets: readonly Scalable[],
    private readonly settings: AutoscalerSettings,
    private readonly onDecision: (target: Scalable, from: number, decision: ScaleDecision) => void,
    /** Where the machine's CPU time is read; tests pass their own. */
    private readonly readCpu: () => CpuTimes = machineCpu,
  ) {
    this.#cpu = readCpu();
  }

  start(): void {
    if (this.#timer !== undefined) return;
    for (const t of this.targets) t.set.sample(); // the first period starts now, not when the gateway did
    this.#timer = setInterval(() => this.decide(Date.now()), this.settings.intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One decision per function that scales, from its load since the previous one; the timer calls it every interval. */
  decide(now: number): void {
    const cpu = this.readCpu();
    const idleCpu = idleShare(this.#cpu, cpu);
    this.#cpu = cpu;
    for (const target of this.targets) {
      if (!target.bounds.enabled) continue;
      const from = target.set.replicas;
      const decision = decideReplicas(
        from,
        target.bounds,
        { ...target.set.sample(now), idleCpu },
        now,
        this.#memory.get(target.name) ?? { lowSince: undefined },
        this.settings.policy,
      );
      this.#memory.set(target.name, decision.memory);
      this.onDecision(target, from, decision);
      // A replica that fails to start is restarted by its FunctionProcess; the decision stands.
      if (decision.replicas !== from) target.set.scaleTo(decision.replicas).catch(() => {});
    }
  }
}

/** The machine's CPU time so far, idle and in all, over every core (ms). */
function machineCpu(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

/** The share of the machine's CPU that was idle between two readings; undefined if none passed. */
function idleShare(before: CpuTimes, after: CpuTimes): number | undefined {
  const total = after.total - before.total;
  return total > 0 ? (after.idle - before.idle) / total : undefined;
}
