import type { MqttClient } from "mqtt";
import { parseUntrustedJson } from "../../lib/json.js";
import { startHealthServer, type Health, type HealthServer } from "../../lib/health-server.js";
import type { Logger } from "../../lib/log.js";
import { connectMqtt, redactUrl } from "../../lib/mqtt.js";
import type { ConnectorConfig } from "./config.js";
import { FunctionDirectory } from "./directory.js";
import { Dispatcher, type Delivery } from "./dispatcher.js";
import { createConnectorMetrics } from "./metrics.js";
import { takeOverAcks, type ReceivedMessage } from "../../lib/mqtt-acks.js";

/**
 * MQTT → OpenFaaS functions. Subscribes (QoS 1, persistent session, or a shared subscription)
 * once it knows where messages go, hands each message to the dispatcher for every function whose
 * topic filter matches, and acknowledges it to the broker only when every one of them answered
 * 2xx or it was dead-lettered: a crash means redelivery, not loss.
 */
export class Connector {
  readonly metrics = createConnectorMetrics({ inFlight: () => this.#dispatcher.inFlight, pending: () => this.#pending });
  readonly #directory: FunctionDirectory;
  readonly #dispatcher: Dispatcher;
  #client: MqttClient | undefined;
  #server: HealthServer | undefined;
  #pending = 0;
  #draining: Promise<void> | undefined;
  readonly #abort = new AbortController();
  readonly #receivedCounters = new Map<string, { inc(): void }>();

  constructor(
    private readonly config: ConnectorConfig,
    private readonly log: Logger,
  ) {
    this.#directory = new FunctionDirectory({ ...config, log });
    this.#dispatcher = new Dispatcher(config, (topic, payload) => this.#publish(topic, payload), this.metrics, log);
  }

  /** The health and metrics server's port (after start). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  get healthy(): boolean {
    return this.#client?.connected === true && this.#directory.ready && this.#draining === undefined;
  }

  async start(): Promise<void> {
    this.#server = await startHealthServer(this.config.port, () => this.#health(), this.metrics.registry);
    await this.#directory.start(this.#abort.signal);
    if (this.#abort.signal.aborted) return;
    const client = connectMqtt(this.config.mqtt, {
      clientId: this.config.clientId,
      clean: false, // a persistent session: the broker keeps what arrives while we are away
      resubscribe: true,
      onError: (error) => this.log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
    });
    this.#client = client;
    takeOverAcks(client, (message) => this.#receive(message));
    const filters = this.config.topics.map((t) => (this.config.sharedGroup === undefined ? t : `$share/${this.config.sharedGroup}/${t}`));
    // start() resolves once the broker confirmed the first subscription: from then on nothing
    // published to the topics is missed, even across our restarts (persistent session).
    const subscribed = new Promise<void>((resolve) => {
      client.on("connect", (connack) => {
        this.log.info({ event: "mqtt_connected", broker: redactUrl(this.config.mqtt.url), sessionPresent: connack.sessionPresent, filters }, "connected to the broker");
        client.subscribe(filters, { qos: this.config.qos }, (error, granted) => {
          if (error !== null && error !== undefined) this.log.error({ event: "subscribe_failed", err: error.message }, "subscribe failed");
          else {
            this.log.info({ event: "subscribed", granted: granted?.map((g) => `${g.topic} qos ${g.qos}`) }, "subscribed");
            resolve();
          }
        });
      });
    });
    client.on("offline", () => this.log.warn({ event: "mqtt_offline" }, "broker unreachable; reconnecting"));
    await subscribed;
    this.log.info({ event: "started", port: this.port, gateway: this.config.gatewayUrl, filters, batchSize: this.config.batchSize, maxInFlight: this.config.maxInFlight }, "connector started");
  }

  /** Stops taking messages, finishes the invocations in flight, then disconnects. Safe to repeat. */
  drain(): Promise<void> {
    this.#draining ??= (async () => {
      this.#abort.abort();
      this.#directory.stop();
      await this.#dispatcher.drain();
      await this.#client?.endAsync();
      this.#dispatcher.close();
      await this.#server?.close();
      this.log.info({ event: "stopped", pending: this.#pending }, "connector stopped");
    })();
    return this.#draining;
  }

  #receive(message: ReceivedMessage): void {
    // While draining, new messages stay unacknowledged: the broker redelivers them to whoever
    // takes over the session or the shared subscription.
    if (this.#draining !== undefined) return;
    this.#receivedOn(message.topic).inc();
    const targets = this.#directory.targets(message.topic);
    if (targets.length === 0) {
      this.metrics.unrouted.inc();
      message.ack();
      return;
    }
    this.#pending++;
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
      return;
    }
    for (const target of targets) this.#dispatcher.enqueue(target, delivery);
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

  async #publish(topic: string, payload: string): Promise<void> {
    if (this.#client === undefined) throw new Error("not connected");
    await this.#client.publishAsync(topic, payload, { qos: 1 });
  }

  #health(): Health {
    return {
      healthy: this.healthy,
      details: {
        broker: this.#client?.connected === true ? "connected" : "disconnected",
        functions: this.#directory.ready ? this.#directory.functionCount : "unknown",
        discoveryError: this.#directory.lastError ?? null,
        inFlight: this.#dispatcher.inFlight,
        pending: this.#pending,
      },
    };
  }
}
