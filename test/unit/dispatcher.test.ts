import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import type { Target } from "../../connectors/mqtt/directory.js";
import { Dispatcher, type Delivery } from "../../connectors/mqtt/dispatcher.js";
import type { Outcome } from "../../connectors/mqtt/invoker.js";
import { createConnectorMetrics } from "../../connectors/mqtt/metrics.js";
import { createLogger } from "../../lib/infra/log.js";
import { ManualClock } from "../support/manual-clock.js";

/**
 * Lets every callback that can run, run. The dispatcher and its stand-ins work in promise callbacks
 * only (no I/O), so once this resolves everything that follows from the last step has happened.
 */
const settled = () => new Promise((resolve) => setImmediate(resolve));

/** One attempt to invoke a function, waiting for the test to answer it. */
interface Call {
  name: string;
  topic: string;
  body: string;
  answered: boolean;
  answer(outcome: Outcome): void;
}

const answered: Outcome = { kind: "answered", body: "" };
const down: Outcome = { kind: "failed", reason: "predict: connect ECONNREFUSED" };

/** A received message as the connector hands it over, counting what the dispatcher did with it. */
class Message {
  readonly payload: Buffer;
  /** False once the broker connection it came on closed. */
  current = true;
  /** Calls of done(): how many targets finished with it. */
  acknowledged = 0;
  readonly rejections: string[] = [];
  constructor(
    readonly topic: string,
    payload: object | string,
  ) {
    this.payload = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
  }
}

function delivery(m: Message): Delivery {
  return {
    topic: m.topic,
    payload: m.payload,
    get current() {
      return m.current;
    },
    done: () => void m.acknowledged++,
    reject: (reason) => void m.rejections.push(reason),
  };
}

/**
 * A dispatcher with a stand-in for the functions (every attempt waits for the test's answer,
 * unless `auto` answers it), a stand-in for the reply publisher, and a clock the test moves.
 */
function dispatcher(env: Record<string, string> = {}, auto?: (call: Call) => Outcome | undefined) {
  const clock = new ManualClock();
  const calls: Call[] = [];
  const circuits: string[] = [];
  const replyTrouble: Array<string | undefined> = [];
  const replies: Array<{ topic: string; payload: string }> = [];
  let publish = async (topic: string, payload: string): Promise<void> => void replies.push({ topic, payload });
  const metrics = createConnectorMetrics({ inFlight: () => 0, pending: () => 0, held: () => 0 });
  const config = readConnectorConfig({ batch_wait_ms: "60000", ...env });
  const d = new Dispatcher(config, {
    publish: (topic, payload) => publish(topic, payload),
    metrics,
    log: createLogger("dispatcher-test", "silent"),
    clock,
    onCircuit: (name, open, reason) => circuits.push(open ? `${name} open: ${reason}` : `${name} closed`),
    onReplyTrouble: (_name, reason) => replyTrouble.push(reason),
    invoker: {
      invoke: (target, topic, body) =>
        new Promise<Outcome>((resolve) => {
          const call: Call = {
            name: target.name,
            topic,
            body: body.toString(),
            answered: false,
            answer: (outcome) => {
              call.answered = true;
              resolve(outcome);
            },
          };
          calls.push(call);
          const outcome = auto?.(call);
          if (outcome !== undefined) call.answer(outcome);
        }),
      close: () => {},
    },
  });
  return {
    d,
    clock,
    calls,
    circuits,
    replyTrouble,
    replies,
    metrics,
    /** Attempts sent and not answered yet. */
    open: () => calls.filter((c) => !c.answered),
    setPublish: (p: typeof publish) => (publish = p),
    send(target: Target, messages: Message[]): void {
      for (const m of messages) d.enqueue(target, delivery(m));
    },
  };
}

const predict: Target = { name: "predict", replyTopic: undefined };
const audit: Target = { name: "audit", replyTopic: undefined };
const readings = (topic: string, count: number) =>
  Array.from({ length: count }, (_, n) => new Message(topic, { deviceID: String(n) }));

