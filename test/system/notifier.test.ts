import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { AlarmTransition } from "../../lib/domain/health.js";
import { createLogger } from "../../lib/infra/log.js";
import { readNotifierConfig } from "../../notifier/config.js";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../../lib/nats/health-events.js";
import { readDeadLetters, readQueues, redriveDeadLetters, type StoredDeadLetter } from "../../notifier/dead-letters.js";
import { Notifier } from "../../notifier/notifier.js";
import {
  NOTIFIER_STREAM,
  NOTIFIER_STREAM_MAX_BYTES,
  queueConsumerName,
  redriveConsumerName,
  redriveSubject,
} from "../../notifier/streams.js";
import { deliveryKey, webhookTargetId } from "../../notifier/webhook.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { HealthEventsPublisher, makeTransition } from "../support/notifier-events.js";
import { validSignature, WebhookReceiver } from "../support/webhook-receiver.js";

const SECRET = "a-test-secret-of-at-least-16-chars";

// The notifier as a service in this process, against a real nats-server and real HTTP receivers;
// transitions are appended to FAN_HEALTH_EVENTS as health appends them. Counts and orders only.
describe("the notifier's webhooks (real nats-server, real HTTP receivers)", { timeout: 120_000 }, () => {
  let nats: TestNats;
  let publisher: HealthEventsPublisher;
  let secrets: string;
  const running: Notifier[] = [];
  const receivers: WebhookReceiver[] = [];

  beforeEach(async () => {
    nats = await startNats();
    publisher = await HealthEventsPublisher.connect(nats.url);
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-notifier-secrets-"));
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((n) => n.close()));
    await Promise.all(receivers.splice(0).map((r) => r.stop()));
    await publisher.close();
    await nats.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  async function receiver(path?: string): Promise<WebhookReceiver> {
    const r = await WebhookReceiver.start(path);
    receivers.push(r);
    return r;
  }

  /**
   * A notifier sending to `urls`, not started; its log lines go to `lines` when given (as JSON
   * records), else to TEST_LOG's level.
   */
  function unstarted(
    urls: string[],
    env: Record<string, string> = {},
    lines?: Array<Record<string, unknown>>,
  ): Notifier {
    const config = readNotifierConfig({
      NATS_URL: nats.url,
      NOTIFY_WEBHOOK_URL: urls.join(","),
      NOTIFY_WEBHOOK_SECRET: SECRET,
      NOTIFIER_PORT: "0",
      HEALTH_HOST: "127.0.0.1",
      SECRET_MOUNT_PATH: secrets,
      PAGE_URL: "http://fanwatch.example:8080/",
      ...env,
    });
    const log =
      lines === undefined
        ? createLogger("notifier", process.env.TEST_LOG ?? "silent")
        : createLogger("notifier", "debug", (line) => void lines.push(JSON.parse(line) as Record<string, unknown>));
    const n = new Notifier(config, log, { refreshMs: 200 });
    running.push(n);
    return n;
  }

  /** A notifier sending to `urls`, started, its consumers made (so that what is published next is its to send). */
  async function notifier(urls: string[], env: Record<string, string> = {}): Promise<Notifier> {
    const n = unstarted(urls, env);
    await n.start();
    await eventually("the notifier's queues to run", () => n.running);
    return n;
  }

  /** Runs `work` with a JetStream manager of its own connection. */
  async function withJsm<T>(work: (jsm: JetStreamManager, js: JetStreamClient) => Promise<T>): Promise<T> {
    // A refused connection alone would not say that the server crashed, nor how.
    if (nats.exited !== undefined) throw new Error(nats.exited);
    const nc = await connect({ servers: nats.url });
    try {
      return await work(await jetstreamManager(nc), jetstream(nc));
    } finally {
      await nc.close();
    }
  }

  async function publish(...transitions: AlarmTransition[]): Promise<void> {
    for (const t of transitions) await publisher.publish(t);
  }

  async function metric(n: Notifier, name: string, target: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${n.port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`target="${target}"`));
    return line === undefined ? NaN : Number(line.split(" ").at(-1));
  }

  function deadLetters(site = "local"): Promise<StoredDeadLetter[]> {
    return withJsm((jsm) => readDeadLetters(jsm, site));
  }

  /** What the receiver took, every request, repeats included. */
  function takenIds(hook: WebhookReceiver): string[] {
    return hook.delivered.map((r) => String(r.headers["x-fanwatch-delivery"]));
  }

  it("sends one signed body per transition, with the transition id as X-Fanwatch-Delivery, its model and a link to the fan", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    // The warning names the model that raised it (health's `model`); the body carries it as it came.
    const model = "fan-0123456789abcdef";
    const sent = [
      makeTransition("fan 7/α"),
      { ...makeTransition("3", "warning"), model },
      makeTransition("3", "cleared"),
    ];
    await publish(...sent);
    const got = await hook.waitForDelivered(3);
    assert.equal(got.length, 3);
    got.forEach((request, i) => {
      const t = sent[i] as AlarmTransition;
      assert.ok(validSignature(request, SECRET), `the signature of ${t.id} checks out`);
      assert.ok(!validSignature(request, `${SECRET}x`), "and does not with another key");
      // The id as it is, but for what a header cannot carry (the α of this fan), percent-encoded.
      assert.equal(request.headers["x-fanwatch-delivery"], deliveryKey(t.id));
      assert.equal(decodeURIComponent(String(request.headers["x-fanwatch-delivery"])), t.id);
      assert.equal(request.headers["content-type"], "application/json");
      assert.match(String(request.headers["user-agent"]), /^fanwatch-notifier/);
      assert.deepEqual(request.json, {
        ...t,
        link: `http://fanwatch.example:8080/?fan=${encodeURIComponent(t.deviceID)}`,
      });
    });
    assert.equal((got[1]?.json as { model?: string }).model, model);
    const id = webhookTargetId(hook.url);
    await eventually("the sent counter", async () => (await metric(n, "fanwatch_notifications_sent_total", id)) === 3);
    assert.equal(await metric(n, "fanwatch_notifications_pending", id), 0);
    assert.equal(await metric(n, "fanwatch_notifications_oldest_pending_seconds", id), 0);
  });

  it("does not send muted transitions, and counts them as skipped", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    const shelved = makeTransition("5", "alarm", { muted: "shelved" });
    const inMaintenance = makeTransition("6", "warning", { muted: "maintenance" });
    const after = makeTransition("5", "resumed");
    await publish(shelved, inMaintenance, after);
    // One queue, in stream order: once the last is delivered, the two before it were handled.
    await hook.waitForDelivered(1);
    assert.deepEqual(hook.deliveryIds, [after.id]);
    assert.equal(hook.requests.length, 1);
    await eventually(
      "two skipped",
      async () => (await metric(n, "fanwatch_notifications_skipped_total", webhookTargetId(hook.url))) === 2,
    );
  });

  it("sends nothing of the history on its first start, and everything from then on", async () => {
    const old = [makeTransition("1"), makeTransition("2")];
    await publish(...old);
    const hook = await receiver();
    await notifier([hook.url]);
    const fresh = makeTransition("1", "cleared");
    await publish(fresh);
    await hook.waitForDelivered(1);
    assert.deepEqual(hook.deliveryIds, [fresh.id]);
  });

  it("gives two webhooks everything each, and one that is down does not hold up the other", async () => {
    const up = await receiver("/a");
    const down = await receiver("/b");
    await notifier([up.url, down.url]);
    await down.stop();
    const sent = [makeTransition("1"), makeTransition("2"), makeTransition("3", "warning")];
    await publish(...sent);
    await up.waitForDelivered(3);
    assert.deepEqual(
      up.deliveryIds,
      sent.map((t) => t.id),
    );
    assert.equal(down.requests.length, 0, "the one that is down got nothing yet");
    await down.listen();
    await down.waitForDelivered(3);
    assert.deepEqual(
      down.deliveryIds,
      sent.map((t) => t.id),
    );
  });

  it("retries a receiver that is down, then delivers each transition once, in order", async () => {
    // History from before the notifier's first start: neither sent nor counted as pending.
    const historyAt = Date.now();
    await publish(makeTransition("fan-0"));
    await eventually("the history to be more than 2 s old", () => Date.now() - historyAt > 2_000, 5_000);
    const hook = await receiver();
    const n = await notifier([hook.url]);
    const id = webhookTargetId(hook.url);
    await hook.stop();
    const sent = Array.from({ length: 5 }, (_, i) => makeTransition(`fan-${i % 2}`, i % 2 === 0 ? "alarm" : "warning"));
    await publish(...sent);
    await eventually("failed attempts counted", async () => {
      const text = await (await fetch(`http://127.0.0.1:${n.port}/metrics`)).text();
      return /fanwatch_notifications_failed_total\{[^}]*reason="connection"[^}]*\} [1-9]/.test(text);
    });
    await eventually(
      "the pending transitions in the metrics",
      async () => (await metric(n, "fanwatch_notifications_pending", id)) === 5,
    );
    await eventually("the oldest pending age in the metrics", async () => {
      const oldest = await metric(n, "fanwatch_notifications_oldest_pending_seconds", id);
      // Older than nothing, younger than the history (which the queue never had).
      return oldest > 0 && oldest < (Date.now() - historyAt) / 1000 - 1;
    });
    await hook.listen();
    await hook.waitForDelivered(5);
    assert.deepEqual(
      hook.deliveryIds,
      sent.map((t) => t.id),
    );
    assert.equal(hook.delivered.length, 5, "each once, and nothing of the history");
    await eventually("nothing pending", async () => (await metric(n, "fanwatch_notifications_pending", id)) === 0);
  });

  it("keeps a transition the receiver refuses (4xx) as a dead letter at once, and goes on with the next", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    const id = webhookTargetId(hook.url);
    hook.mode = 400;
    const refused = makeTransition("9");
    await publish(refused);
    await hook.waitForRequests(1);
    await eventually("the dead letter", async () => (await deadLetters()).length === 1);
    hook.mode = 200;
    const next = makeTransition("9", "cleared");
    await publish(next);
    await hook.waitForDelivered(1);
    assert.deepEqual(hook.deliveryIds, [next.id]);
    assert.equal(hook.requests.length, 2, "the refused one was tried once");
    const [dead] = await deadLetters();
    assert.equal(dead?.letter.target, id);
    assert.equal(dead?.letter.transition?.id, refused.id);
    assert.equal(dead?.letter.attempts, 1);
    assert.match(dead?.letter.lastError ?? "", /answered 400/);
    assert.equal(await metric(n, "fanwatch_notifications_dead_total", id), 1);
  });

  it("keeps a message that is not a transition as a dead letter and delivers the rest", async () => {
    const hook = await receiver();
    await notifier([hook.url]);
    await publisher.publishRaw("local", "4", "{not json");
    await publisher.publishRaw("local", "4", JSON.stringify({ deviceID: "4", event: "exploded" }));
    const good = makeTransition("4");
    await publish(good);
    await hook.waitForDelivered(1);
    assert.deepEqual(hook.deliveryIds, [good.id]);
    const letters = await eventuallyValue("two dead letters", deadLetters, (l) => l.length === 2);
    for (const { letter } of letters) {
      assert.equal(letter.transition, null);
      assert.match(letter.lastError, /not a transition/);
    }
    assert.equal(letters[0]?.letter.payload, "{not json");
  });

  it("loses nothing when NATS restarts mid-stream", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    const before = Array.from({ length: 4 }, (_, i) => makeTransition(`fan-${i}`));
    await publish(...before);
    await hook.waitForDelivered(2);
    await nats.restart();
    const afterRestart = Array.from({ length: 4 }, (_, i) => makeTransition(`fan-${i}`, "cleared"));
    await publish(...afterRestart);
    // A delivery in flight when NATS went away may be sent again (its acknowledgement was lost): what
    // counts is that every transition arrives, in order; the delivery id lets a receiver drop repeats.
    await eventually("8 distinct deliveries", () => hook.deliveryIds.length >= 8, 60_000);
    assert.deepEqual(
      hook.deliveryIds,
      [...before, ...afterRestart].map((t) => t.id),
    );
    await eventually("the notifier ready again", () => n.running);
  });

  it("answers /healthz 503 while NATS is away and 200 once it is back; /livez throughout", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    const status = async (path: string) => (await fetch(`http://127.0.0.1:${n.port}${path}`)).status;
    assert.equal(await status("/healthz"), 200);
    const body = (await (await fetch(`http://127.0.0.1:${n.port}/healthz`)).json()) as {
      nats: string;
      targets: Array<{ id: string; description: string }>;
    };
    assert.equal(body.nats, "connected");
    assert.deepEqual(
      body.targets.map((t) => t.id),
      [webhookTargetId(hook.url)],
    );
    assert.ok(!body.targets[0]?.description.includes("/hook"), "the URL's path is not shown");
    await nats.halt();
    await eventually("/healthz 503", async () => (await status("/healthz")) === 503);
    assert.equal(await status("/livez"), 200);
    await nats.restart();
    await eventually("/healthz 200", async () => (await status("/healthz")) === 200, 60_000);
  });

  it("two notifiers share a target's queue: each transition once, in order, and one stopping hands over", async () => {
    const hook = await receiver();
    const one = await notifier([hook.url]);
    await notifier([hook.url, hook.url]); // the same URL twice is one target
    const sent = Array.from({ length: 6 }, (_, i) => makeTransition(`fan-${i % 3}`));
    await publish(...sent.slice(0, 3));
    await hook.waitForDelivered(3);
    await one.drain();
    await publish(...sent.slice(3));
    await hook.waitForDelivered(6);
    assert.deepEqual(
      hook.deliveryIds,
      sent.map((t) => t.id),
    );
    assert.equal(hook.requests.length, 6, "none twice");
  });

  it("close mid-send hands the message back: the next notifier sends it again, same delivery id", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    hook.mode = "hold";
    const inFlight = makeTransition("11");
    await publish(inFlight);
    await hook.waitForRequests(1);
    await n.close();
    hook.mode = 200;
    await notifier([hook.url]);
    await hook.waitForDelivered(1);
    assert.deepEqual(hook.deliveryIds, [inFlight.id]);
    assert.equal(hook.requests.length, 2, "the cut-off request, then the one taken");
  });

  it("drain lets the delivery in flight finish and acknowledges it", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    hook.mode = "hold";
    const first = makeTransition("8");
    await publish(first);
    await hook.waitForRequests(1);
    const drained = n.drain();
    hook.release(200);
    await drained;
    // A notifier started afterwards does not send it again: it was acknowledged.
    const again = await notifier([hook.url]);
    const next = makeTransition("8", "cleared");
    await publish(next);
    await hook.waitForDelivered(2);
    assert.deepEqual(hook.deliveryIds, [first.id, next.id]);
    assert.equal(hook.requests.length, 2);
    await again.close();
  });
  it("two sites sharing one NATS each have their own queue: a webhook both send to gets each site's transitions once", async () => {
    const hook = await receiver();
    // "plant" and "plant-a": one site's name is the start of the other's consumer names.
    await notifier([hook.url], { SITE: "plant" });
    await notifier([hook.url], { SITE: "plant-a" });
    const sent = [
      makeTransition("1", "alarm", { site: "plant" }),
      makeTransition("1", "alarm", { site: "plant-a" }),
      makeTransition("2", "warning", { site: "plant-a" }),
      makeTransition("2", "warning", { site: "plant" }),
    ];
    await publish(...sent);
    await hook.waitForDelivered(4);
    assert.deepEqual(takenIds(hook).sort(), sent.map((t) => t.id).sort(), "each once");
    for (const site of ["plant", "plant-a"])
      assert.deepEqual(
        hook.delivered.filter((r) => r.json.site === site).map((r) => r.headers["x-fanwatch-delivery"]),
        sent.filter((t) => t.site === site).map((t) => t.id),
        `${site}'s in order`,
      );
    const id = webhookTargetId(hook.url);
    for (const site of ["plant", "plant-a"]) {
      const queues = await withJsm((jsm) => readQueues(jsm, site));
      assert.deepEqual(queues, [{ target: id, pending: 0, oldestPendingSeconds: 0, orphan: false }], site);
    }
  });

  it("never reads a queue consumer whose filter is not its site's: it is made anew", async () => {
    const hook = await receiver();
    const id = webhookTargetId(hook.url);
    // Made by hand (or by another version) under this site's name, but reading another site.
    await withJsm((jsm) =>
      jsm.consumers.add(HEALTH_EVENTS_STREAM, {
        durable_name: queueConsumerName("local", id),
        filter_subject: siteEventSubjects("elsewhere"),
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: 1,
      }),
    );
    await publish(makeTransition("3", "alarm", { site: "elsewhere" }));
    await notifier([hook.url]);
    const own = makeTransition("3");
    await publish(own);
    await hook.waitForDelivered(1);
    assert.deepEqual(takenIds(hook), [own.id], "nothing of the other site");
    const info = await withJsm((jsm) => jsm.consumers.info(HEALTH_EVENTS_STREAM, queueConsumerName("local", id)));
    assert.equal(info.config.filter_subject, siteEventSubjects("local"));
  });

  it("does not send what is older than NOTIFY_MAX_AGE when read: a webhook configured again gets a dead letter, not the old transition", async () => {
    const hook = await receiver();
    const first = await notifier([hook.url], { NOTIFY_MAX_AGE: "2s" });
    await first.close(); // the webhook taken out of the configuration: its queue stays at its place
    const missed = makeTransition("5");
    const publishedAt = Date.now();
    await publish(missed);
    await eventually("the missed transition to be older than NOTIFY_MAX_AGE", () => Date.now() - publishedAt > 3_000);
    await notifier([hook.url], { NOTIFY_MAX_AGE: "2s" }); // and put back
    const fresh = makeTransition("5", "cleared");
    await publish(fresh);
    await hook.waitForDelivered(1);
    assert.deepEqual(takenIds(hook), [fresh.id]);
    assert.equal(hook.requests.length, 1, "the old one was not even tried");
    // In stream order: the old one was handled (buried, then acknowledged) before the fresh one was read.
    const [dead, ...more] = await deadLetters();
    assert.equal(more.length, 0);
    assert.equal(dead?.letter.transition?.id, missed.id);
    assert.equal(dead?.letter.attempts, 0);
    assert.match(dead?.letter.lastError ?? "", /not sent: .* old when read, older than NOTIFY_MAX_AGE \(2s\)/);
  });

  it("makes FAN_NOTIFICATIONS again when it was deleted: a dead letter still lands, and its redrive is delivered", async () => {
    const hook = await receiver();
    const n = await notifier([hook.url]);
    await withJsm((jsm) => jsm.streams.delete(NOTIFIER_STREAM));
    hook.mode = 400;
    const refused = makeTransition("12");
    await publish(refused);
    const letters = await eventuallyValue(
      "the dead letter",
      () => deadLetters(),
      (l) => l.length === 1,
      30_000,
    );
    assert.equal(letters[0]?.letter.transition?.id, refused.id);
    hook.mode = 200;
    await withJsm((jsm, js) => redriveDeadLetters(js, jsm, "local", letters));
    await hook.waitForDelivered(1);
    assert.deepEqual(takenIds(hook), [refused.id]);
    await eventually("the notifier ready", () => n.running);
  });

  it("deletes a redriven notification once delivered: a redrive consumer made anew sends nothing twice", async () => {
    const hook = await receiver();
    await notifier([hook.url]);
    const id = webhookTargetId(hook.url);
    /** A transition refused into a dead letter, then redriven and delivered. */
    const refuseThenRedrive = async (t: AlarmTransition, delivered: number) => {
      hook.mode = 400;
      await publish(t);
      const letters = await eventuallyValue(
        "its dead letter",
        () => deadLetters(),
        (l) => l.length === 1,
      );
      hook.mode = 200;
      await withJsm((jsm, js) => redriveDeadLetters(js, jsm, "local", letters));
      await hook.waitForDelivered(delivered);
    };
    const first = makeTransition("13");
    await refuseThenRedrive(first, 1);
    const left = () =>
      withJsm((jsm) => jsm.streams.getMessage(NOTIFIER_STREAM, { last_by_subj: redriveSubject("local", id) }));
    await eventually("the redriven message deleted", async () => (await left()) === null);
    // Deleted by hand: made anew, it starts at the first message left (deliver policy "all").
    await withJsm((jsm) => jsm.consumers.delete(NOTIFIER_STREAM, redriveConsumerName("local", id)));
    const second = makeTransition("14");
    await refuseThenRedrive(second, 2);
    assert.deepEqual(takenIds(hook), [first.id, second.id]);
  });

  it("closed while it starts, it starts nothing more: no target's state, no queue's consumer", async () => {
    const hook = await receiver();
    const alertmanager = await receiver("/alertmanager");
    const n = unstarted([hook.url], { ALERTMANAGER_URL: alertmanager.url });
    // JetStream's API requests, seen as NATS sees them: close() goes out the moment the notifier
    // asks for its own stream, the step before it starts the Alertmanager target and the queues.
    const watcher = await connect({ servers: nats.url });
    const afterClose: string[] = [];
    let closing: Promise<void> | undefined;
    watcher.subscribe("$JS.API.>", {
      callback: (_error, m) => {
        if (closing !== undefined) afterClose.push(m.subject);
        else if (m.subject === `$JS.API.STREAM.INFO.${NOTIFIER_STREAM}`) closing = n.close();
      },
    });
    await watcher.flush();
    try {
      await n.start();
      await eventually("close() called", () => closing !== undefined);
      await closing;
      await watcher.flush();
      assert.deepEqual(
        afterClose.filter((subject) => /KV_fan_alerts|CONSUMER/.test(subject)),
        [],
        `requested after close(): ${afterClose.join(", ")}`,
      );
      assert.equal(n.running, false);
    } finally {
      await watcher.close();
    }
  });

  it("gives its stream a size bound (1 GiB, the oldest discarded), also to one made before without it", async () => {
    await withJsm((jsm) =>
      jsm.streams.add({
        name: NOTIFIER_STREAM,
        subjects: ["fanwatch.notify.>"],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
      }),
    );
    const hook = await receiver();
    await notifier([hook.url]);
    const { config } = await withJsm((jsm) => jsm.streams.info(NOTIFIER_STREAM));
    assert.equal(config.max_bytes, NOTIFIER_STREAM_MAX_BYTES);
    assert.equal(NOTIFIER_STREAM_MAX_BYTES, 1024 ** 3);
    assert.equal(config.discard, DiscardPolicy.Old);
    assert.equal(config.num_replicas, 1);
  });

  it("makes its streams with NATS_KV_REPLICAS copies: a single nats-server refuses 2, and the notifier says so", async () => {
    await withJsm((jsm) => jsm.streams.delete(HEALTH_EVENTS_STREAM));
    const hook = await receiver();
    const lines: Array<Record<string, unknown>> = [];
    const n = unstarted([hook.url], { NATS_KV_REPLICAS: "2" }, lines);
    await n.start();
    const failed = await eventuallyValue(
      "the setup to fail",
      () => lines.find((l) => l.event === "setup_failed"),
      (l) => l !== undefined,
    );
    assert.match(String(failed?.err), /replicas/i);
    assert.equal(n.running, false);
  });
});
