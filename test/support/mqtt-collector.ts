import mqtt, { type MqttClient } from "mqtt";
import { eventuallyValue } from "./eventually.js";

/**
 * Publishes a marker message on `topic` (QoS 1) from a client of its own. Through one broker to
 * one subscriber a topic's messages keep their order: once a collector holds the marker, it holds
 * every message the broker had accepted on that topic before it.
 */
export async function publishMarker(url: string, topic = "fan/messages"): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: `marker-${Math.random().toString(16).slice(2)}` });
  try {
    await client.publishAsync(topic, JSON.stringify({ marker: true }), { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

/** True for what publishMarker sends. */
export function isMarker(message: unknown): boolean {
  return typeof message === "object" && message !== null && (message as { marker?: unknown }).marker === true;
}

/** Subscribes to topics and keeps every message, parsed as JSON, for assertions. */
export class Collector {
  readonly messages = new Map<string, unknown[]>();
  readonly #client: MqttClient;

  private constructor(client: MqttClient) {
    this.#client = client;
    client.on("message", (topic, payload) => {
      const list = this.messages.get(topic) ?? [];
      list.push(JSON.parse(payload.toString()));
      this.messages.set(topic, list);
    });
  }

  static async start(url: string, topics: string[]): Promise<Collector> {
    const client = await mqtt.connectAsync(url, { clientId: `collector-${Math.random().toString(16).slice(2)}` });
    await client.subscribeAsync(topics, { qos: 1 });
    return new Collector(client);
  }

  on(topic: string): unknown[] {
    return this.messages.get(topic) ?? [];
  }

  /** Resolves once `topic` holds at least `count` messages. */
  waitFor(topic: string, count: number, timeoutMs = 20_000): Promise<unknown[]> {
    return eventuallyValue(
      `${count} messages on ${topic}`,
      () => this.on(topic),
      (messages) => messages.length >= count,
      timeoutMs,
    );
  }

  stop(): Promise<void> {
    return this.#client.endAsync();
  }
}
