import type { MqttClient } from "mqtt";
import type { Budget } from "./budget.js";

/** The broker did not take a publish, or is unreachable: a 503, the transitions stay in the outbox. */
export class PublishFailedError extends Error {
  override readonly name = "PublishFailedError";
  readonly status = 503;
}

/**
 * Publishes at QoS 1 and resolves once the broker acknowledged every message (PUBACK), within the
 * invocation's budget. While the broker is unreachable nothing is handed to MQTT.js (which would
 * keep it and send it much later): the transitions stay in the fan's outbox, and whoever touches
 * the fan after HEALTH_OUTBOX_RESEND_MS sends them.
 */
export class AlarmPublisher {
  constructor(private readonly mqtt: MqttClient) {}

  get connected(): boolean {
    return this.mqtt.connected;
  }

  async publish(topic: string, messages: readonly object[], budget: Budget): Promise<void> {
    if (messages.length === 0) return;
    if (!this.mqtt.connected) throw new PublishFailedError(`the broker is unreachable; ${messages.length} messages for ${topic} wait in the outbox`);
    const acknowledged = Promise.all(
      messages.map(
        (m) =>
          new Promise<void>((resolve, reject) =>
            this.mqtt.publish(topic, JSON.stringify(m), { qos: 1 }, (error) => (error === undefined || error === null ? resolve() : reject(new PublishFailedError(`the broker did not take a publish to ${topic}: ${error.message}`, { cause: error })))),
          ),
      ),
    );
    await budget.wait(acknowledged, `the broker to acknowledge ${messages.length} messages on ${topic}`);
  }
}
