import type { MqttClient } from "mqtt";
import type { Logger } from "../../lib/infra/log.js";
import { connectMqtt } from "../../lib/mqtt/client.js";
import type { MqttSettings } from "../../lib/mqtt/settings.js";

/**
 * Publishes functions' answers to their reply topics (QoS 1) over a connection of its own, opened
 * at the first reply (most deployments have no reply-topic annotation and never open it). Not over
 * the consumer's: while the consumer holds its byte bound it reads nothing from its socket, so the
 * PUBACK of a reply would wait there behind the messages whose acknowledgement waits for that very
 * PUBACK, until the keepalive gave up. Its client id is the connector's with `-replies`, a clean
 * session: nothing is subscribed on it.
 */
export class ReplyPublisher {
  #client: MqttClient | undefined;

  constructor(private readonly options: { mqtt: MqttSettings; clientId: string; log: Logger }) {}

  /** Resolves when the broker acknowledged the publish. */
  async publish(topic: string, payload: string): Promise<void> {
    this.#client ??= connectMqtt(this.options.mqtt, {
      clientId: `${this.options.clientId}-replies`,
      clean: true,
      onError: (error) =>
        this.options.log.warn(
          { event: "mqtt_error", connection: "replies", err: error.message },
          "MQTT error (replies)",
        ),
    });
    await this.#client.publishAsync(topic, payload, { qos: 1 });
  }

  /** At once: a reply not acknowledged by now leaves its messages unacknowledged, to be redelivered. */
  async close(): Promise<void> {
    await this.#client?.endAsync(true);
  }
}
