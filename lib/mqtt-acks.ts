import type { MqttClient } from "mqtt";
import mqttPacket from "mqtt-packet";

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  /** Acknowledges the message to the broker (QoS 1). Safe to call more than once. */
  ack(): void;
}

/**
 * Takes over MQTT.js's handling of incoming publishes so that each QoS 1 message is acknowledged
 * when the caller says so, in any order, while later messages keep arriving.
 *
 * MQTT.js processes incoming packets one at a time: its `handleMessage` hook delays the PUBACK, but
 * also every packet behind it (mqttjs/MQTT.js#691), which would turn batching into one message at
 * a time. So the hook reports each message "handled with an error", which makes MQTT.js move on
 * without sending a PUBACK, and `ack()` writes the PUBACK itself. An ack from before a reconnect is
 * dropped: the broker redelivers those messages (persistent session), so nothing is lost.
 */
// Tells MQTT.js "do not acknowledge"; never thrown or shown. One instance, because building an
// Error (with its stack trace) for every message cost 15% of the connector's CPU.
const DEFERRED = new Error("acknowledged later by the subscriber");

export function takeOverAcks(client: MqttClient, onMessage: (message: ReceivedMessage) => void): void {
  let connection = 0;
  let corked = false;
  client.on("connect", () => connection++);
  // A batch acknowledges hundreds of messages at once: cork the socket so that their PUBACKs
  // leave in one write instead of one system call each.
  const write = (packet: Buffer) => {
    const stream = client.stream;
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(() => {
        corked = false;
        stream.uncork();
      });
    }
    stream.write(packet);
  };
  client.handleMessage = (packet, callback) => {
    const generation = connection;
    const messageId = packet.messageId;
    let acked = packet.qos === 0;
    onMessage({
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      ack: () => {
        if (acked) return;
        acked = true;
        if (generation === connection && client.connected && messageId !== undefined) {
          write(mqttPacket.generate({ cmd: "puback", messageId }));
        }
      },
    });
    callback(packet.qos === 0 ? undefined : DEFERRED);
  };
}
