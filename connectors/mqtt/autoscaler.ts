import type { Logger } from "../../lib/infra/log.js";
import { systemClock, type Clock } from "../../lib/infra/retry.js";
import {
  decideReplicas,
  readScaleLabels,
  type ScaleBounds,
  type ScaleMemory,
  type ScalePolicy,
} from "../../lib/openfaas/scaling.js";
import type { AutoscaleConfig } from "./config.js";
import type { FunctionDirectory } from "./directory.js";
import type { FunctionLoad } from "./dispatcher.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import type { ConnectorMetrics } from "./metrics.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";

/** Demand is sampled this often and averaged over each decision's interval. */
const SAMPLE_MS = 250;

interface Tracked {
  memory: ScaleMemory;
  demandSum: number;
  samples: number;
  /** The replicas last asked for, until a read of /system/functions sent after the request shows the outcome. */
  requested: { replicas: number; at: number } | undefined;
  /** The replicas the gateway reported at the previous decision. */
  seen: number | undefined;
  /** The replicas this connector last asked for. */
  lastAsked: number | undefined;
}

export interface AutoscalerOptions {
  config: AutoscaleConfig;
  gatewayUrl: string;
  basicAuth: { user: string; password: string } | undefined;
  batchSize: number;
  timeoutMs: number;
  /** Each function's replicas and labels, as the gateway last listed them. */
  directory: Pick<FunctionDirectory, "statuses" | "refreshedAt">;
  /** What the dispatcher has for each function right now. */
  load: () => Map<string, FunctionLoad>;
  metrics: ConnectorMetrics;
  log: Logger;
  /** The time of decisions (the scale-down window). @default systemClock */
  clock?: Pick<Clock, "now">;
}

/**
 * Opt-in, for OpenFaaS CE: asks the gateway (POST /system/scale-function/<name>) for the replicas
 * of each function the connector invokes, from what only the connector sees: the batches in flight
 * and the messages waiting for the function. It applies lib/openfaas/scaling.ts's policy within the
 * function's labels: up by ceil(max × factor / 100), down one replica after `windowMs` of low load.
 * CE's scale API clamps to 1..5 without reading the labels, so the bounds are kept here.
 */
export class ConnectorAutoscaler {
  readonly #tracked = new Map<string, Tracked>();
  readonly #gateway: HttpClient;
  readonly #policy: ScalePolicy;
  #sampler: NodeJS.Timeout | undefined;
  #decider: NodeJS.Timeout | undefined;
  #lastFinished = new Map<string, number>();
  readonly #clock: Pick<Clock, "now">;
  #lastDecision: number;
  #deciding = false;
  readonly #badLabels = new Map<string, string>();

