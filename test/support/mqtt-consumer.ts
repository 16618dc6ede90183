import type { MqttClient } from "mqtt";
import { createLogger } from "../../lib/infra/log.js";
import { MqttConsumer, type ConsumerOptions, type ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { eventually } from "./eventually.js";

const log = createLogger("consumer-test", "silent");

/** A consumer that keeps what it is given, for the test to acknowledge or not. */
export function recordingConsumer(
  url: string,
  clientId: string,
  topics: string[],
  options: Partial<ConsumerOptions> = {},
): { consumer: MqttConsumer; received: ReceivedMessage[] } {
  const received: ReceivedMessage[] = [];
  const consumer = new MqttConsumer({
    mqtt: { url },
    clientId,
    topics,
    deadLetterTopic: "fan/deadletter",
    log,
    onMessage: (m) => received.push(m),
    ...options,
  });
  return { consumer, received };
}

export const payloads = (messages: readonly ReceivedMessage[]): string[] => messages.map((m) => m.payload.toString());

/**
 * What a new session with `clientId` receives on `topic` before a marker `publisher` publishes
 * now: the messages the broker still held for it (redelivered first), then the marker.
 */
export async function heldFor(url: string, publisher: MqttClient, clientId: string, topic: string): Promise<string[]> {
  const next = recordingConsumer(url, clientId, [topic]);
  await next.consumer.start();
  await publisher.publishAsync(topic, "marker", { qos: 1 });
  await eventually("the marker", () => next.received.some((m) => m.payload.toString() === "marker"));
  for (const m of next.received) m.ack();
  await next.consumer.drain();
  return payloads(next.received).filter((p) => p !== "marker");
}
