import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelay } from "../../lib/backoff.js";
import { deadLetter } from "../../lib/dead-letter.js";
import type { Logger } from "../../lib/log.js";
import type { ConnectorConfig } from "./config.js";
import type { Target } from "./directory.js";
import { GatewayClient } from "./http-client.js";
import type { ConnectorMetrics } from "./metrics.js";

/** A received message on its way to one or more functions; acknowledged when all are done. */
export interface Delivery {
  topic: string;
  payload: Buffer;
  /** Called by each target when it is finished with the message (answered, or dead-lettered). */
  done(): void;
}

export type Publish = (topic: string, payload: string) => Promise<void>;

interface Queue {
  target: Target;
  topic: string;
  items: Delivery[];
  bytes: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Batches messages per function and source topic (up to batchSize, or batchWaitMs after the
 * first), keeps at most maxInFlight invocations open, retries 429/5xx/timeouts/connection errors
 * with exponential backoff, and after the last retry dead-letters the batch's messages with the
 * reason. With batch_size 1 every message is sent raw, exactly as the official connector does;
 * otherwise a batch is a JSON array of the payloads. A batch holds one topic so that the X-Topic
 * header names the topic of every message in it.
 */
export class Dispatcher {
  readonly #queues = new Map<string, Queue>();
  readonly #ready: Queue[] = [];
  readonly #gateway: GatewayClient;
  #inFlight = 0;
  #idle: (() => void) | undefined;

  constructor(
    private readonly config: ConnectorConfig,
    private readonly publish: Publish,
    private readonly metrics: ConnectorMetrics,
    private readonly log: Logger,
  ) {
    this.#gateway = new GatewayClient(config.gatewayUrl, config.maxInFlight);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  enqueue(target: Target, delivery: Delivery): void {
    const key = queueKey(target.name, delivery.topic);
    let queue = this.#queues.get(key);
    if (queue === undefined) this.#queues.set(key, (queue = { target, topic: delivery.topic, items: [], bytes: 0, timer: undefined }));
    queue.target = target;
    queue.items.push(delivery);
    queue.bytes += delivery.payload.length;
    if (queue.items.length >= this.config.batchSize || queue.bytes >= this.config.maxBatchBytes) this.#release(queue);
    else if (queue.timer === undefined) queue.timer = setTimeout(() => this.#release(queue), this.config.batchWaitMs);
  }

  /** Sends everything queued now and resolves when no invocation is left in flight. */
  async drain(): Promise<void> {
    for (const queue of this.#queues.values()) if (queue.items.length > 0) this.#release(queue);
    if (this.#inFlight > 0 || this.#ready.length > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
  }

  close(): void {
    this.#gateway.close();
  }

  #release(queue: Queue): void {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    if (!this.#ready.includes(queue)) this.#ready.push(queue);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.config.maxInFlight && this.#ready.length > 0) {
      const queue = this.#ready[0] as Queue;
      const batch = takeBatch(queue, this.config.batchSize, this.config.maxBatchBytes);
      // Round robin: a busy queue's leftovers go behind the other queues' batches.
      this.#ready.shift();
      if (queue.items.length > 0) this.#ready.push(queue);
      else if (queue.timer === undefined) this.#queues.delete(queueKey(queue.target.name, queue.topic)); // topics with device ids in them are unbounded
      if (batch.length === 0) continue;
      this.#inFlight++;
      void this.#deliver(queue.target, queue.topic, batch).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#ready.length === 0) this.#idle?.();
      });
    }
  }

