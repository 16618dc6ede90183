import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../lib/infra/log.js";
import { systemClock } from "../lib/infra/retry.js";
import { ServiceBase } from "../lib/infra/service.js";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../lib/nats/health-events.js";
import { attemptDelivery, type AttemptOptions } from "./attempts.js";
import { bury, type BuryOptions } from "./bury.js";
import { oldestUnacknowledged } from "./consumers.js";
import { recordSent } from "./delivery-log.js";
import { Feed } from "./feed.js";
import { sourceOf, storedAt, tell } from "./js-msg.js";
import type { NotifierMetrics } from "./metrics.js";
import { parseRedrive, parseTransition } from "./parse.js";
import type { StreamKeeper } from "./stream-keeper.js";
import { NOTIFIER_STREAM, queueConsumerName, redriveConsumerName, redriveSubject } from "./streams.js";
import { fanLink, type DeliveryTarget } from "./target.js";

/** How long JetStream waits for an acknowledgement, or a sign of work, before it redelivers. */
export const DEFAULT_ACK_WAIT_MS = 15_000;

/** How often the pending count and the oldest pending age are read from the consumers. */
const DEFAULT_REFRESH_MS = 5_000;

export interface DeliveryQueueOptions {
  target: DeliveryTarget;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Makes a stream again that was deleted by hand. */
  streams: StreamKeeper;
  site: string;
  /** PAGE_URL, without a trailing slash. */
  pageUrl: string;
  /** NOTIFY_MAX_AGE: by the message's stream time. */
  maxAgeMs: number;
  /** NOTIFY_RETRY_MAX: the longest wait between two attempts. */
  retryMaxMs: number;
  /** @default DEFAULT_ACK_WAIT_MS */
  ackWaitMs?: number;
  /** @default DEFAULT_REFRESH_MS */
  refreshMs?: number;
  metrics: NotifierMetrics;
  log: Logger;
  /** For the back-off's jitter; tests pass their own. */
  random?: () => number;
}

/**
 * One target's durable queue. It reads health's stream through the durable pull consumer
 * `notify-<site>-<target>` (created with deliver policy "new": a first start sends no history) and
 * the redrives through `redrive-<site>-<target>` on the notifier's stream, one message at a time
 * each (max_ack_pending 1: the target gets transitions in stream order, and notifier replicas share
 * the consumer), delivering one at a time to the target (attempts.ts). A message is acknowledged
 * once the target took it; a failure that may pass is retried while `working()` keeps JetStream
 * from redelivering it; a refusal, or a message older than NOTIFY_MAX_AGE by its stream time,
 * becomes a dead letter in the notifier's stream (bury.ts) and is then acknowledged. A redriven
 * message is deleted once handled, so that nothing sends it twice. Killed mid-send, JetStream
 * redelivers after the ack wait: the same transition id again, which receivers drop
 * (X-Fanwatch-Delivery).
 *
 * drain() stops pulling and lets the delivery in flight end (its one attempt, bounded by the
 * target's timeout); a delivery waiting to retry is handed back at once (nak), for a replica or the
 * next start.
 */
export class DeliveryQueue extends ServiceBase {
  readonly name: string;
  readonly #o: DeliveryQueueOptions;
  readonly #ackWaitMs: number;
  readonly #feeds: Feed[];
  readonly #attempts: AttemptOptions;
  readonly #burial: BuryOptions;
  /** Ends waits (back-off, retries of a dead-letter write) when the queue stops. */
  readonly #stop = new AbortController();
  readonly #sleep = (ms: number): Promise<void> => systemClock.sleep(ms, this.#stop.signal);
  #pulling = true;
  /** Deliveries from the two feeds take turns: a target gets one notification at a time. */
  #turn: Promise<unknown> = Promise.resolve();
  /** The stream time of the message being delivered. */
  #inFlightSince: number | undefined;
  #refresher: NodeJS.Timeout | undefined;

