import type { Logger } from "../../lib/infra/log.js";
import { backoffDelay, retry, type Backoff, type Clock } from "../../lib/infra/retry.js";
import { Circuit } from "./circuit.js";
import type { ConnectorConfig } from "./config.js";
import type { Target } from "./directory.js";
import { Invoker, type Outcome } from "./invoker.js";
import { Lane } from "./lane.js";
import type { ConnectorMetrics } from "./metrics.js";

/** A received message on its way to one or more functions; acknowledged when all are done. */
export interface Delivery {
  readonly topic: string;
  readonly payload: Buffer;
  /** False once the connection it came on closed: the broker redelivers it, so sending it is waste. */
  readonly current: boolean;
  /** Called by each target when it is finished with the message (answered, and its answer published). */
  done(): void;
  /** Called by a target whose function refused the message: it is dead-lettered with the reason. */
  reject(reason: string): void;
}

export type Publish = (topic: string, payload: string) => Promise<void>;

export interface DispatcherOptions {
  publish: Publish;
  metrics: ConnectorMetrics;
  log: Logger;
  clock: Clock;
  /** A function's circuit opened (its outage pauses intake) or closed again. */
  onCircuit(name: string, open: boolean, reason: string): void;
  /** Publishing a function's answer to its reply topic failed (`reason`) or works again (undefined). */
  onReplyTrouble(name: string, reason: string | undefined): void;
  /** Sends one attempt of a batch; by default through the gateway over HTTP (tests pass a stand-in). */
  invoker?: Pick<Invoker, "invoke" | "close">;
}

interface Queue {
  target: Target;
  topic: string;
  items: Delivery[];
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  /** In its lane's `ready` list. */
  ready: boolean;
}

/** What the connector has for one function right now, for the autoscaler. */
export interface FunctionLoad {
  /** Batches taken and not finished. */
  batches: number;
  /** Messages queued for it, not yet in a batch. */
  queued: number;
  /** Attempts finished so far (a running count). */
  completed: number;
}

/**
 * Batches messages per function and source topic (up to batchSize, or batchWaitMs after the
 * first). Each function has its own limit of batches in flight: max_inflight per replica ready,
 * at least one replica's worth (its Lane), and all together at most max_inflight_total. With
 * batch_size 1 every message is sent raw, exactly as the official connector does; otherwise a
 * batch is a JSON array of the payloads.
 * A batch holds one topic so that the X-Topic header names the topic of every message in it.
 *
 * What happens to a batch: 2xx → its answer goes to the reply topic (if any), then the messages
 * are done. An outage (no connection, timeout, 429, 5xx) → retried with capped backoff, for as long
 * as it takes, through the function's circuit breaker. A rejection (another 4xx) → split in halves
 * until the messages the function refuses are alone, and only those are dead-lettered.
 */
export class Dispatcher {
  readonly #queues = new Map<string, Queue>();
  /** Per function, in round-robin order: the one that last took a batch goes to the back. */
  readonly #lanes = new Map<string, Lane<Queue>>();
  readonly #circuits = new Map<string, Circuit>();
  readonly #invoker: Pick<Invoker, "invoke" | "close">;
  readonly #backoff: Backoff;
  /** Aborted by drain: batches waiting for a retry or a circuit give up, unacknowledged. */
  readonly #stopping = new AbortController();
  #inFlight = 0;
  #idle: (() => void) | undefined;

  constructor(
    private readonly config: ConnectorConfig,
    private readonly options: DispatcherOptions,
  ) {
    this.#invoker = options.invoker ?? new Invoker(config, options.metrics);
    this.#backoff = { baseMs: config.retryBaseMs, capMs: config.retryMaxMs };
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Sets a function's limit from the replicas ready to serve it (undefined: not known, as with
   * static routes): max_inflight each, at least one replica's worth, at most max_inflight_total.
   */
  setReplicas(name: string, replicas: number | undefined): void {
    const lane = this.#lane(name);
    const limit = Math.min(this.config.maxInFlightTotal, this.config.maxInFlight * Math.max(1, replicas ?? 1));
    if (limit === lane.limit) return;
    this.options.log.info(
      { event: "inflight_limit", function: name, replicas: replicas ?? null, from: lane.limit, limit },
      `${name}: at most ${limit} invocations in flight (${replicas ?? "unknown"} replicas ready)`,
    );
    this.options.metrics.inFlightLimit.set({ function: name }, limit);
    if (lane.setLimit(limit)) this.#pump();
  }

