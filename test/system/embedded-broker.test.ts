import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { EmbeddedBroker } from "../../runtime/system/broker.js";
import { pino } from "pino";
import { PacketSizeGuard } from "../../runtime/system/packet-size-guard.js";
import { eventually } from "../support/eventually.js";

describe("the embedded broker's packet size limit", () => {
  let broker: EmbeddedBroker;
  let subscriber: MqttClient;
  const received: string[] = [];
  const logged: string[] = [];

  before(async () => {
    const log = pino({ level: "warn" }, { write: (line: string) => void logged.push(line) });
    broker = new EmbeddedBroker({ port: 0, log });
    await broker.start();
    subscriber = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    subscriber.on("message", (_topic, payload) =>
      received.push(payload.length > 100 ? `${payload.length} bytes` : payload.toString()),
    );
    await subscriber.subscribeAsync("fan/messages", { qos: 1 });
  });
  after(async () => {
    await subscriber?.endAsync(true);
    await broker?.close();
  });

  it("closes the connection of a client that publishes 1 MB, and everyone else carries on", async () => {
    const sender = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => sender.once("close", () => resolve()));
    sender.publish("fan/messages", Buffer.alloc(1024 * 1024, "x"), { qos: 0 });
    await closed;
    const line = logged.find((l) => l.includes("packet_too_large"));
    assert.ok(line, `logged: ${logged.join("")}`);
    assert.match(line, /MQTT packet of 10485\d\d bytes refused: the limit is 16384 bytes/);

    // The broker and the subscriber are still there: the next client's readings go through.
    const next = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    await next.publishAsync("fan/messages", '{"deviceID":"1"}', { qos: 1 });
    await next.publishAsync("fan/messages", Buffer.alloc(16_000, "y"), { qos: 1 });
    await next.endAsync();
    await eventually("both messages at the subscriber", () => received.length >= 2);
    assert.deepEqual(received, ['{"deviceID":"1"}', "16000 bytes"]);
    assert.equal(subscriber.connected, true);
  });
});

describe("PacketSizeGuard", () => {
  it("passes packets up to the limit unchanged, however the bytes are split, and refuses the first one over it", async () => {
    const small = publishPacket(100);
    const big = publishPacket(300); // a 2-byte length: the split can fall inside it
    const bytes = Buffer.concat([small, publishPacket(0), small, big, small]);
    for (let split = 1; split < small.length * 2 + 4; split++) {
      const guard = new PacketSizeGuard(small.length + 10);
      const passed: Buffer[] = [];
      guard.on("data", (chunk: Buffer) => passed.push(chunk));
      const failed = once(guard, "error");
      for (let i = 0; i < bytes.length && !guard.destroyed; i += split) guard.write(bytes.subarray(i, i + split));
      const [error] = (await failed) as [Error];
      assert.match(
        error.message,
        new RegExp(`MQTT packet of ${big.length} bytes refused: the limit is ${small.length + 10} bytes`),
      );
      // Every byte before the big packet went through; of the big packet, at most its header did.
      const through = Buffer.concat(passed);
      const before = small.length * 2 + publishPacket(0).length;
      assert.ok(
        through.length >= before && through.length <= before + 3,
        `split ${split}: ${through.length} bytes passed`,
      );
      assert.deepEqual(through.subarray(0, before), bytes.subarray(0, before));
    }
  });
});

/** A QoS 0 PUBLISH packet on topic "t" with `payload` bytes. */
function publishPacket(payload: number): Buffer {
  const body = Buffer.concat([Buffer.from([0, 1, 0x74]), Buffer.alloc(payload, 0x61)]);
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x30, ...length]), body]);
}
