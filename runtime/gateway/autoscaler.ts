import { cpus } from "node:os";
import { z } from "zod";
import { parseEnv } from "../../lib/infra/config.js";
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

const ScaleEnv = z.object({
  GATEWAY_SCALE_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
  GATEWAY_SCALE_DOWN_WINDOW_MS: z.coerce.number().int().min(0).default(60_000),
  GATEWAY_SCALE_TARGET_INFLIGHT: z.coerce.number().positive().default(4),
  GATEWAY_SCALE_LATENCY_MS: z.coerce.number().int().min(1).default(1_000),
  // The replicas share this machine's cores: below a fifth idle, a replica has no core to gain.
  GATEWAY_SCALE_MIN_IDLE_CPU: z.coerce.number().min(0).max(1).default(0.2),
});

/** The autoscaler's settings from GATEWAY_SCALE_* (docs/start.md); a bad value stops the start with its name. */
export function readAutoscalerSettings(env: NodeJS.ProcessEnv): AutoscalerSettings {
  const e = parseEnv(ScaleEnv, env);
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