  /** The load on each function the dispatcher has seen. */
  load(): Map<string, FunctionLoad> {
    const loads = new Map<string, FunctionLoad>();
    for (const lane of this.#lanes.values())
      loads.set(lane.name, {
        batches: lane.batches,
        queued: lane.ready.reduce((n, q) => n + q.items.length, 0),
        completed: lane.completed,
      });
    return loads;
  }

  enqueue(target: Target, delivery: Delivery): void {
    const key = queueKey(target.name, delivery.topic);
    let queue = this.#queues.get(key);
    if (queue === undefined)
      this.#queues.set(
        key,
        (queue = { target, topic: delivery.topic, items: [], bytes: 0, timer: undefined, ready: false }),
      );
    queue.target = target;
    queue.items.push(delivery);
    queue.bytes += delivery.payload.length;
    if (queue.items.length >= this.config.batchSize || queue.bytes >= this.config.maxBatchBytes) this.#release(queue);
    else if (queue.timer === undefined) queue.timer = setTimeout(() => this.#release(queue), this.config.batchWaitMs);
  }

  /**
   * Sends everything queued now and resolves when no invocation or reply is left in flight.
   * Batches waiting out an outage stop waiting and stay unacknowledged: the broker redelivers them
   * to the next connector.
   */
  async drain(): Promise<void> {
    for (const queue of this.#queues.values()) if (queue.items.length > 0) this.#release(queue);
    this.#stopping.abort(new Error("the connector is stopping"));
    if (!this.#isIdle()) await new Promise<void>((resolve) => (this.#idle = resolve));
  }

  /**
   * Forgets the messages not sent yet whose connection closed: the broker redelivers them. Those
   * that came on a connection still open stay queued (the connector has a session per topic
   * filter, and one closing leaves the others' messages current).
   */
  discardQueued(): void {
    for (const [key, queue] of this.#queues) {
      const kept = queue.items.filter((d) => d.current);
      if (kept.length === queue.items.length) continue;
      queue.items = kept;
      queue.bytes = kept.reduce((n, d) => n + d.payload.length, 0);
      if (kept.length > 0) continue;
      clearTimeout(queue.timer);
      queue.timer = undefined;
      queue.ready = false;
      this.#queues.delete(key);
    }
    for (const lane of this.#lanes.values()) {
      const ready = lane.ready.filter((q) => q.items.length > 0);
      lane.ready.splice(0, lane.ready.length, ...ready);
    }
  }

  close(): void {
    this.#invoker.close();
  }

  #release(queue: Queue): void {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    if (!queue.ready) {
      queue.ready = true;
      this.#lane(queue.target.name).ready.push(queue);
    }
    this.#pump();
  }

  #lane(name: string): Lane<Queue> {
    let lane = this.#lanes.get(name);
    if (lane === undefined) {
      lane = new Lane<Queue>(name, Math.min(this.config.maxInFlight, this.config.maxInFlightTotal));
      this.#lanes.set(name, lane);
      this.options.metrics.inFlightLimit.set({ function: name }, lane.limit);
    }
    return lane;
  }

