import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import type { ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { eventually } from "../support/eventually.js";
import { heldFor, recordingConsumer } from "../support/mqtt-consumer.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";

// What needs no broker process runs against the in-process broker in test/unit/mqtt.test.ts (one
// copy of each test, not two); here, what only Mosquitto shows: its in-flight window, its
// keepalive, a broker that never confirms, the sessions it keeps, a broker frozen or restarted.

describe("the MQTT consumer, against Mosquitto", { timeout: 60_000 }, () => {
  let broker: Broker;
  let publisher: MqttClient;
  const publish = (topic: string, payload: string | Buffer) => publisher.publishAsync(topic, payload, { qos: 1 });

  before(async () => {
    broker = await startMosquitto();
    publisher = await mqtt.connectAsync(broker.url, { clientId: "consumer-test-publisher" });
  });
  after(async () => {
    await publisher?.endAsync();
    await broker?.stop();
  });

  it("stops reading above its byte bound and reads on once its owner acknowledges", async () => {
    const bound = 10_000;
    const sizes: number[] = [];
    let pauses = 0;
    const { consumer: c, received } = recordingConsumer(broker.url, "bound", ["t/bound"], {
      maxBytesInFlight: bound,
      onMessage: (m) => {
        received.push(m);
        sizes.push(c.status.bytesInFlight);
      },
    });
    await c.start();
    const total = 100;
    const payload = Buffer.alloc(1_000, "x"); // 100 kB in all, ten times the bound
    const oneMessage = 2 + "t/bound".length + 2 + payload.length; // as sent: topic length, topic, message id, payload
    for (let i = 0; i < total; i++) await publish("t/bound", payload);
    let acked = 0;
    while (acked < total) {
      // The owner is slow: it acknowledges only once the consumer stopped delivering.
      await eventually("a pause or the last message", () => c.status.paused !== null || received.length === total);
      if (c.status.paused !== null) {
        pauses++;
        assert.match(c.status.paused, /bytes in flight, above 10000/);
      }
      const batch = received.slice(acked);
      acked += batch.length;
      for (const m of batch) m.ack(); // the first acks may deliver a message already
    }
    assert.equal(received.length, total, "every message delivered once");
    assert.ok(pauses >= 5, `paused ${pauses} times`);
    assert.ok(Math.max(...sizes) < bound + oneMessage, `at most ${Math.max(...sizes)} bytes in flight`);
    assert.deepEqual(c.status, {
      connected: true,
      subscribed: true,
      paused: null,
      pausedFor: [],
      waiting: false,
      error: null,
      messagesInFlight: 0,
      bytesInFlight: 0,
      deadLettersPending: 0,
    });
    await c.drain();
  });

  it("paused longer than its keepalive, reconnects, and delivers everything once resumed", async () => {
    // While reading is stopped the broker's PINGRESP goes unread too: MQTT.js reconnects after
    // 1.5 × keepalive. Deliberate: the messages stay with the broker and come again.
    let lost = 0;
    const { consumer: c, received } = recordingConsumer(broker.url, "keepalive", ["t/keepalive"], {
      client: { keepalive: 1, reconnectPeriod: 50 },
      onConnectionLost: () => lost++,
    });
    await c.start();
    c.pause("circuit", "the target is down");
    for (const n of ["1", "2", "3"]) await publish("t/keepalive", n);
    await eventually("reconnected, with a message waiting", () => lost >= 1 && c.status.connected && c.status.waiting);
    assert.deepEqual({ received: received.length, subscribed: c.status.subscribed }, { received: 0, subscribed: true });
    c.resume("circuit");
    await eventually("three messages", () => received.length === 3);
    assert.deepEqual(
      received.map((m) => m.payload.toString()),
      ["1", "2", "3"],
    );
    for (const m of received) m.ack();
    await c.drain();
    assert.deepEqual(await heldFor(broker.url, publisher, "keepalive", "t/keepalive"), []);
  });

  it("drain ends even when the broker never confirms a dead letter, and the message comes back", async () => {
    const { consumer: c, received } = recordingConsumer(broker.url, "drain-frozen", ["t/drain-frozen"]);
    await c.start();
    await publish("t/drain-frozen", "bad");
    await eventually("the message", () => received.length === 1);
    process.kill(broker.pid as number, "SIGSTOP"); // takes the dead letter, never answers
    try {
      const outcome = c.deadLetter(received[0] as ReceivedMessage, "bad");
      // Before the fix a clean disconnect waited for the unconfirmed publish forever.
      await c.drain();
      assert.equal(await outcome, "failed");
    } finally {
      process.kill(broker.pid as number, "SIGCONT");
    }
    assert.deepEqual(
      await heldFor(broker.url, publisher, "drain-frozen", "t/drain-frozen"),
      ["bad"],
      "unacknowledged, so redelivered",
    );
  });

  it("parked, disconnects until resumed: the broker keeps what arrives meanwhile, and everything comes once resumed", async () => {
    let lost = 0;
    const { consumer: c, received } = recordingConsumer(broker.url, "park", ["t/park"], {
      onConnectionLost: () => lost++,
    });
    await c.start();
    await publish("t/park", "before");
    await eventually("received.length === 1", () => received.length === 1);
    c.park("circuit", "the target is down");
    await eventually("lost === 1 && !c.status.connected", () => lost === 1 && !c.status.connected);
    assert.deepEqual(
      { parked: c.parked, paused: c.status.paused, messages: c.status.messagesInFlight },
      { parked: true, paused: "the target is down", messages: 0 },
      "disconnected on purpose; what it had received is void",
    );
    for (const n of ["1", "2", "3"]) await publish("t/park", n);
    c.pause("routes", "no route"); // another reason, which does not park: the session stays away until the park ends
    c.resume("routes");
    assert.equal(c.parked, true);
    c.resume("circuit");
    await eventually("received.length === 5", () => received.length === 5);
    assert.equal(c.parked, false);
    assert.deepEqual(
      received.map((m) => m.payload.toString()),
      ["before", "before", "1", "2", "3"],
      "the message held when it parked comes again, then what the broker kept",
    );
    for (const m of received) m.ack();
    await c.drain();
    assert.deepEqual(await heldFor(broker.url, publisher, "park", "t/park"), []);
  });

  it("drops the filters it is told another session has, when the broker kept its session", async () => {
    const old = recordingConsumer(broker.url, "stale", ["t/stale/a", "t/stale/b"]);
    await old.consumer.start();
    await old.consumer.drain();
    const events: string[] = [];
    const { consumer: c, received } = recordingConsumer(broker.url, "stale", ["t/stale/a"], {
      unsubscribe: ["t/stale/b"],
      log: pino(
        { level: "info" },
        { write: (line: string) => void events.push((JSON.parse(line) as { event?: string }).event ?? "") },
      ),
    });
    await c.start();
    await eventually('events.includes("unsubscribed")', () => events.includes("unsubscribed"));
    // A marker published on t/stale/a after one on t/stale/b arrives after it, if that one comes at all.
    await publish("t/stale/b", "b again");
    await publish("t/stale/a", "marker");
    await eventually('received.some((m) => m.payload.toString() === "marker")', () =>
      received.some((m) => m.payload.toString() === "marker"),
    );
    for (const m of received) m.ack();
    await c.drain();
    assert.ok(
      !received.some((m) => m.payload.toString() === "b again"),
      `still subscribed to t/stale/b: ${received.map((m) => m.payload.toString()).join(", ")}`,
    );
  });
});
