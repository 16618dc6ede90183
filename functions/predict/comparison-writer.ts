import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../lib/infra/log.js";
import { backoffDelay } from "../../lib/infra/retry.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { ACTIVE_BUCKET, comparisonKey } from "../../lib/models/names.js";
import type { ShadowComparison } from "../../lib/models/schemas.js";

export interface ComparisonWriterOptions {
  url: string;
  everyMs: number;
  log: Logger;
  /** The comparison so far and its version (it changes with every batch), or undefined with no shadow. */
  current: () => { comparison: ShadowComparison; version: number } | undefined;
  /** A NATS request's longest wait. @default 5000 */
  timeoutMs?: number;
}

/** Ended comparisons kept for writing while NATS is away; beyond it the oldest are dropped (they are summaries, not data). */
const MAX_ENDED = 16;

/**
 * Writes predict's shadow comparisons to KV `fan_models_active` (key comparisonKey(site, shadow,
 * replica)) every `everyMs` when they changed, and once more on drain, so that `fanwatch model
 * compare` and the gates read every replica's. NATS being away never fails predict: the
 * connection is retried in the background, and a comparison is a running total, so the next
 * write catches up on what a failed one missed.
 */
export class ComparisonWriter extends ServiceBase {
  readonly name = "comparison writer";
  readonly #options: Required<ComparisonWriterOptions>;
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #timer: NodeJS.Timeout | undefined;
  #written = -1;
  #writing: Promise<void> | undefined;
  readonly #ended: ShadowComparison[] = [];
  #stop = false;

  constructor(options: ComparisonWriterOptions) {
    super();
    this.#options = { timeoutMs: 5_000, ...options };
  }

  /** A comparison that ended (the shadow or the active changed): written at the next flush. */
  keepEnded(comparison: ShadowComparison): void {
    if (this.#ended.length === MAX_ENDED) this.#ended.shift();
    this.#ended.push(comparison);
  }

  /** Writes what changed since the last write; one write at a time. */
  flush(): Promise<void> {
    this.#writing ??= this.#write().finally(() => (this.#writing = undefined));
    return this.#writing;
  }

  protected async onStart(): Promise<void> {
    void this.#open();
    this.#timer = setInterval(() => void this.flush(), this.#options.everyMs);
    this.#timer.unref();
  }

  protected override async onDrain(): Promise<void> {
    clearInterval(this.#timer);
    await this.#writing;
    await this.flush();
  }

  protected async onClose(): Promise<void> {
    this.#stop = true;
    clearInterval(this.#timer);
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }

  async #write(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    try {
      while (this.#ended.length > 0) {
        await put(kv, this.#ended[0]!);
        this.#ended.shift();
      }
      const now = this.#options.current();
      if (now === undefined || now.version === this.#written) return;
      await put(kv, now.comparison);
      this.#written = now.version;
    } catch (error) {
      this.#options.log.warn(
        { event: "comparison_write_failed", err: (error as Error).message },
        "cannot write the shadow comparison to NATS; the next write catches up",
      );
    }
  }

  async #open(): Promise<void> {
    const { url, log, timeoutMs } = this.#options;
    for (let attempt = 1; !this.#stop; attempt++) {
      try {
        // Not waitOnFirstConnect: that attempt cannot be called off, and would keep trying (and
        // connect) after a close. Here one attempt lasts at most timeoutMs and this loop retries.
        this.#nc ??= await connect({
          servers: url,
          name: `fanwatch-predict-${process.pid}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1_000,
          timeout: timeoutMs,
        });
        // Closed while connecting: onClose found no connection to let go of, so it is let go here.
        if (this.#stop) return void (await this.#nc.close().catch(() => {}));
        // Opened, never created: the registry makes it (the first score replica, or a model
        // command), with the cluster's copies. Until it exists a write fails, is logged, and the
        // next one carries the running totals.
        this.#kv = await new Kvm(jetstream(this.#nc, { timeout: timeoutMs })).open(ACTIVE_BUCKET);
        log.info({ event: "comparisons_ready", nats: redactUrl(url) }, "shadow comparisons go to NATS");
        return;
      } catch (error) {
        if (this.#stop) return;
        const delay = backoffDelay({ baseMs: 500, capMs: 10_000 }, Math.min(attempt, 10));
        // Said once: while NATS stays away every attempt fails alike.
        if (attempt === 1)
          log.warn(
            { event: "comparisons_unavailable", nats: redactUrl(url), err: (error as Error).message },
            "cannot open the model registry's bucket yet; shadow comparisons are kept until it can",
          );
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }
}

async function put(kv: KV, comparison: ShadowComparison): Promise<void> {
  await kv.put(comparisonKey(comparison.site, comparison.shadow, comparison.replica), JSON.stringify(comparison));
}