  #isIdle(): boolean {
    return this.#inFlight === 0 && [...this.#lanes.values()].every((lane) => lane.ready.length === 0);
  }

  /** Takes batches while the total and their functions' limits allow, one per function in turn. */
  #pump(): void {
    let progress = true;
    while (progress && this.#inFlight < this.config.maxInFlightTotal) {
      progress = false;
      for (const lane of [...this.#lanes.values()]) {
        if (this.#inFlight >= this.config.maxInFlightTotal) break;
        if (!lane.hasRoom || lane.ready.length === 0) continue;
        progress = true;
        const { queue, batch } = this.#nextBatch(lane);
        if (batch.length > 0) this.#dispatch(lane, queue, batch);
      }
    }
  }

  /** A batch from the lane's first ready queue. Round robin: a busy queue's leftovers go behind the other queues of its function. */
  #nextBatch(lane: Lane<Queue>): { queue: Queue; batch: Delivery[] } {
    const queue = lane.ready.shift() as Queue;
    const batch = takeBatch(queue, this.config.batchSize, this.config.maxBatchBytes);
    if (queue.items.length > 0) lane.ready.push(queue);
    else {
      queue.ready = false;
      // Forgotten once empty: topics with device ids in them are unbounded.
      if (queue.timer === undefined) this.#queues.delete(queueKey(queue.target.name, queue.topic));
    }
    return { queue, batch };
  }

  /** Sends a batch; the function that took it goes behind the other functions. */
  #dispatch(lane: Lane<Queue>, queue: Queue, batch: Delivery[]): void {
    this.#lanes.delete(lane.name);
    this.#lanes.set(lane.name, lane);
    this.#inFlight++;
    lane.batchTaken();
    void this.#deliver(lane, queue.target, queue.topic, batch).finally(() => {
      this.#inFlight--;
      lane.batchFinished();
      this.#pump();
      if (this.#isIdle()) this.#idle?.();
    });
  }

  async #deliver(lane: Lane<Queue>, target: Target, topic: string, batch: Delivery[]): Promise<void> {
    try {
      await this.#send(lane, target, topic, batch);
    } catch (error) {
      // Stopping (a wait was cut short), or a bug: either way the messages stay unacknowledged
      // and the broker redelivers them; nothing may crash the connector.
      if (this.#stopping.signal.aborted)
        this.options.log.info(
          { event: "left_unacknowledged", function: target.name, messages: batch.length },
          "stopping: messages left with the broker",
        );
      else
        this.options.log.error(
          { event: "delivery_failed", function: target.name, messages: batch.length, err: (error as Error).message },
          "delivery failed; messages left unacknowledged",
        );
    }
  }

  async #send(lane: Lane<Queue>, target: Target, topic: string, batch: Delivery[]): Promise<void> {
    // Payloads were checked to be JSON when they arrived, so the array is built from their bytes.
    const body =
      this.config.batchSize === 1
        ? (batch[0] as Delivery).payload
        : Buffer.concat(joinAsArray(batch.map((d) => d.payload)));
    this.options.metrics.batchSize.observe({ function: target.name }, batch.length);
    const circuit = this.#circuit(target.name);
    for (let attempt = 1; ; attempt++) {
      await circuit.admit();
      // A batch whose connection closed is redelivered by the broker: sending it would be waste,
      // unless it is an open circuit's probe, which must go (intake is paused, no other comes).
      if (!circuit.open && !batch.some((d) => d.current)) return;
      // A first attempt waits for its permit even when stopping: drain sends what is queued, and
      // the attempts it waits behind end within timeout_ms. Retries give up (waiting out an outage).
      await lane.acquire(attempt === 1 ? NEVER : this.#stopping.signal);
      let outcome: Outcome;
      try {
        outcome = await this.#invoker.invoke(target, topic, body);
      } finally {
        lane.release();
      }
      if (outcome.kind === "answered") {
        circuit.succeeded();
        if (target.replyTopic !== undefined && outcome.body !== "")
          await this.#reply(target, target.replyTopic, outcome.body, batch);
        for (const d of batch) d.done();
        return;
      }
      if (outcome.kind === "rejected") {
        circuit.succeeded();
        return this.#rejected(lane, target, topic, batch, outcome.reason);
      }
      if (attempt === 1)
        this.options.log.warn(
          { event: "invocation_failed", function: target.name, messages: batch.length, reason: outcome.reason },
          "invocation failed; retrying",
        );
      circuit.failed(outcome.reason);
      this.options.metrics.retries.inc({ function: target.name });
      if (!circuit.open) await this.options.clock.sleep(backoffDelay(this.#backoff, attempt), this.#stopping.signal);
    }
  }

  /** A batch is refused whole when one of its messages is bad: halves are sent again until that one is found and dead-lettered, the rest delivered. */
  async #rejected(lane: Lane<Queue>, target: Target, topic: string, batch: Delivery[], reason: string): Promise<void> {
    if (batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      await this.#send(lane, target, topic, batch.slice(0, half));
      await this.#send(lane, target, topic, batch.slice(half));
      return;
    }
    this.options.log.warn({ event: "rejected", function: target.name, reason }, `${target.name} rejected a message`);
    (batch[0] as Delivery).reject(reason);
  }

  /**
   * A reply is published again until the connector stops; then the attempt under way is still
   * awaited, so that drain does not disconnect under it, but not repeated.
   */
  readonly #untilStopping = (): boolean => !this.#stopping.signal.aborted;

  #circuit(name: string): Circuit {
    let circuit = this.#circuits.get(name);
    if (circuit === undefined) {
      circuit = new Circuit({
        threshold: this.config.retries + 1,
        backoff: this.#backoff,
        clock: this.options.clock,
        signal: this.#stopping.signal,
        onChange: (open, reason) => {
          this.options.metrics.circuitOpen.set({ function: name }, open ? 1 : 0);
          this.options.onCircuit(name, open, reason);
        },
      });
      this.#circuits.set(name, circuit);
    }
    return circuit;
  }

  /** Publishes the function's answer, retrying until the broker takes it: the messages wait for it. */
  async #reply(target: Target, replyTopic: string, body: string, batch: readonly Delivery[]): Promise<void> {
    let failed = false;
    await retry(() => this.options.publish(replyTopic, body), {
      ...this.#backoff,
      // Once the batch's connection closed, the broker redelivers its messages and this answer
      // comes again with them: retrying it would only pile up copies in the reply client.
      retryable: () => this.#untilStopping() && batch.some((d) => d.current),
      clock: this.options.clock,
      onRetry: (error) => {
        const reason = `cannot publish ${target.name}'s answer to ${replyTopic}: ${(error as Error).message}`;
        if (!failed)
          this.options.log.warn(
            { event: "reply_failed", function: target.name, err: (error as Error).message },
            reason,
          );
        failed = true;
        this.options.metrics.replyFailures.inc({ function: target.name });
        this.options.onReplyTrouble(target.name, reason);
      },
    });
    if (failed) this.options.onReplyTrouble(target.name, undefined);
  }
}

/** A signal that never aborts. */
const NEVER = new AbortController().signal;

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
  while (
    n < queue.items.length &&
    n < count &&
    (n === 0 || bytes + (queue.items[n] as Delivery).payload.length <= maxBytes)
  ) {
    bytes += (queue.items[n] as Delivery).payload.length;
    n++;
  }
  queue.bytes -= bytes;
  return queue.items.splice(0, n);
}
