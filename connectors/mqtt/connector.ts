import type { MqttClient } from "mqtt";
import { parseUntrustedJson } from "../../lib/json.js";
import { startHealthServer, type Health, type HealthServer } from "../../lib/health-server.js";
import type { Logger } from "../../lib/log.js";
import { connectMqtt, redactUrl } from "../../lib/mqtt.js";
import { systemClock, type Clock } from "../../lib/retry.js";
import type { ConnectorConfig } from "./config.js";
import { FunctionDirectory } from "./directory.js";
import { Dispatcher, type Delivery } from "./dispatcher.js";
import { createConnectorMetrics } from "./metrics.js";
import { topicMatches } from "./topic-filter.js";
import { takeOverAcks, type ReceivedMessage } from "../../lib/mqtt-acks.js";

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
export class Connector {
  readonly metrics = createConnectorMetrics({ inFlight: () => this.#dispatcher.inFlight, pending: () => this.#pending, held: () => this.#held.length });
  readonly #directory: FunctionDirectory;
  readonly #dispatcher: Dispatcher;
  #client: MqttClient | undefined;
  #server: HealthServer | undefined;
  #pending = 0;
  /** Received with no function to go to, waiting for one; kept in arrival order. */
  #held: ReceivedMessage[] = [];
  /** Why intake is paused, by who paused it (a function's circuit, the routes). */
  readonly #pauses = new Map<string, string>();
  readonly #replyTrouble = new Map<string, string>();
  #draining: Promise<void> | undefined;
  readonly #clock: Clock;
  readonly #receivedCounters = new Map<string, { inc(): void }>();

  constructor(
    private readonly config: ConnectorConfig,
    private readonly log: Logger,
    options: ConnectorOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#directory = new FunctionDirectory({ ...config, log, onChange: () => this.#routesChanged() });
    this.#dispatcher = new Dispatcher(config, {
      publish: (topic, payload) => this.#publish(topic, payload),
      metrics: this.metrics,
      log,
      clock: this.#clock,
      onCircuit: (name, open, reason) => {
        if (open) {
          this.log.warn({ event: "circuit_open", function: name, reason }, `${name} keeps failing: intake paused until it answers`);
          this.#pause(`circuit ${name}`, `${name} is failing, intake paused until it answers: ${reason}`);
        } else {
          this.log.info({ event: "circuit_closed", function: name }, `${name} answers again: intake resumed`);
          this.#resume(`circuit ${name}`);
        }
      },
      onReplyTrouble: (name, reason) => (reason === undefined ? this.#replyTrouble.delete(name) : this.#replyTrouble.set(name, reason)),
    });
  }

  /** The health and metrics server's port (after start). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  get healthy(): boolean {
    return this.#problems().length === 0;
  }

  /**
   * Resolves once the broker confirmed the subscription: from then on nothing published to the
   * topics is missed, even across restarts (persistent session). It subscribes whether or not a
   * function has the topics yet: what arrives is held for the function rather than left to a
   * broker that would drop it for want of a subscriber.
   */
  async start(): Promise<void> {
    this.#server = await startHealthServer({ port: this.config.port, host: this.config.healthHost }, () => this.#health(), this.metrics.registry);
    await this.#directory.start();
    const client = connectMqtt(this.config.mqtt, {
      clientId: this.config.clientId,
      clean: false,
      resubscribe: true,
      onError: (error) => this.log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
    });
    this.#client = client;
    takeOverAcks(client, (message) => this.#receive(message));
    const filters = this.#filters();
    const subscribed = new Promise<void>((resolve) => {
      client.on("connect", (connack) => {
        this.log.info({ event: "mqtt_connected", broker: redactUrl(this.config.mqtt.url), sessionPresent: connack.sessionPresent, filters }, "connected to the broker");
        client.subscribe(filters, { qos: this.config.qos }, (error) => {
          if (error !== null && error !== undefined) this.log.error({ event: "subscribe_failed", err: error.message }, "subscribe failed");
          else resolve();
        });
      });
    });
    await subscribed;
    this.#reportRoutes();
    this.log.info({ event: "started", port: this.port, gateway: this.config.gatewayUrl, filters, batchSize: this.config.batchSize, maxInFlight: this.config.maxInFlight }, "connector started");
  }

  /**
   * Stops taking messages, finishes the invocations, replies and dead letters in flight, then
   * disconnects. Held messages and batches waiting out an outage stay unacknowledged: the broker
   * redelivers them. Safe to repeat.
   */
  drain(): Promise<void> {
    this.#draining ??= (async () => {
      this.#directory.stop();
      await this.#dispatcher.drain();
      await this.#client?.endAsync();
      this.#dispatcher.close();
      await this.#server?.close();
      this.log.info({ event: "stopped", pending: this.#pending }, "connector stopped");
    })();
    return this.#draining;
  }

  #filters(): string[] {
    return this.config.topics.map((t) => (this.config.sharedGroup === undefined ? t : `$share/${this.config.sharedGroup}/${t}`));
  }

  #receive(message: ReceivedMessage): void {
    // While draining, new messages stay unacknowledged: the broker redelivers them to whoever
    // takes over the session or the shared subscription.
    if (this.#draining !== undefined) return;
    this.#receivedOn(message.topic).inc();
    this.#pending++;
    if (!this.#route(message)) {
      this.metrics.unrouted.inc();
      this.#hold(message);
    }
  }

  /** Sends a message on to its functions; false when it has none (yet). */
  #route(message: ReceivedMessage): boolean {
    const targets = this.#directory.ready ? this.#directory.targets(message.topic) : [];
    if (targets.length === 0) return false;
    let remaining = targets.length;
    const delivery: Delivery = {
      topic: message.topic,
      payload: message.payload,
      done: () => {
        if (--remaining > 0) return;
        this.#pending--;
        message.ack();
      },
    };
    const rejection = this.#check(delivery);
    if (rejection !== undefined) {
      remaining = 1;
      void this.#dispatcher.deadLetter([delivery], rejection.reason, rejection.metric);
      return true;
    }
    for (const target of targets) this.#dispatcher.enqueue(target, delivery);
    return true;
  }

