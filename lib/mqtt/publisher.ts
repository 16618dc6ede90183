import type { MqttClient } from "mqtt";
import type { Deadline } from "../infra/deadline.js";
import { PublishFailedError } from "../errors.js";

export interface PublisherOptions {
  /**
   * A broker that is connected but does not acknowledge (frozen, or overloaded) would otherwise
   * collect every retried invocation's publishes in memory. Measured with 20,000 predictions sent
   * to a stopped Mosquitto: 0.4 KB of heap each once collected, 2.7 KB of resident memory while
   * they pile up; so 10,000 cost about 27 MB, which fits between predict's 178 MB peak and its
   * 256 MiB limit (stack.yml), and stays well below MQTT.js's 65,535 message ids.
   * @default 10_000
   */
  maxUnacknowledged?: number;
  /**
   * While the broker is unreachable: wait for it within the deadline (predict), or fail at once
   * (health, whose transitions wait in the fan's outbox for whoever touches the fan next).
   * @default true
   */
  waitForConnection?: boolean;
}

/**
 * Publishes at QoS 1 and waits for the broker's acknowledgements (PUBACK) within an invocation's
 * deadline: a publish that is not acknowledged in time makes the invocation a 503, never a 200.
 * The functions' one way to publish (predict's predictions and dead letters, health's transitions).
 *
 * While the broker is unreachable nothing is handed to MQTT.js, which would keep it in memory and
 * send it after reconnecting, long after the caller got its 503 and retried: invocations wait for
 * the connection within their deadline instead, or fail at once. Publishes already sent when the connection drops
 * stay in MQTT.js's store and are sent again when it is back; if that is after the deadline, the
 * caller has retried meanwhile and those predictions arrive twice (at-least-once, as everywhere
 * in the pipeline).
 */
export class Publisher {
  readonly #mqtt: MqttClient;
  readonly #waiting = new Set<(connected: boolean) => void>();
  readonly #maxUnacknowledged: number;
  readonly #waitForConnection: boolean;
  /** Publishes handed to MQTT.js and not yet acknowledged, late ones included. */
  #unacknowledged = 0;

  constructor(mqtt: MqttClient, options: PublisherOptions = {}) {
    this.#mqtt = mqtt;
    this.#maxUnacknowledged = options.maxUnacknowledged ?? 10_000;
    this.#waitForConnection = options.waitForConnection ?? true;
    mqtt.on("connect", () => {
      for (const settle of [...this.#waiting]) settle(true);
    });
  }

  async publish(topic: string, messages: readonly object[], deadline: Deadline): Promise<void> {
    if (messages.length === 0) return;
    if (!this.#waitForConnection && !this.#mqtt.connected)
      throw new PublishFailedError(`the broker is unreachable; not publishing ${messages.length} messages to ${topic}`);
    await deadline.wait(
      this.#connected(deadline.signal),
      `the broker, which is unreachable, to publish ${messages.length} messages to ${topic}`,
    );
    if (this.#unacknowledged + messages.length > this.#maxUnacknowledged) {
      throw new PublishFailedError(
        `the broker has not acknowledged ${this.#unacknowledged} earlier publishes; not adding ${messages.length} more until it does`,
      );
    }
    this.#unacknowledged += messages.length;
    const acknowledged = new Promise<void>((resolve, reject) => {
      let left = messages.length;
      const onAck = (error?: Error) => {
        this.#unacknowledged--;
        if (error !== undefined && error !== null)
          reject(
            new PublishFailedError(`the broker did not take a publish to ${topic}: ${error.message}`, { cause: error }),
          );
        else if (--left === 0) resolve();
      };
      for (const m of messages) this.#mqtt.publish(topic, JSON.stringify(m), { qos: 1 }, onAck);
    });
    await deadline.wait(acknowledged, `the broker to acknowledge ${messages.length} messages on ${topic}`);
  }

  /** Resolves once the client is connected; rejects with the signal's reason if `signal` aborts first. */
  async #connected(signal: AbortSignal): Promise<void> {
    if (this.#mqtt.connected) return;
    signal.throwIfAborted();
    const ready = await new Promise<boolean>((resolve) => {
      const settle = (connected: boolean) => {
        this.#waiting.delete(settle);
        signal.removeEventListener("abort", onAbort);
        resolve(connected);
      };
      const onAbort = () => settle(false);
      this.#waiting.add(settle);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    // Aborted first: throwIfAborted() throws the signal's reason as it is.
    if (!ready) signal.throwIfAborted();
  }
}
