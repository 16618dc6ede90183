import { parseUntrustedJson } from "../../lib/infra/json.js";
import { startHealthServer, type Health, type HealthServer } from "../../lib/infra/health-server.js";
import type { Logger } from "../../lib/infra/log.js";
import { MqttConsumer, type ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { systemClock, type Clock } from "../../lib/infra/retry.js";
import { ServiceBase } from "../../lib/infra/service.js";
import type { ConnectorConfig } from "./config.js";
import { ConnectorAutoscaler } from "./autoscaler.js";
import { FunctionDirectory, type FunctionStatus } from "./directory.js";
import { Dispatcher } from "./dispatcher.js";
import { createConnectorMetrics } from "./metrics.js";
import { ReplyPublisher } from "./reply-publisher.js";
import { Routed, type Routing } from "./routed.js";
import { topicMatches } from "./topic-filter.js";

export interface ConnectorOptions {
  /** Time for retries, backoff and circuit probes; tests pass a fake one. */
  clock?: Clock;
}

const ROUTES = "routes";

/**
 * MQTT → OpenFaaS functions. Subscribes (QoS 1, persistent session, or a shared subscription),
 * hands each message to the dispatcher for every function whose topic filter matches, and
 * acknowledges it to the broker only when every one of them answered 2xx or it was dead-lettered:
 * a crash means redelivery, not loss. A message no function wants yet is held, unacknowledged,
 * and intake pauses until a route appears; a function's outage pauses intake too (its circuit).
 */
export class Connector extends ServiceBase {
  readonly name = "connector";
  readonly metrics = createConnectorMetrics({
    inFlight: () => this.#dispatcher.inFlight,
    pending: () => this.#consumer?.status.messagesInFlight ?? 0,
    held: () => this.#held.length,
  });
  readonly #directory: FunctionDirectory;
  readonly #dispatcher: Dispatcher;
  readonly #autoscaler: ConnectorAutoscaler | undefined;
  #consumer: MqttConsumer | undefined;
  readonly #replies: ReplyPublisher;
  #server: HealthServer | undefined;
  /** Bumped when the broker connection closes: what came on an older one is void. */
  #connection = 0;
  /** Received with no function to go to, waiting for one; kept in arrival order. */
  #held: ReceivedMessage[] = [];
  readonly #replyTrouble = new Map<string, string>();
  readonly #clock: Clock;
  readonly #routing: Routing = {
    connection: () => this.#connection,
    deadLetter: (message, reason) => this.#deadLetter(message, reason, "rejected"),
  };
  readonly #receivedCounters = new Map<string, { inc(): void }>();

  constructor(
    private readonly config: ConnectorConfig,
    private readonly log: Logger,
    options: ConnectorOptions = {},
  ) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#replies = new ReplyPublisher({ mqtt: config.mqtt, clientId: config.clientId, log });
    this.#directory = new FunctionDirectory({
      ...config,
      log,
      onChange: () => this.#routesChanged(),
      onStatus: (statuses) => this.#followReplicas(statuses),
    });
    this.#dispatcher = new Dispatcher(config, {
      publish: (topic, payload) => this.#publish(topic, payload),
      metrics: this.metrics,
      log,
      clock: this.#clock,
      onCircuit: (name, open, reason) => {
        if (open) {
          this.log.warn(
            { event: "circuit_open", function: name, reason },
            `${name} keeps failing: intake paused until it answers`,
          );
          this.#consumer?.pause(`circuit ${name}`, `${name} is failing, intake paused until it answers: ${reason}`);
        } else {
          this.log.info({ event: "circuit_closed", function: name }, `${name} answers again: intake resumed`);
          this.#consumer?.resume(`circuit ${name}`);
        }
      },
      onReplyTrouble: (name, reason) =>
        reason === undefined ? this.#replyTrouble.delete(name) : this.#replyTrouble.set(name, reason),
    });
    if (config.autoscale !== undefined) {
      this.#autoscaler = new ConnectorAutoscaler({
        config: config.autoscale,
        gatewayUrl: config.gatewayUrl,
        basicAuth: config.basicAuth,
        batchSize: config.batchSize,
        timeoutMs: config.timeoutMs,
        directory: this.#directory,
        load: () => this.#dispatcher.load(),
        metrics: this.metrics,
        log,
      });
    }
  }

  /** The health and metrics server's port (after start). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  /**
   * Resolves once the broker confirmed the subscription: from then on nothing published to the
   * topics is missed, even across restarts (persistent session). It subscribes whether or not a
   * function has the topics yet: what arrives is held for the function rather than left to a
   * broker that would drop it for want of a subscriber.
   */
  protected async onStart(): Promise<void> {
    this.#server = await startHealthServer(
      { port: this.config.port, host: this.config.healthHost },
      () => this.#health(),
      this.metrics.registry,
    );
    await this.#directory.start();
    this.#autoscaler?.start();
    const filters = this.config.topics.map((t) =>
      this.config.sharedGroup === undefined ? t : `$share/${this.config.sharedGroup}/${t}`,
    );
    this.#consumer = new MqttConsumer({
      mqtt: this.config.mqtt,
      clientId: this.config.clientId,
      topics: filters,
      deadLetterTopic: this.config.deadletterTopic,
      qos: this.config.qos,
      maxBytesInFlight: this.config.maxInflightBytes,
      log: this.log,
      onMessage: (message) => this.#receive(message),
      onConnectionLost: () => this.#connectionLost(),
    });
    await this.#consumer.start();
    this.#reportRoutes();
    this.log.info(
      {
        event: "started",
        port: this.port,
        gateway: this.config.gatewayUrl,
        filters,
        batchSize: this.config.batchSize,
        maxInFlight: this.config.maxInFlight,
        maxInFlightTotal: this.config.maxInFlightTotal,
        autoscale: this.config.autoscale ?? false,
      },
      "connector started",
    );
  }

  /**
   * Stops taking messages, finishes the invocations, replies and dead letters in flight, then
   * disconnects (close()). Held messages and batches waiting out an outage stay unacknowledged: the
   * broker redelivers them.
   */
  protected override async onDrain(): Promise<void> {
    this.#directory.stop();
    this.#autoscaler?.stop();
    const pending = this.#consumer?.status.messagesInFlight ?? 0;
    await (this.#consumer?.drain(() => this.#dispatcher.drain()) ?? this.#dispatcher.drain());
    this.log.info({ event: "drained", pending }, "connector drained");
  }

  /** Disconnects at once: what was not acknowledged is redelivered to the next session. */
  protected async onClose(): Promise<void> {
    this.#directory.stop();
    this.#autoscaler?.stop();
    await this.#consumer?.close();
    await this.#replies.close();
    this.#dispatcher.close();
    await this.#server?.close();
    this.log.info({ event: "stopped" }, "connector stopped");
  }

  #receive(message: ReceivedMessage): void {
    this.#receivedOn(message.topic).inc();
    if (!this.#route(message)) {
      this.metrics.unrouted.inc();
      this.#hold(message);
    }
  }

  /** Sends a message on to its functions; false when it has none (yet). */
  #route(message: ReceivedMessage): boolean {
    const targets = this.#directory.ready ? this.#directory.targets(message.topic) : [];
    if (targets.length === 0) return false;
    const rejection = this.#check(message);
    if (rejection !== undefined) {
      this.#deadLetter(message, rejection.reason, rejection.metric);
      return true;
    }
    const delivery = new Routed(message, targets.length, this.#routing);
    for (const target of targets) this.#dispatcher.enqueue(target, delivery);
    return true;
  }

  #deadLetter(message: ReceivedMessage, reason: string, metric: string): void {
    void this.#consumer?.deadLetter(message, reason).then((outcome) => {
      if (outcome === "published") this.metrics.deadLettered.inc({ reason: metric });
    });
  }

  #connectionLost(): void {
    // The broker redelivers everything not acknowledged: what was held or queued is dropped.
    this.#connection++;
    this.#held = [];
    this.#consumer?.resume(ROUTES);
    this.#dispatcher.discardQueued();
  }

  #hold(message: ReceivedMessage): void {
    this.#held.push(message);
    if (this.#held.length > 1) return;
    const reason = this.#holdReason(message.topic);
    this.log.warn({ event: "no_route", topic: message.topic, reason }, `holding messages: ${reason}`);
    this.#consumer?.pause(ROUTES, reason);
  }

  #holdReason(topic: string): string {
    if (!this.#directory.ready)
      return `the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`;
    const filter = this.config.topics.find((f) => topicMatches(f, topic)) ?? topic;
    return `no function has the topic annotation for ${filter === topic ? topic : `${topic} (subscribed as ${filter})`}`;
  }

  #routesChanged(): void {
    this.#reportRoutes();
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const message of held) if (!this.#route(message)) this.#held.push(message);
    if (this.#held.length === 0) this.#consumer?.resume(ROUTES);
    else this.#consumer?.pause(ROUTES, this.#holdReason((this.#held[0] as ReceivedMessage).topic));
    this.log.info(
      { event: "routes_changed", released: held.length - this.#held.length, held: this.#held.length },
      "routes changed",
    );
  }

  /** Each routed function may have max_inflight invocations open per replica ready. */
  #followReplicas(statuses: ReadonlyMap<string, FunctionStatus>): void {
    for (const name of this.#directory.routedFunctions)
      this.#dispatcher.setReplicas(name, statuses.get(name)?.availableReplicas);
  }

  #reportRoutes(): void {
    if (!this.#directory.ready) return;
    for (const filter of this.#directory.unrouted(this.config.topics)) {
      this.log.warn(
        { event: "no_route", filter },
        `no function has the topic annotation for ${filter}: its messages are held`,
      );
    }
  }

  /**
   * The received counter of a topic, resolved once per topic rather than hashed per message. It is
   * labelled by the subscribed filter the topic matched, not by the topic: topics with device ids
   * in them would give the metric one series per fan, kept for ever.
   */
  #receivedOn(topic: string): { inc(): void } {
    let counter = this.#receivedCounters.get(topic);
    if (counter === undefined) {
      if (this.#receivedCounters.size > 10_000) this.#receivedCounters.clear();
      const filter = this.config.topics.find((f) => topicMatches(f, topic)) ?? "(other)";
      this.#receivedCounters.set(topic, (counter = this.metrics.received.labels(filter)));
    }
    return counter;
  }

  /**
   * Refuses, alone, a message that would make its whole batch fail: too large for the function's
   * body limit, not JSON, or JSON with __proto__/constructor.prototype keys (which functions refuse).
   */
  #check(message: ReceivedMessage): { reason: string; metric: string } | undefined {
    if (message.payload.length > this.config.maxMessageBytes) {
      return {
        reason: `payload of ${message.payload.length} bytes exceeds max_message_bytes (${this.config.maxMessageBytes})`,
        metric: "too_large",
      };
    }
    if (this.config.batchSize === 1) return undefined; // sent raw, as the official connector does
    try {
      parseUntrustedJson(message.payload);
      return undefined;
    } catch (error) {
      return { reason: `payload is not acceptable JSON: ${(error as Error).message}`, metric: "not_json" };
    }
  }

  /**
   * A QoS 1 publish, bounded by timeout_ms: MQTT.js keeps an unacknowledged publish and sends it
   * again after a reconnect, so without a bound a frozen broker would hold the messages forever
   * unseen; with it the failure is reported (and retried by the caller).
   */
  async #publish(topic: string, payload: string): Promise<void> {
    const timeout = new AbortController();
    try {
      await Promise.race([
        this.#replies.publish(topic, payload),
        this.#clock.sleep(this.config.timeoutMs, timeout.signal).then(() => {
          throw new Error(`the broker did not acknowledge within ${this.config.timeoutMs} ms`);
        }),
      ]);
    } finally {
      timeout.abort();
    }
  }

  /** Everything that keeps the connector from moving messages along, in words. */
  #problems(): string[] {
    const problems: string[] = [];
    const mqtt = this.#consumer?.status;
    if (mqtt?.connected !== true)
      problems.push(
        `not connected to the broker${mqtt?.error === null || mqtt?.error === undefined ? "" : `: ${mqtt.error}`}`,
      );
    else if (!mqtt.subscribed) problems.push(`not subscribed${mqtt.error === null ? "" : `: ${mqtt.error}`}`);
    if (!this.#directory.ready)
      problems.push(`the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`);
    else
      for (const filter of this.#directory.unrouted(this.config.topics))
        problems.push(`no function has the topic annotation for ${filter}`);
    for (const reason of mqtt?.pausedFor ?? []) if (!problems.includes(reason)) problems.push(reason);
    problems.push(...this.#replyTrouble.values());
    if (this.stopping) problems.push("stopping");
    return problems;
  }

  #health(): Health {
    const problems = this.#problems();
    return {
      healthy: problems.length === 0,
      details: {
        problems,
        broker: this.#consumer?.status.connected === true ? "connected" : "disconnected",
        functions: this.#directory.ready ? this.#directory.functionCount : "unknown",
        discoveryError: this.#directory.lastError ?? null,
        inFlight: this.#dispatcher.inFlight,
        pending: this.#consumer?.status.messagesInFlight ?? 0,
        bytesInFlight: this.#consumer?.status.bytesInFlight ?? 0,
        deadLettersPending: this.#consumer?.status.deadLettersPending ?? 0,
        paused: this.#consumer?.status.paused ?? null,
        held: this.#held.length,
      },
    };
  }
}