  async #deliver(target: Target, topic: string, batch: Delivery[]): Promise<void> {
    // Payloads were checked to be JSON when they arrived, so the array is built from their bytes.
    const body = this.config.batchSize === 1 ? (batch[0] as Delivery).payload : Buffer.concat(joinAsArray(batch.map((d) => d.payload)));
    this.metrics.batchSize.observe({ function: target.name }, batch.length);
    let reason = "";
    for (let attempt = 0; attempt <= this.config.retries; attempt++) {
      if (attempt > 0) {
        this.metrics.retries.inc({ function: target.name });
        await sleep(backoffDelay(this.config.retryBaseMs, attempt));
      }
      const outcome = await this.#invoke(target, topic, body);
      if (outcome.ok) {
        if (target.replyTopic !== undefined && outcome.body !== "") await this.#reply(target, outcome.body);
        for (const d of batch) d.done();
        return;
      }
      reason = outcome.reason;
      if (!outcome.retry) break;
    }
    this.log.warn({ event: "dead_lettered", function: target.name, messages: batch.length, reason }, `giving up on ${batch.length} messages for ${target.name}`);
    await this.deadLetter(batch, `${target.name}: ${reason}`, "invocation_failed");
  }

  async #invoke(target: Target, topic: string, body: string | Buffer): Promise<{ ok: true; body: string } | { ok: false; retry: boolean; reason: string }> {
    const path = this.config.asyncInvoke ? `/async-function/${target.name}` : `/function/${target.name}`;
    const headers: Record<string, string> = { "content-type": this.config.contentType, "x-topic": topic, "x-connector": "fanwatch-mqtt-connector" };
    if (this.config.asyncInvoke && this.config.callbackUrl !== undefined) headers["x-callback-url"] = this.config.callbackUrl;
    const stop = this.metrics.latency.startTimer({ function: target.name });
    try {
      const answer = await this.#gateway.request({ method: "POST", path, headers, body, timeoutMs: this.config.timeoutMs });
      this.metrics.invocations.inc({ function: target.name, code: String(answer.status) });
      if (answer.status >= 200 && answer.status < 300) return { ok: true, body: answer.body };
      const reason = `answered ${answer.status}: ${answer.body.slice(0, 300)}`;
      return { ok: false, retry: answer.status === 429 || answer.status >= 500, reason };
    } catch (error) {
      this.metrics.invocations.inc({ function: target.name, code: "0" });
      return { ok: false, retry: true, reason: error instanceof Error ? error.message : String(error) };
    } finally {
      stop();
    }
  }

  async #reply(target: Target, body: string): Promise<void> {
    try {
      await this.publish(target.replyTopic as string, body);
    } catch (error) {
      this.log.warn({ event: "reply_failed", function: target.name, err: (error as Error).message }, "cannot publish the function's answer");
    }
  }

  /** Publishes one dead letter per message, then lets the messages go. */
  async deadLetter(batch: Delivery[], reason: string, metric: string): Promise<void> {
    await Promise.all(
      batch.map(async (d) => {
        // Until the dead letter is acknowledged the message stays unacknowledged too: if the
        // broker is gone, both are retried after reconnecting rather than lost.
        await this.publish(this.config.deadletterTopic, JSON.stringify(deadLetter(reason, d.topic, d.payload)));
        this.metrics.deadLettered.inc({ reason: metric });
        d.done();
      }),
    ).catch((error: unknown) => this.log.error({ event: "dead_letter_failed", err: (error as Error).message }, "cannot publish dead letters; the broker will redeliver"));
  }
}

function queueKey(functionName: string, topic: string): string {
  return `${functionName}\n${topic}`;
}

const OPEN = Buffer.from("[");
const COMMA = Buffer.from(",");
const CLOSE = Buffer.from("]");

function joinAsArray(payloads: Buffer[]): Buffer[] {
  const parts: Buffer[] = [OPEN];
  payloads.forEach((p, i) => parts.push(...(i === 0 ? [p] : [COMMA, p])));
  parts.push(CLOSE);
  return parts;
}

/** Takes the oldest messages of a queue, at most `count` of them and about `maxBytes`. */
function takeBatch(queue: Queue, count: number, maxBytes: number): Delivery[] {
  let bytes = 0;
  let n = 0;
  while (n < queue.items.length && n < count && (n === 0 || bytes + (queue.items[n] as Delivery).payload.length <= maxBytes)) {
    bytes += (queue.items[n] as Delivery).payload.length;
    n++;
  }
  queue.bytes -= bytes;
  return queue.items.splice(0, n);
}
