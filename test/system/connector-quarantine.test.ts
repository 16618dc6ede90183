import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  JetStreamQuarantine,
  QUARANTINE_MAX_AGE_MS,
  QUARANTINE_PREFIX,
  QUARANTINE_STREAM,
} from "../../connectors/mqtt/quarantine.js";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { createLogger } from "../../lib/infra/log.js";
import { startNats, type TestNats } from "../support/nats.js";

const MAX_BYTES = 8 * 1024 * 1024;

// FAN_QUARANTINE itself, against a real nats-server: its bounds, and what a failed release leaves.
describe("FAN_QUARANTINE", { timeout: 60_000 }, () => {
  let nats: TestNats;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  async function quarantine(): Promise<JetStreamQuarantine> {
    const q = new JetStreamQuarantine({
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      maxPerFan: 100,
      maxBytes: MAX_BYTES,
      replicas: 1,
      log: createLogger("test", "silent"),
    });
    await q.start();
    return q;
  }

  it("bounds an existing unbounded stream by bytes and age, dropping the oldest", async () => {
    const jsm = await jetstreamManager(nc);
    // As an earlier connector made it: a per-fan bound only.
    await jsm.streams.add({
      name: QUARANTINE_STREAM,
      subjects: [`${QUARANTINE_PREFIX}*`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs_per_subject: 100,
    });
    await quarantine();
    const { config } = await jsm.streams.info(QUARANTINE_STREAM);
    assert.equal(config.max_bytes, MAX_BYTES);
    assert.equal(config.max_age, nanos(QUARANTINE_MAX_AGE_MS));
    assert.equal(config.discard, DiscardPolicy.Old);
    assert.equal(config.max_msgs_per_subject, 100);
  });

  it("gives a reading back at once when its delivery fails, so the next release gets it", async () => {
    const q = await quarantine();
    await q.hold("nak-1", { topic: "fan/messages/nak-1", payload: Buffer.from('{"deviceID":"nak-1"}') });
    const stop = new AbortController();
    await assert.rejects(
      q.release("nak-1", () => Promise.reject(new Error("the functions are down")), stop.signal),
      /the functions are down/,
    );
    // Given back, not waiting out the 30 s ack wait: the consumer hands it out again right away.
    const consumer = await jetstream(nc).consumers.get(QUARANTINE_STREAM, "release_nak-1");
    const again = await consumer.next({ expires: 5_000 });
    assert.notEqual(again, null, "the reading whose delivery failed is not given out again");
    again?.nak();
    const delivered: string[] = [];
    const released = await q.release(
      "nak-1",
      async (reading) => void delivered.push(reading.payload.toString()),
      stop.signal,
    );
    assert.equal(released, 1);
    assert.deepEqual(delivered, ['{"deviceID":"nak-1"}']);
  });
});

describe("QUARANTINE_MAX_BYTES", () => {
  it("is 64 MiB unless set, and the stream's byte bound when set", () => {
    assert.equal(readConnectorConfig({}).gate.maxQuarantineBytes, 64 * 1024 * 1024);
    assert.equal(readConnectorConfig({ QUARANTINE_MAX_BYTES: "8388608" }).gate.maxQuarantineBytes, 8 * 1024 * 1024);
    assert.throws(() => readConnectorConfig({ QUARANTINE_MAX_BYTES: "10" }), /QUARANTINE_MAX_BYTES/);
  });
});