  #hold(message: ReceivedMessage): void {
    this.#held.push(message);
    if (this.#held.length === 1) {
      const reason = this.#directory.ready ? `no function has the topic annotation for ${this.#filterOf(message.topic)}` : `the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`;
      this.log.warn({ event: "no_route", topic: message.topic, reason }, `holding messages: ${reason}`);
      this.#pause(ROUTES, reason);
    }
  }

  #routesChanged(): void {
    this.#reportRoutes();
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const message of held) if (!this.#route(message)) this.#held.push(message);
    if (this.#held.length === 0) this.#resume(ROUTES);
    this.log.info({ event: "routes_changed", released: held.length - this.#held.length, held: this.#held.length }, "routes changed");
  }

  #reportRoutes(): void {
    if (!this.#directory.ready) return;
    for (const filter of this.#directory.unrouted(this.config.topics)) {
      this.log.warn({ event: "no_route", filter }, `no function has the topic annotation for ${filter}: its messages are held`);
    }
  }

  /** The subscribed filter a topic came through, to name in reasons. */
  #filterOf(topic: string): string {
    return this.config.topics.find((f) => topicMatches(f, topic)) ?? topic;
  }

  #pause(by: string, reason: string): void {
    this.#pauses.set(by, reason);
  }

  #resume(by: string): void {
    this.#pauses.delete(by);
  }

  /** The received counter of a topic, resolved once per topic rather than hashed per message. */
  #receivedOn(topic: string): { inc(): void } {
    let counter = this.#receivedCounters.get(topic);
    if (counter === undefined) {
      if (this.#receivedCounters.size > 10_000) this.#receivedCounters.clear();
      this.#receivedCounters.set(topic, (counter = this.metrics.received.labels(topic)));
    }
    return counter;
  }

  /**
   * Refuses, alone, a message that would make its whole batch fail: too large for the function's
   * body limit, not JSON, or JSON with __proto__/constructor.prototype keys (which functions refuse).
   */
  #check(delivery: Delivery): { reason: string; metric: string } | undefined {
    if (delivery.payload.length > this.config.maxMessageBytes) {
      return { reason: `payload of ${delivery.payload.length} bytes exceeds max_message_bytes (${this.config.maxMessageBytes})`, metric: "too_large" };
    }
    if (this.config.batchSize === 1) return undefined; // sent raw, as the official connector does
    try {
      parseUntrustedJson(delivery.payload);
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
    if (this.#client === undefined) throw new Error("not connected");
    const timeout = new AbortController();
    try {
      await Promise.race([
        this.#client.publishAsync(topic, payload, { qos: 1 }),
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
    if (this.#client?.connected !== true) problems.push("not connected to the broker");
    if (!this.#directory.ready) problems.push(`the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`);
    else for (const filter of this.#directory.unrouted(this.config.topics)) problems.push(`no function has the topic annotation for ${filter}`);
    for (const [by, reason] of this.#pauses) if (by !== ROUTES || !problems.includes(reason)) problems.push(reason);
    problems.push(...this.#replyTrouble.values());
    if (this.#draining !== undefined) problems.push("stopping");
    return problems;
  }

  #health(): Health {
    const problems = this.#problems();
    return {
      healthy: problems.length === 0,
      details: {
        problems,
        broker: this.#client?.connected === true ? "connected" : "disconnected",
        functions: this.#directory.ready ? this.#directory.functionCount : "unknown",
        discoveryError: this.#directory.lastError ?? null,
        inFlight: this.#dispatcher.inFlight,
        pending: this.#pending,
        held: this.#held.length,
      },
    };
  }
}
