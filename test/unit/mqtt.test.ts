import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { PublishFailedError } from "../../lib/errors.js";
import { Deadline } from "../../lib/infra/deadline.js";
import type { ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { Publisher } from "../../lib/mqtt/publisher.js";
import { startAedes, type InProcessBroker } from "../support/aedes-broker.js";
import { eventually } from "../support/eventually.js";
import { heldFor, payloads, recordingConsumer } from "../support/mqtt-consumer.js";
import { Collector } from "../support/mqtt-collector.js";

// lib/mqtt against the in-process broker. test/system/consumer.test.ts runs the consumer against
// Mosquitto, with what only a real broker process shows (keepalive, a broker frozen for good).

describe("the MQTT consumer", () => {
  let broker: InProcessBroker;
  let publisher: MqttClient;
  const publish = (topic: string, payload: string | Buffer) => publisher.publishAsync(topic, payload, { qos: 1 });

  before(async () => {
    broker = await startAedes();
    publisher = await mqtt.connectAsync(broker.url, { clientId: "consumer-test-publisher", reconnectPeriod: 50 });
  });
  afterEach(() => broker.release());
  after(async () => {
    await publisher.endAsync();
    await broker.close();
  });

  it("acknowledges only what its owner acknowledged: the rest goes to the next session", async () => {
    const { consumer: first, received } = recordingConsumer(broker.url, "acks", ["t/acks"]);
    await first.start();
    for (const n of ["1", "2", "3"]) await publish("t/acks", n);
    await eventually("three messages", () => received.length === 3);
    received[0]?.ack();
    received[1]?.ack();
    received[1]?.ack(); // twice is harmless
    assert.deepEqual(
      { messages: first.status.messagesInFlight, healthy: first.healthy },
      { messages: 1, healthy: true },
    );
    await new Promise((resolve) => setImmediate(resolve)); // the PUBACKs leave in one write, on the next tick
    await first.close(); // as if killed: no DISCONNECT, message 3 never acknowledged
    assert.deepEqual(await heldFor(broker.url, publisher, "acks", "t/acks"), ["3"]);
  });

  it("holds at most its byte bound of a broker that pushes everything at once, and reads on as its owner acknowledges", async () => {
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
    assert.deepEqual(
      { paused: c.status.paused, messagesInFlight: c.status.messagesInFlight, bytesInFlight: c.status.bytesInFlight },
      { paused: null, messagesInFlight: 0, bytesInFlight: 0 },
    );
    await c.drain();
  });

  it("pauses and resumes for its owner, each reason on its own, and delivers what waited in order", async () => {
    const { consumer: c, received } = recordingConsumer(broker.url, "pause", ["t/pause"]);
    await c.start();
    c.pause("routes", "no route to a function");
    await publish("t/pause", "held");
    await publish("t/pause", "behind it");
    await eventually("a message waiting", () => c.status.waiting);
    assert.equal(c.status.paused, "no route to a function");
    c.pause("circuit", "predict is down");
    assert.equal(c.status.paused, "no route to a function; predict is down");
    c.resume("circuit");
    assert.deepEqual(c.status.pausedFor, ["no route to a function"], "one pause resumed, the other still holds");
    assert.equal(received.length, 0);
    c.resume("routes");
    await eventually("both messages", () => received.length === 2);
    assert.deepEqual(payloads(received), ["held", "behind it"]);
    for (const m of received) m.ack();
    await c.drain();
  });

  it("dead-letters with a reason and acknowledges the message only once the broker took the dead letter", async () => {
    const letters = await Collector.start(broker.url, ["fan/deadletter"]);
    try {
      const { consumer: c, received } = recordingConsumer(broker.url, "dead", ["t/dead"]);
      await c.start();
      await publish("t/dead", '{"deviceID":"x","rotation":"fast"}');
      await eventually("the message", () => received.length === 1);
      assert.equal(await c.deadLetter(received[0] as ReceivedMessage, "rotation: expected a number"), "published");
      const [letter] = (await letters.waitFor("fan/deadletter", 1)) as Array<Record<string, string>>;
      assert.deepEqual(
        { ...letter, at: "" },
        {
          error: "rotation: expected a number",
          topic: "t/dead",
          payload: '{"deviceID":"x","rotation":"fast"}',
          at: "",
        },
      );
      assert.ok(!Number.isNaN(Date.parse(letter?.at ?? "")));
      await c.drain();
      assert.deepEqual(await heldFor(broker.url, publisher, "dead", "t/dead"), [], "acknowledged");
    } finally {
      await letters.stop();
    }
  });

  it("keeps a message whose dead letter the broker never confirmed: the next session gets it again", async () => {
    const { consumer: c, received } = recordingConsumer(broker.url, "dead-failed", ["t/dead-failed"]);
    await c.start();
    await publish("t/dead-failed", "bad");
    await eventually("the message", () => received.length === 1);
    broker.hold("fan/deadletter"); // the broker takes the dead letter but never answers
    const outcome = c.deadLetter(received[0] as ReceivedMessage, "bad");
    await eventually("the dead letter with the broker", () => broker.held === 1);
    assert.equal(c.status.deadLettersPending, 1);
    await c.close();
    assert.equal(await outcome, "failed");
    broker.release();
    assert.deepEqual(await heldFor(broker.url, publisher, "dead-failed", "t/dead-failed"), ["bad"], "redelivered");
  });

  it("drain lets its owner finish, waits for the dead letters being published, then disconnects", async () => {
    const letters = await Collector.start(broker.url, ["fan/deadletter"]);
    try {
      const { consumer: c, received } = recordingConsumer(broker.url, "drain", ["t/drain"]);
      await c.start();
      await publish("t/drain", "bad");
      await publish("t/drain", "good");
      await eventually("both messages", () => received.length === 2);
      const order: string[] = [];
      broker.hold("fan/deadletter");
      void c.deadLetter(received[0] as ReceivedMessage, "bad").then((outcome) => order.push(`dead letter ${outcome}`));
      // The owner finishes its work inside drain: here, acknowledging the good message.
      const drained = c.drain(async () => received[1]?.ack()).then(() => void order.push("drained"));
      assert.equal(c.drain(), c.drain(), "a second drain is the first");
      await eventually("the dead letter with the broker", () => broker.held === 1);
      assert.deepEqual(order, [], "drain waits for the dead letter");
      broker.release();
      await drained;
      assert.deepEqual(order, ["dead letter published", "drained"]);
      await letters.waitFor("fan/deadletter", 1);
      assert.deepEqual(
        await heldFor(broker.url, publisher, "drain", "t/drain"),
        [],
        "both acknowledged before the disconnect",
      );
    } finally {
      await letters.stop();
    }
  });

  it("never dead-letters a message from the dead-letter topic", async () => {
    const { consumer: c, received } = recordingConsumer(broker.url, "loop", ["fan/deadletter"]);
    await c.start();
    await publish("fan/deadletter", '{"error":"x"}');
    await eventually("the message", () => received.length === 1);
    assert.equal(await c.deadLetter(received[0] as ReceivedMessage, "cannot store it"), "dropped");
    await c.drain();
    assert.deepEqual(
      await heldFor(broker.url, publisher, "loop", "fan/deadletter"),
      [],
      "acknowledged, and no dead letter of it was published",
    );
  });

  it("voids what it delivered when the connection drops, tells its owner, and gets it again", async () => {
    let lost = 0;
    const { consumer: c, received } = recordingConsumer(broker.url, "reconnect", ["t/reconnect"], {
      onConnectionLost: () => lost++,
      client: { reconnectPeriod: 50 },
    });
    await c.start();
    await publish("t/reconnect", "1");
    await eventually("the message", () => received.length === 1);
    await broker.dropConnections();
    await eventually("reconnected and redelivered", () => lost === 1 && c.healthy && received.length === 2);
    // The publisher's connection was dropped too: it reconnects by itself.
    assert.equal(c.status.messagesInFlight, 1, "the first delivery is void");
    received[0]?.ack(); // from the old connection: dropped
    assert.equal(c.status.messagesInFlight, 1);
    received[1]?.ack();
    assert.equal(c.status.messagesInFlight, 0);
    assert.deepEqual(payloads(received), ["1", "1"]);
    await c.drain();
  });
});

describe("the MQTT consumer, against a broker that refuses the subscription", () => {
  // Mosquitto 2.0's acl_file never refuses a subscription: it grants it and then delivers nothing
  // that the ACL denies (checked with 2.0.11, MQTT 3.1.1 and 5). aedes, our embedded broker, does
  // refuse one (SUBACK 128) through its authorizeSubscribe hook; so does Mosquitto with a plugin.
  let broker: InProcessBroker;
  before(async () => {
    broker = await startAedes({
      authorizeSubscribe: (_client, subscription, done) =>
        done(null, subscription.topic === "fan/secret" ? null : subscription),
    });
  });
  after(() => broker.close());

  it("rejects start with the reason, reports it, and does not hang", async () => {
    const { consumer: c } = recordingConsumer(broker.url, "refused", ["fan/open", "fan/secret"]);
    await assert.rejects(
      c.start(),
      /the broker refused the subscription to fan\/secret \(Subscribe error: Unspecified error\)/,
    );
    assert.equal(c.healthy, false);
    assert.match(c.status.error ?? "", /refused the subscription to fan\/secret/);
    await c.close();
  });
});

describe("the functions' publisher", () => {
  let broker: InProcessBroker;
  let client: MqttClient;
  before(async () => {
    broker = await startAedes();
    client = await mqtt.connectAsync(broker.url, { clientId: "publisher-test", reconnectPeriod: 50 });
  });
  afterEach(() => broker.release());
  after(async () => {
    await client.endAsync(true);
    await broker.close();
  });

  it("resolves only once the broker acknowledged every publish; a subscriber then gets them all, in order", async () => {
    const subscriber = await Collector.start(broker.url, ["t/ok"]);
    try {
      broker.hold("t/ok"); // the broker takes the publishes and answers none yet
      let settled = false;
      const publishing = new Publisher(client)
        .publish("t/ok", [{ n: 1 }, { n: 2 }], new Deadline(5_000, "test"))
        .finally(() => (settled = true));
      await eventually("a publish with the broker", () => broker.held >= 1);
      assert.equal(settled, false, "not resolved before the broker acknowledged");
      broker.release();
      await publishing;
      assert.deepEqual(await subscriber.waitFor("t/ok", 2), [{ n: 1 }, { n: 2 }]);
    } finally {
      await subscriber.stop();
    }
  });

  it("fails at once while the broker is unreachable when told not to wait (health: its outbox keeps the transitions)", async () => {
    const offline = await mqtt.connectAsync(broker.url, { clientId: "publisher-offline", reconnectPeriod: 0 });
    const publisher = new Publisher(offline, { waitForConnection: false });
    await offline.endAsync();
    await assert.rejects(
      publisher.publish("t/down", [{ n: 1 }], new Deadline(60_000, "test")),
      (e: unknown) =>
        e instanceof PublishFailedError &&
        e.status === 503 &&
        /the broker is unreachable; not publishing 1 messages to t\/down/.test(e.message),
    );
  });
});
