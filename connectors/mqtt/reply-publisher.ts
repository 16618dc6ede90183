import type { MqttClient } from "mqtt";
import type { Logger } from "../../lib/log.js";
import { connectMqtt, type MqttSettings } from "../../lib/mqtt.js";

/**
 * Publishes functions' answers to their reply topics (QoS 1) over a connection of its own, opened
 * at the first reply: the consumer (lib/mqtt/consumer.ts) publishes only dead letters. Most
 * deployments have no reply-topic annotation and never open it. Its client id is the connector's
 * with `-replies`, a clean session: nothing is subscribed on it.
 */
export class ReplyPublisher {
  #client: MqttClient | undefined;

  constructor(
    private readonly options: { mqtt: MqttSettings; clientId: string; log: Logger },
  ) {}

  /** Resolves when the broker acknowledged the publish. */
  async publish(topic: string, payload: string): Promise<void> {
    this.#client ??= connectMqtt(this.options.mqtt, {
      clientId: `${this.options.clientId}-replies`,
      clean: true,
      onError: (error) => this.options.log.warn({ event: "mqtt_error", connection: "replies", err: error.message }, "MQTT error (replies)"),
    });
    await this.#client.publishAsync(topic, payload, { qos: 1 });
  }

  /** At once: a reply not acknowledged by now leaves its messages unacknowledged, to be redelivered. */
  async close(): Promise<void> {
    await this.#client?.endAsync(true);
  }
}
