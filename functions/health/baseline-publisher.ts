import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Counter } from "prom-client";
import type { PublishedBaseline } from "../../lib/domain/baseline.js";
import type { Logger } from "../../lib/infra/log.js";
import { encodeKey } from "../../lib/nats/keys.js";
import { publishedBaseline, type BaselinePolicy, type BaselineTrack } from "./baseline.js";
import type { FanHealth } from "./evaluator.js";

/** The bucket's name (architecture: per-fan baselines). */
export const BASELINES_BUCKET = "fan_baselines";

/** A baseline that keeps moving is published again after this much reading time. */
const REPUBLISH_MS = 3_600_000;
/** After a failed write, nothing is tried for this long (wall clock): one attempt and one log line, not one per fan and batch. */
const RETRY_AFTER_MS = 30_000;

export interface BaselinePublisherOptions {
  /** Health's NATS connection while it is up. */
  connection: () => NatsConnection | undefined;
  replicas: number;
  policy: BaselinePolicy;
  log: Logger;
  writes: Counter<"result">;
}

/**
 * Publishes each fan's baseline in the KV bucket `fan_baselines` (docs/health.md, "Baselines"),
 * for people and programs that want a fan's own levels: when learning starts, when it is ready,
 * when it freezes or thaws with an episode, and every hour of reading time while it moves. The
 * working copy stays in the fan's health entry (tracker.baseline), written under the fan's
 * compare-and-set with its state; this is a copy, so a write that fails is logged, counted and
 * left to the next occasion rather than failing the evaluation. One write at a time per fan:
 * a newer baseline replaces one still waiting.
 */
export class BaselinePublisher {
  readonly #options: BaselinePublisherOptions;
  /** Reading time of the baseline last published per fan (this process's view). */
  readonly #published = new Map<string, number>();
  readonly #waiting = new Map<string, PublishedBaseline>();
  #kv: Promise<KV> | undefined;
  #flushing = false;
  #closed = false;
  /** While writes fail: when the next may be tried (Date.now), and whether the outage was logged. */
  #retryAt = 0;
  #failing = false;

  constructor(options: BaselinePublisherOptions) {
    this.#options = options;
  }

  /** A fan's health was written: publishes its baseline when it changed in a way worth telling. */
  written(deviceID: string, before: FanHealth | undefined, after: FanHealth): void {
    const next = after.tracker.baseline;
    if (next === undefined || this.#closed || Date.now() < this.#retryAt) return;
    const frozen = after.tracker.state === "warning" || after.tracker.state === "alarm";
    if (!worthPublishing(before, after, this.#published.get(deviceID))) return;
    this.#published.set(deviceID, next.updatedAt);
    this.#waiting.set(deviceID, publishedBaseline(deviceID, next, frozen, this.#options.policy));
    void this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#waiting.size > 0 && !this.#closed) {
        const [deviceID, baseline] = this.#waiting.entries().next().value as [string, PublishedBaseline];
        this.#waiting.delete(deviceID);
        try {
          const kv = await this.#bucket();
          await kv.put(encodeKey(deviceID), JSON.stringify(baseline));
          this.#options.writes.inc({ result: "ok" });
          if (this.#failing)
            this.#options.log.info(
              { event: "baseline_publish_resumed" },
              `baselines are published in ${BASELINES_BUCKET} again`,
            );
          this.#failing = false;
        } catch (error) {
          this.#kv = undefined;
          // Forgotten as published: the fan's next write after the pause tries again.
          this.#published.delete(deviceID);
          for (const id of this.#waiting.keys()) this.#published.delete(id);
          this.#waiting.clear();
          this.#retryAt = Date.now() + RETRY_AFTER_MS;
          this.#options.writes.inc({ result: "failed" });
          if (!this.#failing)
            this.#options.log.warn(
              { event: "baseline_publish_failed", deviceID, err: (error as Error).message },
              `could not publish fans' baselines in ${BASELINES_BUCKET}; trying again in ${RETRY_AFTER_MS / 1000} s, at each fan's next change`,
            );
          this.#failing = true;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  #bucket(): Promise<KV> {
    const nc = this.#options.connection();
    if (nc === undefined) return Promise.reject(new Error("NATS is not connected"));
    this.#kv ??= new Kvm(jetstream(nc)).create(BASELINES_BUCKET, { history: 1, replicas: this.#options.replicas });
    return this.#kv;
  }

  close(): void {
    this.#closed = true;
    this.#waiting.clear();
  }
}

/** Learning began or began again, became ready, froze or thawed, or an hour of readings moved it. */
export function worthPublishing(before: FanHealth | undefined, after: FanHealth, lastPublished?: number): boolean {
  const next = after.tracker.baseline as BaselineTrack;
  const prev = before?.tracker.baseline;
  if (prev === undefined || lastPublished === undefined) return true;
  if (prev.since !== next.since || prev.readyAt !== next.readyAt) return true;
  if (isFrozen(before) !== isFrozen(after)) return true;
  return next.updatedAt - lastPublished >= REPUBLISH_MS;
}

function isFrozen(health: FanHealth | undefined): boolean {
  const state = health?.tracker.state;
  return state === "warning" || state === "alarm";
}
