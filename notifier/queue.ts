import {
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { z } from "zod";
import { AlarmTransitionSchema, type AlarmTransition } from "../lib/domain/health.js";
import { parseUntrustedJson } from "../lib/infra/json.js";
import type { Logger } from "../lib/infra/log.js";
import { backoffDelay, systemClock } from "../lib/infra/retry.js";
import { ServiceBase } from "../lib/infra/service.js";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../lib/nats/health-events.js";
import type { NotifierMetrics } from "./metrics.js";
import { DeadLetterSchema, MAX_PAYLOAD_CHARS, type DeadLetter, type SentRecord, type Source } from "./records.js";
import {
  deadLetterSubject,
  ensureQueueConsumer,
  NOTIFIER_STREAM,
  oldestUnacknowledged,
  queueConsumerName,
  redriveConsumerName,
  redriveSubject,
  sentSubject,
  type QueueConsumerSpec,
} from "./streams.js";
import { DeliveryError, type DeliveryTarget, type Notification } from "./target.js";

/** How long JetStream waits for an acknowledgement, or a sign of work, before it redelivers. */
export const DEFAULT_ACK_WAIT_MS = 15_000;

/** One pull's wait for a message: how soon a drain, or a lost connection, is noticed. */
const PULL_EXPIRES_MS = 5_000;

/** How often the pending count and the oldest pending age are read from the consumers. */
const DEFAULT_REFRESH_MS = 5_000;

export interface DeliveryQueueOptions {
  target: DeliveryTarget;
  js: JetStreamClient;
  jsm: JetStreamManager;
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

/** The link to the fan on the page, in every notification. */
export function fanLink(pageUrl: string, deviceID: string): string {
  return `${pageUrl}/?fan=${encodeURIComponent(deviceID)}`;
}

type Parsed = { ok: true; transition: AlarmTransition } | { ok: false; error: string; payload: string };

/** Where a queue reads from: health's stream, or what `fanwatch notifications redrive` put back. */
interface Feed {
  readonly kind: "events" | "redrive";
  readonly spec: QueueConsumerSpec;
  readonly parse: (data: Uint8Array) => Parsed;
  consumer: Consumer | undefined;
  batch: ConsumerMessages | undefined;
  /** The last pull worked: the consumer exists and NATS answers. */
  running: boolean;
  /** Opened once already: made anew later, it had gone missing. */
  opened: boolean;
  loop: Promise<void> | undefined;
}

type Outcome =
  | { kind: "delivered"; attempts: number }
  | { kind: "skipped" }
  | { kind: "dead"; attempts: number; lastError: string; firstAttempt: number }
  | { kind: "abandoned" };

/**
 * One target's durable queue. It reads health's stream through the durable pull consumer
 * `notify-<target>` (created with deliver policy "new": a first start sends no history) and the
 * redrives through `redrive-<target>` on the notifier's stream, one message at a time each
 * (max_ack_pending 1: the target gets transitions in stream order, and notifier replicas share the
 * consumer), delivering one at a time to the target. A message is acknowledged once the target
 * took it; a failure that may pass is retried here with back-off (1 s doubling to NOTIFY_RETRY_MAX,
 * jittered) while `working()` keeps JetStream from redelivering it; a refusal, or a message older
 * than NOTIFY_MAX_AGE by its stream time, becomes a dead letter in the notifier's stream and is
 * then acknowledged. Killed mid-send, JetStream redelivers after the ack wait: the same transition
 * id again, which receivers drop (X-Fanwatch-Delivery).
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
  /** Ends waits (back-off, retries of a dead-letter write) when the queue stops. */
  readonly #stop = new AbortController();
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
    const { target, site } = options;
    this.name = `queue ${target.id}`;
    const feed = (kind: Feed["kind"], spec: QueueConsumerSpec, parse: Feed["parse"]): Feed => ({
      kind,
      spec,
      parse,
      consumer: undefined,
      batch: undefined,
      running: false,
      opened: false,
      loop: undefined,
    });
    this.#feeds = [
      feed(
        "events",
        {
          stream: HEALTH_EVENTS_STREAM,
          name: queueConsumerName(target.id),
          filter: siteEventSubjects(site),
          deliver: "new",
          ackWaitMs: this.#ackWaitMs,
        },
        parseTransition,
      ),
      feed(
        "redrive",
        {
          stream: NOTIFIER_STREAM,
          name: redriveConsumerName(target.id),
          filter: redriveSubject(site, target.id),
          deliver: "all",
          ackWaitMs: this.#ackWaitMs,
        },
        parseRedrive,
      ),
    ];
  }

  get target(): DeliveryTarget {
    return this.#o.target;
  }

  /** Both consumers exist and the last pull of each worked. */
  get running(): boolean {
    return !this.stopping && this.#feeds.every((f) => f.running);
  }

  /** Starts pulling; resolves at once (the consumers are made, and NATS waited for, as the pulls go). */
  protected async onStart(): Promise<void> {
    for (const feed of this.#feeds) feed.loop = this.#pull(feed);
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
    for (const feed of this.#feeds) feed.batch?.stop();
  }

  #scheduleRefresh(refresh: () => void): void {
    if (this.#pulling) this.#refresher = setTimeout(refresh, this.#o.refreshMs ?? DEFAULT_REFRESH_MS);
  }

  async #pull(feed: Feed): Promise<void> {
    const { log, target } = this.#o;
    let failures = 0;
    while (this.#pulling) {
      let msg: JsMsg | undefined;
      try {
        if (feed.consumer === undefined) {
          feed.consumer = await this.#open(feed);
          feed.running = true; // NATS answered, and the consumer is there
        }
        const batch = await feed.consumer.fetch({ max_messages: 1, expires: PULL_EXPIRES_MS });
        feed.batch = batch;
        if (!this.#pulling) batch.stop();
        for await (const m of batch) {
          msg = m;
          break;
        }
        feed.running = true;
        if (failures > 0)
          log.info(
            { event: "queue_resumed", target: target.id, consumer: feed.spec.name },
            `reading ${feed.spec.stream} for ${target.id} again`,
          );
        failures = 0;
      } catch (error) {
        feed.running = false;
        if (!this.#pulling) break;
        // Opened again on the next pull: that makes it anew if it went missing.
        feed.consumer = undefined;
        failures++;
        const delay = backoffDelay({ baseMs: 500, capMs: 10_000 }, Math.min(failures, 10));
        const line = {
          event: "queue_unavailable",
          target: target.id,
          consumer: feed.spec.name,
          err: (error as Error).message,
          retryInMs: Math.round(delay),
        };
        // Once per outage at warn: the connection's own lines say when NATS is back.
        if (failures === 1) log.warn(line, `cannot read ${feed.spec.stream} for ${target.id}; retrying`);
        else log.debug(line, `still cannot read ${feed.spec.stream} for ${target.id}`);
        await this.#sleep(delay).catch(() => {});
        continue;
      } finally {
        feed.batch = undefined;
      }
      if (msg !== undefined)
        await this.#handle(feed, msg).catch((error: unknown) => {
          // A bug: said, and the message left unacknowledged (JetStream redelivers it); the queue goes on.
          log.error({ event: "delivery_crashed", target: target.id, err: error }, "handling a message failed");
        });
    }
  }

  /** Resolves once both pulls have ended (after drain or close), the delivery in flight with them. */
  get idle(): Promise<void> {
    return Promise.all(this.#feeds.flatMap((f) => (f.loop === undefined ? [] : [f.loop]))).then(() => {});
  }

  async #open(feed: Feed): Promise<Consumer> {
    const { jsm, js, log, target } = this.#o;
    const { created } = await ensureQueueConsumer(jsm, feed.spec);
    const line = { event: "consumer_created", target: target.id, stream: feed.spec.stream, consumer: feed.spec.name };
    if (created && feed.opened && feed.kind === "events")
      log.warn(
        line,
        `consumer ${feed.spec.name} had gone missing and was made anew: transitions meanwhile are not sent`,
      );
    else if (created)
      log.info(
        line,
        feed.kind === "events"
          ? `${target.id} gets transitions from now on (consumer ${feed.spec.name} created)`
          : `consumer ${feed.spec.name} created for redriven notifications`,
      );
    feed.opened = true;
    return js.consumers.get(feed.spec.stream, feed.spec.name);
  }

  async #handle(feed: Feed, msg: JsMsg): Promise<void> {
    const storedAt = Number(msg.timestampNanos / 1_000_000n);
    const source: Source = {
      stream: msg.info.stream,
      seq: msg.seq,
      subject: msg.subject,
      storedAt: new Date(storedAt).toISOString(),
    };
    // Well within the ack wait, so that a delivery retried for hours is never redelivered meanwhile.
    const beat = setInterval(() => tell(msg, "working"), Math.max(500, Math.floor(this.#ackWaitMs / 3)));
    this.#inFlightSince = storedAt;
    try {
      const parsed = feed.parse(msg.data);
      if (!parsed.ok) {
        this.#o.log.error(
          { event: "notification_unreadable", target: this.#o.target.id, source, err: parsed.error },
          `a message of ${source.stream} is not a transition: ${parsed.error}; kept as a dead letter`,
        );
        const now = new Date().toISOString();
        const letter: DeadLetter = {
          target: this.#o.target.id,
          transition: null,
          payload: parsed.payload,
          attempts: 0,
          lastError: `not a transition: ${parsed.error}`,
          firstAttempt: now,
          deadAt: now,
          source,
        };
        await this.#bury(letter, msg);
        return;
      }
      const { transition } = parsed;
      const outcome = await this.#deliver(transition, storedAt);
      switch (outcome.kind) {
        case "delivered":
          tell(msg, "ack");
          await this.#record(transition, outcome.attempts, feed.kind === "redrive");
          return;
        case "skipped":
          tell(msg, "ack");
          return;
        case "dead":
          await this.#bury(
            {
              target: this.#o.target.id,
              transition,
              attempts: outcome.attempts,
              lastError: outcome.lastError,
              firstAttempt: new Date(outcome.firstAttempt).toISOString(),
              deadAt: new Date().toISOString(),
              source,
            },
            msg,
          );
          return;
        case "abandoned":
          // Stopping: handed back now, so that a replica (or this notifier's next start) takes it at once.
          tell(msg, "nak");
          return;
      }
    } finally {
      clearInterval(beat);
      this.#inFlightSince = undefined;
    }
  }

  /** Attempts until the target takes it, refuses it, it passes NOTIFY_MAX_AGE, or the queue stops. */
  async #deliver(transition: AlarmTransition, storedAt: number): Promise<Outcome> {
    const { target, metrics, log, maxAgeMs, retryMaxMs, pageUrl } = this.#o;
    const notification: Notification = { transition, link: fanLink(pageUrl, transition.deviceID) };
    const about = {
      target: target.id,
      id: transition.id,
      deviceID: transition.deviceID,
      healthEvent: transition.event,
    };
    const firstAttempt = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#inTurn(() => target.deliver(notification));
        if (result === "skipped") {
          metrics.skipped.inc({ target: target.id });
          log.debug(
            { event: "notification_skipped", ...about, muted: transition.muted },
            `not sent to ${target.id}: muted`,
          );
          return { kind: "skipped" };
        }
        metrics.sent.inc({ target: target.id });
        const since = Date.parse(transition.at);
        metrics.latency.observe(
          { target: target.id },
          Math.max(0, Date.now() - (Number.isFinite(since) ? since : storedAt)) / 1000,
        );
        log.info(
          { event: "notification_sent", ...about, attempts: attempt },
          `${transition.event} of fan ${transition.deviceID} sent to ${target.id}`,
        );
        return { kind: "delivered", attempts: attempt };
      } catch (error) {
        const failure = asDeliveryError(error);
        metrics.failed.inc({ target: target.id, reason: failure.reason });
        const age = Date.now() - storedAt;
        if (!failure.retryable || age >= maxAgeMs)
          return { kind: "dead", attempts: attempt, lastError: failure.message, firstAttempt };
        if (this.stopping) return { kind: "abandoned" };
        const delay = Math.round(
          Math.min(
            backoffDelay({ baseMs: 1_000, capMs: retryMaxMs }, attempt, this.#o.random),
            retryMaxMs,
            maxAgeMs - age,
          ),
        );
        log.warn(
          {
            event: "notification_failed",
            ...about,
            attempt,
            reason: failure.reason,
            err: failure.message,
            retryInMs: delay,
          },
          `${target.id} did not take ${transition.event} of fan ${transition.deviceID}: ${failure.message}; retrying in ${delay} ms`,
        );
        try {
          await this.#sleep(delay);
        } catch {
          return { kind: "abandoned" };
        }
      }
    }
  }

  /** Runs `send` after the delivery before it (of either feed) has ended. */
  #inTurn<T>(send: () => Promise<T>): Promise<T> {
    const mine = this.#turn.then(send, send);
    this.#turn = mine.catch(() => {});
    return mine;
  }

  /**
   * Writes the dead letter, then acknowledges the message. A write that fails (NATS away) is tried
   * again until it is stored; a queue that stops meanwhile hands the message back instead.
   */
  async #bury(letter: DeadLetter, msg: JsMsg): Promise<void> {
    const { js, site, target, metrics, log } = this.#o;
    const data = JSON.stringify(letter);
    // One dead letter per message, even when a redelivery of the same message dies again.
    const msgID = `dead:${target.id}:${letter.source.stream}:${letter.source.seq}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await js.publish(deadLetterSubject(site, target.id), data, { msgID });
        break;
      } catch (error) {
        if (this.stopping) {
          tell(msg, "nak");
          return;
        }
        log.warn(
          { event: "dead_letter_unwritten", target: target.id, err: (error as Error).message },
          "cannot store a dead letter yet; retrying",
        );
        await this.#sleep(backoffDelay({ baseMs: 500, capMs: 10_000 }, Math.min(attempt, 10))).catch(() => {});
      }
    }
    tell(msg, "ack");
    metrics.dead.inc({ target: target.id });
    const t = letter.transition;
    log.error(
      {
        event: "notification_dead",
        target: target.id,
        id: t?.id,
        deviceID: t?.deviceID,
        attempts: letter.attempts,
        err: letter.lastError,
      },
      `${target.id} never took ${t === null ? "a message" : `${t.event} of fan ${t.deviceID}`}: ${letter.lastError}; kept as a dead letter (fanwatch notifications list)`,
    );
  }

  /** The fan's delivery log; one that cannot be written costs the log a line, never a notification. */
  async #record(transition: AlarmTransition, attempts: number, redriven: boolean): Promise<void> {
    const { js, site, target, log } = this.#o;
    const record: SentRecord = {
      target: target.id,
      transitionId: transition.id,
      deviceID: transition.deviceID,
      event: transition.event,
      alarmId: transition.alarmId,
      at: transition.at,
      sentAt: new Date().toISOString(),
      attempts,
      redriven,
    };
    try {
      await js.publish(sentSubject(site, transition.deviceID, target.id), JSON.stringify(record), {
        msgID: `sent:${target.id}:${transition.id}`,
      });
    } catch (error) {
      log.warn(
        { event: "sent_record_unwritten", target: target.id, id: transition.id, err: (error as Error).message },
        "the notification went out, but its record in the delivery log could not be written",
      );
    }
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

  #sleep(ms: number): Promise<void> {
    return systemClock.sleep(ms, this.#stop.signal);
  }
}

/**
 * Acknowledges, hands back or says "still working on it". On a connection that closed meanwhile
 * (the notifier closing) this would throw; JetStream then redelivers after the ack wait, which is
 * what a message neither acknowledged nor handed back gets anyway.
 */
function tell(msg: JsMsg, what: "ack" | "nak" | "working"): void {
  try {
    if (what === "ack") msg.ack();
    else if (what === "nak") msg.nak();
    else msg.working();
  } catch {
    // the connection is closed
  }
}

/** A target's failure as a DeliveryError; anything else (a bug, a target not written yet) is retried. */
function asDeliveryError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error;
  return new DeliveryError(error instanceof Error ? error.message : String(error), true, {
    reason: "error",
    cause: error,
  });
}

function parseWith<T>(data: Uint8Array, parse: (value: unknown) => z.ZodSafeParseResult<T>): Parsed | { value: T } {
  const text = Buffer.from(data).toString("utf8");
  const payload = text.length > MAX_PAYLOAD_CHARS ? `${text.slice(0, MAX_PAYLOAD_CHARS)}…` : text;
  let json: unknown;
  try {
    json = parseUntrustedJson(Buffer.from(data));
  } catch (error) {
    return { ok: false, error: `not JSON: ${(error as Error).message}`, payload };
  }
  const result = parse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, error: `${issue?.path.join(".") || "(top)"}: ${issue?.message ?? "invalid"}`, payload };
  }
  return { value: result.data };
}

function parseTransition(data: Uint8Array): Parsed {
  const parsed = parseWith(data, (v) => AlarmTransitionSchema.safeParse(v));
  return "value" in parsed ? { ok: true, transition: parsed.value } : parsed;
}

/** A redriven dead letter: its transition is delivered again. */
function parseRedrive(data: Uint8Array): Parsed {
  const parsed = parseWith(data, (v) => DeadLetterSchema.safeParse(v));
  if (!("value" in parsed)) return parsed;
  const { transition } = parsed.value;
  if (transition === null)
    return { ok: false, error: "a redriven dead letter without a transition", payload: JSON.stringify(parsed.value) };
  return { ok: true, transition };
}