  constructor(private readonly options: AutoscalerOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#lastDecision = this.#clock.now();
    this.#gateway = new HttpClient({ baseUrl: options.gatewayUrl, maxSockets: 1 });
    // The connector caps what is in flight, so a slow function shows as work waiting, not as
    // latency: its own timeout is the only latency that says "overloaded".
    this.#policy = {
      targetInFlight: options.config.targetInFlight,
      latencyMs: options.timeoutMs,
      scaleDownWindowMs: options.config.windowMs,
    };
  }

  start(): void {
    this.#sampler = setInterval(() => this.sample(), Math.min(SAMPLE_MS, this.options.config.intervalMs));
    this.#decider = setInterval(() => {
      // A slow gateway must not stack decisions up: the next interval takes the next one.
      if (this.#deciding) return;
      this.#deciding = true;
      void this.decide().finally(() => (this.#deciding = false));
    }, this.options.config.intervalMs);
    this.#sampler.unref();
    this.#decider.unref();
  }

  stop(): void {
    clearInterval(this.#sampler);
    clearInterval(this.#decider);
    this.#gateway.close();
  }

  /** Adds the work each function has now to the average the next decision takes; the timer calls it every 250 ms. */
  sample(): void {
    for (const [name, load] of this.options.load()) {
      const tracked = this.#track(name);
      tracked.demandSum += load.batches + Math.ceil(load.queued / this.options.batchSize);
      tracked.samples++;
    }
  }

  #track(name: string): Tracked {
    let tracked = this.#tracked.get(name);
    if (tracked === undefined)
      this.#tracked.set(
        name,
        (tracked = {
          memory: { lowSince: undefined },
          demandSum: 0,
          samples: 0,
          requested: undefined,
          seen: undefined,
          lastAsked: undefined,
        }),
      );
    return tracked;
  }

  /** One decision per function the connector invokes (never throws: a failed request is logged). */
  async decide(): Promise<void> {
    const now = this.#clock.now();
    const seconds = Math.max(0.001, (now - this.#lastDecision) / 1000);
    this.#lastDecision = now;
    const finished = new Map([...this.options.load()].map(([name, load]) => [name, load.completed]));
    for (const [name, tracked] of this.#tracked) {
      const status = this.options.directory.statuses.get(name);
      const done = (finished.get(name) ?? 0) - (this.#lastFinished.get(name) ?? 0);
      const demand = tracked.samples === 0 ? 0 : tracked.demandSum / tracked.samples;
      tracked.demandSum = 0;
      tracked.samples = 0;
      if (status === undefined) continue;
      const bounds = this.#bounds(name, status.labels);
      if (bounds === undefined) continue;
      if (tracked.requested !== undefined && this.options.directory.refreshedAt > tracked.requested.at)
        tracked.requested = undefined;
      // Scaled by someone else (another connector replica, a person, CE): the window starts again,
      // so that two connectors sharing the load do not each take a replica away.
      if (
        tracked.seen !== undefined &&
        status.replicas !== tracked.seen &&
        tracked.requested === undefined &&
        status.replicas !== tracked.lastAsked
      )
        tracked.memory = { lowSince: undefined };
      tracked.seen = status.replicas;
      const current = tracked.requested?.replicas ?? status.replicas;
      const decision = decideReplicas(
        current,
        bounds,
        { inFlight: demand, rate: done / seconds, p99Ms: undefined },
        now,
        tracked.memory,
        this.#policy,
      );
      tracked.memory = decision.memory;
      if (decision.direction === "hold") continue;
      await this.#scale(name, current, decision.replicas, decision.direction, decision.reason, tracked);
    }
    this.#lastFinished = finished;
  }

  #bounds(name: string, labels: Record<string, string>): ScaleBounds | undefined {
    try {
      const bounds = readScaleLabels(labels);
      this.#badLabels.delete(name);
      return bounds;
    } catch (error) {
      const reason = (error as Error).message;
      if (this.#badLabels.get(name) !== reason)
        this.options.log.warn({ event: "autoscale_skipped", function: name, reason }, `not scaling ${name}: ${reason}`);
      this.#badLabels.set(name, reason);
      return undefined;
    }
  }

  async #scale(
    name: string,
    from: number,
    replicas: number,
    direction: "up" | "down",
    reason: string,
    tracked: Tracked,
  ): Promise<void> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.basicAuth !== undefined) headers.authorization = basicAuthHeader(this.options.basicAuth);
    const at = this.#clock.now();
    let code = "0";
    try {
      const answer = await this.#gateway.request({
        method: "POST",
        path: `/system/scale-function/${encodeURIComponent(name)}`,
        headers,
        body: JSON.stringify({ serviceName: name, replicas }),
        timeoutMs: 5_000,
      });
      code = String(answer.status);
      if (answer.status !== 200 && answer.status !== 202)
        throw new Error(`the gateway answered ${answer.status}: ${answer.body.slice(0, 300)}`);
      tracked.requested = { replicas, at };
      tracked.lastAsked = replicas;
      this.options.log.info(
        { event: "scale_requested", function: name, from, replicas, direction, reason },
        `asked the gateway for ${replicas} replicas of ${name} (${reason})`,
      );
    } catch (error) {
      this.options.log.warn(
        { event: "scale_failed", function: name, from, replicas, direction, reason, err: (error as Error).message },
        `could not scale ${name} to ${replicas}: ${(error as Error).message}`,
      );
    } finally {
      this.options.metrics.scaleRequests.inc({ function: name, direction, code });
    }
  }
}
