import {
  JetStreamApiCodes,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { Logger } from "../lib/infra/log.js";
import { isApiError } from "../lib/nats/jetstream.js";
import { ensureQueueConsumer, type QueueConsumerSpec } from "./consumers.js";
import { natsRetryDelay } from "./nats-retry.js";
import type { Parsed } from "./parse.js";
import type { StreamKeeper } from "./stream-keeper.js";

/** One pull's wait for a message: how soon a drain, or a lost connection, is noticed. */
const PULL_EXPIRES_MS = 5_000;

export interface FeedOptions {
  /** Health's stream, or what `fanwatch notifications redrive` put back. */
  kind: "events" | "redrive";
  spec: QueueConsumerSpec;
  parse: (data: Uint8Array) => Parsed;
  /** The target it feeds, for logs. */
  targetId: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  streams: StreamKeeper;
  log: Logger;
}

/**
 * One durable consumer of a target's queue, read one message at a time: made when missing (and
 * its stream with it, should that be gone), read again after any failure with back-off, NATS
 * waited for as long as it takes. The queue (queue.ts) says what to do with each message.
 */
export class Feed {
  readonly kind: FeedOptions["kind"];
  readonly spec: QueueConsumerSpec;
  readonly parse: FeedOptions["parse"];
  readonly #o: FeedOptions;
  #consumer: Consumer | undefined;
  #batch: ConsumerMessages | undefined;
  /** The last pull worked: the consumer exists and NATS answers. */
  #running = false;
  /** Opened once already: made anew later, it had gone missing. */
  #opened = false;
  #loop: Promise<void> | undefined;

  constructor(options: FeedOptions) {
    this.#o = options;
    this.kind = options.kind;
    this.spec = options.spec;
    this.parse = options.parse;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Resolves once the pulls have ended (after stop()), the message being handled with them. */
  get loop(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /**
   * Pulls while `pulling()` says so, handing each message to `handle` and waiting for it before the
   * next pull; `sleep` waits between failed pulls (rejecting once the queue stops).
   */
  start(pulling: () => boolean, handle: (msg: JsMsg) => Promise<void>, sleep: (ms: number) => Promise<void>): void {
    this.#loop ??= this.#pull(pulling, handle, sleep);
  }

  /** Ends the pull under way at once; the loop ends once `pulling()` says false. */
  stop(): void {
    this.#batch?.stop();
  }

  async #pull(
    pulling: () => boolean,
    handle: (msg: JsMsg) => Promise<void>,
    sleep: (ms: number) => Promise<void>,
  ): Promise<void> {
    const { log, targetId, spec } = this.#o;
    let failures = 0;
    while (pulling()) {
      let msg: JsMsg | undefined;
      try {
        if (this.#consumer === undefined) {
          this.#consumer = await this.#open();
          this.#running = true; // NATS answered, and the consumer is there
        }
        const batch = await this.#consumer.fetch({ max_messages: 1, expires: PULL_EXPIRES_MS });
        this.#batch = batch;
        if (!pulling()) batch.stop();
        for await (const m of batch) {
          msg = m;
          break;
        }
        this.#running = true;
        if (failures > 0)
          log.info(
            { event: "queue_resumed", target: targetId, consumer: spec.name },
            `reading ${spec.stream} for ${targetId} again`,
          );
        failures = 0;
      } catch (error) {
        this.#running = false;
        if (!pulling()) break;
        // Opened again on the next pull: that makes it anew if it went missing.
        this.#consumer = undefined;
        // Its stream deleted by hand: made again (at most every few seconds), else this never ends.
        if (isApiError(error, JetStreamApiCodes.StreamNotFound)) this.#o.streams.recheck(spec.stream);
        failures++;
        const delay = natsRetryDelay(failures);
        const line = {
          event: "queue_unavailable",
          target: targetId,
          consumer: spec.name,
          err: (error as Error).message,
          retryInMs: Math.round(delay),
        };
        // Once per outage at warn: the connection's own lines say when NATS is back.
        if (failures === 1) log.warn(line, `cannot read ${spec.stream} for ${targetId}; retrying`);
        else log.debug(line, `still cannot read ${spec.stream} for ${targetId}`);
        await sleep(delay).catch(() => {});
        continue;
      } finally {
        this.#batch = undefined;
      }
      if (msg !== undefined)
        await handle(msg).catch((error: unknown) => {
          // A bug: said, and the message left unacknowledged (JetStream redelivers it); the queue goes on.
          log.error({ event: "delivery_crashed", target: targetId, err: error }, "handling a message failed");
        });
    }
  }

  async #open(): Promise<Consumer> {
    const { jsm, js, log, targetId, spec, kind } = this.#o;
    const { created, replaced } = await ensureQueueConsumer(jsm, spec);
    const line = { event: "consumer_created", target: targetId, stream: spec.stream, consumer: spec.name };
    if (replaced !== undefined)
      log.warn(
        { ...line, replacedFilter: replaced, filter: spec.filter },
        `consumer ${spec.name} read ${replaced}, not ${spec.filter}: deleted and made anew` +
          (kind === "events" ? ", from now on" : ""),
      );
    else if (created && this.#opened && kind === "events")
      log.warn(line, `consumer ${spec.name} had gone missing and was made anew: transitions meanwhile are not sent`);
    else if (created)
      log.info(
        line,
        kind === "events"
          ? `${targetId} gets transitions from now on (consumer ${spec.name} created)`
          : `consumer ${spec.name} created for redriven notifications`,
      );
    this.#opened = true;
    return js.consumers.get(spec.stream, spec.name);
  }
}
