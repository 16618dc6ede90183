import type { MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";

/**
 * Manual acknowledgements for MQTT.js, which acknowledges a QoS 1 message as soon as its
 * `handleMessage` hook calls back. That hook delays the PUBACK, but also every packet behind it
 * (mqttjs/MQTT.js#691), which would turn batching into one message at a time. So the consumer
 * calls back with DEFERRED, "handled with an error", which makes MQTT.js move on without sending a
 * PUBACK, and writes the PUBACK itself when the owner acknowledges (`writePuback`).
 *
 * Calling back late is still useful, deliberately: it stops MQTT.js from parsing further packets
 * and so, through the stream's backpressure, from reading the socket. The consumer does that to
 * bound what it holds (lib/mqtt/consumer.ts).
 */
// Never thrown or shown. One instance, because building an Error (with its stack trace) for every
// message cost 15% of the connector's CPU.
export const DEFERRED = new Error("acknowledged later by the subscriber");

/** Writes PUBACKs on the client's current connection. */
export function pubackWriter(client: MqttClient): (messageId: number) => void {
  let corked = false;
  return (messageId) => {
    const stream = client.stream;
    // A batch acknowledges hundreds of messages at once: cork the socket so that their PUBACKs
    // leave in one write instead of one system call each.
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(() => {
        corked = false;
        stream.uncork();
      });
    }
    stream.write(mqttPacket.generate({ cmd: "puback", messageId }));
  };
}