describe("the connector's dispatcher", () => {
  it("batches per function and source topic (X-Topic names every message's), as a JSON array of the payloads", async () => {
    const t = dispatcher({ batch_size: "3" }, () => answered);
    const east = readings("fan/east", 3);
    const west = readings("fan/west", 3);
    t.send(predict, [east[0]!, west[0]!, east[1]!, west[1]!, east[2]!, west[2]!]);
    await settled();
    assert.deepEqual(
      t.calls.map((c) => [c.topic, c.body]),
      [
        ["fan/east", '[{"deviceID":"0"},{"deviceID":"1"},{"deviceID":"2"}]'],
        ["fan/west", '[{"deviceID":"0"},{"deviceID":"1"},{"deviceID":"2"}]'],
      ],
    );
    assert.deepEqual(
      [...east, ...west].map((m) => m.acknowledged),
      [1, 1, 1, 1, 1, 1],
      "each acknowledged once",
    );
  });

  it("with batch size 1 sends each payload as it came, as the official connector does", async () => {
    const t = dispatcher({ batch_size: "1" }, () => answered);
    t.send(predict, [new Message("sensors/a/temp", "not even json")]);
    await settled();
    assert.deepEqual(
      t.calls.map((c) => c.body),
      ["not even json"],
    );
  });

  it("acknowledges messages only once the function answered and its answer is on the reply topic", async () => {
    const t = dispatcher({ batch_size: "2" });
    let published = (): void => {};
    t.setPublish(async (topic, payload) => {
      await new Promise<void>((resolve) => (published = resolve));
      t.replies.push({ topic, payload });
    });
    const messages = readings("fan/messages", 2);
    t.send({ name: "echo", replyTopic: "replies" }, messages);
    await settled();
    assert.deepEqual(
      messages.map((m) => m.acknowledged),
      [0, 0],
      "not before the answer",
    );
    t.calls[0]?.answer({ kind: "answered", body: '{"scored":2}' });
    await settled();
    assert.deepEqual(
      messages.map((m) => m.acknowledged),
      [0, 0],
      "not before the broker took the reply",
    );
    published();
    await settled();
    assert.deepEqual(t.replies, [{ topic: "replies", payload: '{"scored":2}' }]);
    assert.deepEqual(
      messages.map((m) => m.acknowledged),
      [1, 1],
    );
  });

  it("publishes a reply again, on the clock, until the broker takes it; says why meanwhile and when it works again", async () => {
    const t = dispatcher({ batch_size: "1" }, () => ({ kind: "answered", body: "ok" }));
    let refusals = 2;
    t.setPublish(async (topic, payload) => {
      if (refusals-- > 0) throw new Error("the broker did not acknowledge within 10000 ms");
      t.replies.push({ topic, payload });
    });
    const [message] = readings("fan/messages", 1);
    t.send({ name: "echo", replyTopic: "replies" }, [message!]);
    await settled();
    assert.equal(message?.acknowledged, 0);
    assert.deepEqual(t.replyTrouble, [
      "cannot publish echo's answer to replies: the broker did not acknowledge within 10000 ms",
    ]);
    t.clock.advance(); // the retry's backoff
    await settled();
    t.clock.advance();
    await settled();
    assert.deepEqual(t.replies, [{ topic: "replies", payload: "ok" }]);
    assert.equal(message?.acknowledged, 1);
    assert.equal(t.replyTrouble.at(-1), undefined, "the trouble is over");
    assert.equal(t.calls.length, 1, "the function is not invoked again for its reply");
  });

  it("splits a batch the function refuses until the bad message is alone: only it is rejected, the others delivered once", async () => {
    const t = dispatcher({ batch_size: "8" }, (call) =>
      call.body.includes('"bad"') ? { kind: "rejected", reason: "predict answered 400: bad reading" } : answered,
    );
    const messages = Array.from(
      { length: 8 },
      (_, n) => new Message("fan/messages", n === 5 ? { n, bad: true } : { n }),
    );
    t.send(predict, messages);
    await settled();
    assert.deepEqual(
      messages.map((m) => [m.acknowledged, m.rejections]),
      messages.map((_, n) => (n === 5 ? [0, ["predict answered 400: bad reading"]] : [1, []])),
    );
    // 8 → 4 (delivered) + 4 → 2 + 2 (delivered) → 1 (delivered) + 1 (the bad one).
    assert.deepEqual(
      t.calls.map((c) => (JSON.parse(c.body) as unknown[]).length),
      [8, 4, 4, 2, 1, 1, 2],
    );
  });

  it("retries an outage on the clock without limit: after `retries` + 1 failures the circuit opens, one probe at a time goes, and an answer closes it", async () => {
    const t = dispatcher({ batch_size: "1", retries: "2" });
    const messages = readings("fan/messages", 3);
    t.send(predict, messages);
    await settled();
    for (const call of t.open()) call.answer(down); // three failures: the threshold
    await settled();
    assert.deepEqual(t.circuits, ["predict open: predict: connect ECONNREFUSED"]);
    for (let probe = 1; probe <= 3; probe++) {
      t.clock.advance(); // the circuit's backoff
      await settled();
      assert.equal(t.open().length, 1, `probe ${probe}: one attempt, not one per batch`);
      if (probe < 3) (t.open()[0] as Call).answer(down);
      await settled();
    }
    (t.open()[0] as Call).answer(answered);
    await settled();
    assert.equal(t.circuits.at(-1), "predict closed");
    for (const call of t.open()) call.answer(answered); // the batches that waited go now
    await settled();
    assert.deepEqual(
      messages.map((m) => [m.acknowledged, m.rejections.length]),
      [
        [1, 0],
        [1, 0],
        [1, 0],
      ],
      "all delivered once, none dead-lettered",
    );
    assert.equal(t.calls.length, 3 + 3 + 2, "three first attempts, three probes, the two batches that waited");
  });

  it("keeps max_inflight batches in flight per replica ready, more as replicas come, never above max_inflight_total", async () => {
    const t = dispatcher({ batch_size: "1", max_inflight: "2", max_inflight_total: "5" });
    t.send(predict, readings("fan/messages", 10));
    await settled();
    assert.equal(t.open().length, 2, "one replica's worth before the replicas are known");
    t.d.setReplicas("predict", 2);
    await settled();
    assert.equal(t.open().length, 4);
    t.d.setReplicas("predict", 3);
    await settled();
    assert.equal(t.open().length, 5, "max_inflight_total");
    assert.deepEqual(t.d.load().get("predict"), { batches: 5, queued: 5, completed: 0 });
    (t.open()[0] as Call).answer(answered);
    await settled();
    assert.equal(t.open().length, 5, "an answer makes room for the next batch");
    assert.deepEqual(t.d.load().get("predict"), { batches: 5, queued: 4, completed: 1 });
  });

  it("takes the functions in turn: one with a backlog does not hold up another", async () => {
    const t = dispatcher({ batch_size: "1", max_inflight: "2", max_inflight_total: "2" });
    t.send(predict, readings("fan/messages", 10));
    t.send(audit, readings("fan/messages", 1));
    await settled();
    for (let i = 0; i < 3 && !t.calls.some((c) => c.name === "audit"); i++) {
      (t.open()[0] as Call).answer(answered);
      await settled();
    }
    assert.ok(
      t.calls.some((c) => c.name === "audit"),
      `audit still waits after ${t.calls.length} of predict's batches`,
    );
    assert.ok((t.d.load().get("predict")?.queued ?? 0) >= 6, "while predict still has most of its backlog");
  });

  it("does not send a batch whose broker connection closed: the broker redelivers its messages", async () => {
    const t = dispatcher({ batch_size: "1" }, () => answered);
    const [message] = readings("fan/messages", 1);
    message!.current = false;
    t.send(predict, [message!]);
    await settled();
    assert.deepEqual([t.calls.length, message?.acknowledged, message?.rejections], [0, 0, []]);
  });

  it("drains: sends what is queued, waits for what is in flight, and leaves a batch waiting out an outage unacknowledged", async () => {
    const t = dispatcher({ batch_size: "10" });
    const [failing] = readings("fan/messages", 1);
    t.send(predict, [failing!]);
    const queued = readings("fan/audit", 2); // fewer than a batch: waiting for batch_wait_ms
    t.send(audit, queued);
    await settled();
    assert.deepEqual(
      t.calls.map((c) => c.name),
      [],
      "nothing full yet",
    );
    let drained = false;
    const draining = t.d.drain().then(() => (drained = true));
    await settled();
    assert.deepEqual(t.calls.map((c) => c.name).sort(), ["audit", "predict"], "everything queued is sent");
    t.calls.find((c) => c.name === "predict")?.answer(down); // its retry waits on the clock, and is cut short
    await settled();
    assert.equal(drained, false, "audit's batch is still in flight");
    t.calls.find((c) => c.name === "audit")?.answer(answered);
    await draining;
    assert.deepEqual(
      queued.map((m) => m.acknowledged),
      [1, 1],
    );
    assert.deepEqual([failing?.acknowledged, failing?.rejections], [0, []], "left for the broker to redeliver");
  });
});