  constructor(options: DeliveryQueueOptions) {
    super();
    this.#o = options;
    this.#ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    const { target, site, js, jsm, streams, log, metrics } = options;
    this.name = `queue ${target.id}`;
    const common = { targetId: target.id, js, jsm, streams, log };
    this.#feeds = [
      new Feed({
        ...common,
        kind: "events",
        parse: parseTransition,
        spec: {
          stream: HEALTH_EVENTS_STREAM,
          name: queueConsumerName(site, target.id),
          filter: siteEventSubjects(site),
          deliver: "new",
          ackWaitMs: this.#ackWaitMs,
        },
      }),
      new Feed({
        ...common,
        kind: "redrive",
        parse: parseRedrive,
        spec: {
          stream: NOTIFIER_STREAM,
          name: redriveConsumerName(site, target.id),
          filter: redriveSubject(site, target.id),
          deliver: "all",
          ackWaitMs: this.#ackWaitMs,
        },
      }),
    ];
    const sleep = this.#sleep;
    const stopping = () => this.stopping;
    this.#attempts = {
      target,
      maxAgeMs: options.maxAgeMs,
      retryMaxMs: options.retryMaxMs,
      metrics,
      log,
      inTurn: (send) => this.#inTurn(send),
      sleep,
      stopping,
      ...(options.random === undefined ? {} : { random: options.random }),
    };
    this.#burial = { js, site, targetId: target.id, streams, metrics, log, sleep, stopping };
  }

  get target(): DeliveryTarget {
    return this.#o.target;
  }

  /** Both consumers exist and the last pull of each worked. */
  get running(): boolean {
    return !this.stopping && this.#feeds.every((f) => f.running);
  }

  /** Resolves once both pulls have ended (after drain or close), the delivery in flight with them. */
  get idle(): Promise<void> {
    return Promise.all(this.#feeds.map((f) => f.loop)).then(() => {});
  }

  /** Starts pulling; resolves at once (the consumers are made, and NATS waited for, as the pulls go). */
  protected async onStart(): Promise<void> {
    for (const feed of this.#feeds)
      feed.start(
        () => this.#pulling,
        (msg) => this.#handle(feed, msg),
        this.#sleep,
      );
    const refresh = () => void this.#refresh().finally(() => this.#scheduleRefresh(refresh));
    refresh();
  }

  protected override async onDrain(): Promise<void> {
    this.#stopPulling();
    await this.idle;
  }

  /** Stops at once: a delivery in flight is handed back (nak) if it has not ended when its target closes. */
  protected async onClose(): Promise<void> {
    this.#stopPulling();
  }

  #stopPulling(): void {
    this.#pulling = false;
    this.#stop.abort(new Error("the notifier is stopping"));
    clearTimeout(this.#refresher);
    for (const feed of this.#feeds) feed.stop();
  }

  #scheduleRefresh(refresh: () => void): void {
    if (this.#pulling) this.#refresher = setTimeout(refresh, this.#o.refreshMs ?? DEFAULT_REFRESH_MS);
  }

  async #handle(feed: Feed, msg: JsMsg): Promise<void> {
    const since = storedAt(msg);
    // Well within the ack wait, so that a delivery retried for hours is never redelivered meanwhile.
    const beat = setInterval(() => tell(msg, "working"), Math.max(500, Math.floor(this.#ackWaitMs / 3)));
    this.#inFlightSince = since;
    let handled: boolean;
    try {
      handled = await this.#deliverOrBury(feed, msg, since);
    } finally {
      clearInterval(beat);
      this.#inFlightSince = undefined;
    }
    if (handled && feed.kind === "redrive") await this.#forget(msg);
  }

  /** Delivers the message's transition or stores it as a dead letter; false when it was handed back. */
  async #deliverOrBury(feed: Feed, msg: JsMsg, since: number): Promise<boolean> {
    const { target, log, pageUrl } = this.#o;
    const source = sourceOf(msg);
    const parsed = feed.parse(msg.data);
    if (!parsed.ok) {
      log.error(
        { event: "notification_unreadable", target: target.id, source, err: parsed.error },
        `a message of ${source.stream} is not a transition: ${parsed.error}; kept as a dead letter`,
      );
      const now = new Date().toISOString();
      return bury(
        this.#burial,
        {
          target: target.id,
          transition: null,
          payload: parsed.payload,
          attempts: 0,
          lastError: `not a transition: ${parsed.error}`,
          firstAttempt: now,
          deadAt: now,
          source,
        },
        msg,
      );
    }
    const { transition } = parsed;
    const outcome = await attemptDelivery(
      this.#attempts,
      { transition, link: fanLink(pageUrl, transition.deviceID) },
      since,
    );
    switch (outcome.kind) {
      case "delivered":
        tell(msg, "ack");
        await recordSent(this.#burial, transition, outcome.attempts, feed.kind === "redrive");
        return true;
      case "skipped":
        tell(msg, "ack");
        return true;
      case "dead":
        return bury(
          this.#burial,
          {
            target: target.id,
            transition,
            attempts: outcome.attempts,
            lastError: outcome.lastError,
            firstAttempt: new Date(outcome.firstAttempt).toISOString(),
            deadAt: new Date().toISOString(),
            source,
          },
          msg,
        );
      case "abandoned":
        // Stopping: handed back now, so that a replica (or this notifier's next start) takes it at once.
        tell(msg, "nak");
        return false;
    }
  }

  /**
   * Deletes a redriven message once it was delivered, skipped or buried again (after its ack): the
   * redrive consumer starts at "all", and one made anew would send everything still there again.
   * One that cannot be deleted now (NATS away) stays; its consumer has it acknowledged.
   */
  async #forget(msg: JsMsg): Promise<void> {
    try {
      await this.#o.jsm.streams.deleteMessage(msg.info.stream, msg.seq, false);
    } catch (error) {
      this.#o.log.warn(
        { event: "redrive_not_deleted", target: this.#o.target.id, seq: msg.seq, err: (error as Error).message },
        "a redriven notification was handled, but could not be deleted from the notifier's stream",
      );
    }
  }

  /** Runs `send` after the delivery before it (of either feed) has ended. */
  #inTurn<T>(send: () => Promise<T>): Promise<T> {
    const mine = this.#turn.then(send, send);
    this.#turn = mine.catch(() => {});
    return mine;
  }

  /** The pending count and the oldest pending age, from the consumers (kept as they were while NATS is away). */
  async #refresh(): Promise<void> {
    const { jsm, metrics, target } = this.#o;
    let pending = 0;
    let oldest = this.#inFlightSince;
    try {
      for (const { spec } of this.#feeds) {
        const info = await jsm.consumers.info(spec.stream, spec.name);
        const waiting = info.num_pending + info.num_ack_pending;
        pending += waiting;
        if (waiting === 0) continue;
        const first = await oldestUnacknowledged(jsm, info, spec.filter);
        if (first !== undefined) oldest = Math.min(oldest ?? Infinity, first);
      }
    } catch {
      return; // NATS away, or a consumer not made yet
    }
    metrics.pending.set({ target: target.id }, pending);
    metrics.oldestPending.set(
      { target: target.id },
      oldest === undefined || pending === 0 ? 0 : Math.max(0, Date.now() - oldest) / 1000,
    );
  }
}
