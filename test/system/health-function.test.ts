import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { decodeKey, encodeKey } from "../../lib/nats/keys.js";
import { AlarmTransitionSchema, type AlarmTransition, type HealthRecord } from "../../lib/domain/health.js";
import type { Prediction } from "../../lib/domain/prediction.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { startNats, type TestNats } from "../support/nats.js";
import { HealthState } from "../../runtime/system/nats.js";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { HEALTH_EVENTS_STREAM } from "../../lib/nats/health-events.js";
import { connect } from "@nats-io/transport-node";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, postJson } from "../support/process.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { pino } from "pino";

async function getFans(url: string, query = ""): Promise<{ fans: HealthRecord[]; counts: Record<string, number> }> {
  const response = await fetch(`${url}${query}`);
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as { fans: HealthRecord[]; counts: Record<string, number> };
}

/** Readings `stepMs` apart from `start` (reading time drives the evaluator's trends and quiet period). */
function predictions(deviceID: string, fault: 0 | 1, count: number, start: number, stepMs = 1_000): Prediction[] {
  return Array.from({ length: count }, (_, i) => ({
    deviceID,
    fault,
    probability: fault === 1 ? 0.97 : 0.02,
    timeStamp: start + i * stepMs,
    ...(fault === 1 ? { cause: "vibration" as const } : {}),
  }));
}

/** The transitions waiting in a fan's outbox, as the bucket holds them. */
async function outboxOf(natsUrl: string, deviceID: string, bucket = "fan_health"): Promise<unknown[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const entry = await (await new Kvm(nc).open(bucket)).get(encodeKey(deviceID));
    return entry === null ? [] : (JSON.parse(entry.string()) as { outbox: unknown[] }).outbox;
  } finally {
    await nc.close();
  }
}

/**
 * Resolves once a fan's alarm sent through `url` arrived on fan/alarm: any transition that process
 * published before it has arrived too (one connection, QoS 1, one subscriber: in order).
 */
async function marker(collector: Collector, url: string, deviceID: string, t0: number): Promise<void> {
  assert.equal((await postJson(url, predictions(deviceID, 1, 20, t0))).status, 200);
  await eventually(`the marker alarm of ${deviceID}`, () =>
    transitionsOf(collector, deviceID).some((t) => t.event === "alarm"),
  );
}

function transitionsOf(collector: Collector, deviceID: string): AlarmTransition[] {
  return collector
    .on("fan/alarm")
    .map((m) => AlarmTransitionSchema.parse(m))
    .filter((t) => t.deviceID === deviceID);
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/_/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

describe("fan keys", () => {
  const ids = [
    "3",
    "fan-17_b",
    "fan.1",
    "a b",
    "hall/7",
    "a=2Eb",
    "=",
    ".",
    "ünïcødé 風扇 🌀",
    "x".repeat(128),
    "🌀".repeat(128),
    "a..b",
    "-",
    "*",
    ">",
  ];

  it("keeps plain IDs readable and encodes every other one into a valid NATS key", () => {
    assert.equal(encodeKey("3"), "3");
    assert.equal(encodeKey("fan-17_b"), "fan-17_b");
    assert.equal(encodeKey("fan.1"), "fan=2E1");
    for (const id of ids) {
      const key = encodeKey(id);
      assert.match(key, /^[-/=.\w]+$/, id);
      assert.ok(!key.startsWith(".") && !key.endsWith("."), id);
      assert.equal(decodeKey(key), id, `round trip of ${id}`);
    }
  });

  it("never maps two IDs to one key, and refuses keys it did not make", () => {
    assert.equal(new Set(ids.map(encodeKey)).size, ids.length);
    assert.notEqual(encodeKey("a.b"), encodeKey("a=2Eb"));
    for (const key of ["=41", "a.b", "=2", "=zz", "", "=C3"]) assert.throws(() => decodeKey(key), RangeError, key);
  });
});

describe("fanwatch start's health state", () => {
  const said: string[] = [];
  const say = (line: string) => void said.push(line);
  const silent = pino({ level: "silent" });
  const started = async (state: HealthState) => {
    await state.start();
    return state;
  };

  it("uses NATS_URL when it is set", async () => {
    const state = await started(
      new HealthState({ NATS_URL: "nats://user:secret@nats.example:4222" }, say, silent, freePort),
    );
    assert.equal(state.natsUrl, "nats://user:secret@nats.example:4222");
    assert.match(said.at(-1) ?? "", /NATS at nats:\/\/nats\.example:4222/);
    assert.ok(!(said.at(-1) ?? "").includes("secret"), "said without the credentials");
    await state.drain();
  });

  it("starts nats-server with JetStream and its data in NATS_STORE_DIR, and stops it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-start-nats-"));
    try {
      const state = await started(new HealthState({ NATS_STORE_DIR: dir }, say, silent, freePort));
      assert.match(state.natsUrl ?? "", /^nats:\/\/127\.0\.0\.1:\d+$/);
      assert.match(said.at(-1) ?? "", new RegExp(`data in ${dir}`));
      assert.ok(existsSync(join(dir, "jetstream")), "JetStream's store is there");
      await state.drain();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps the state in memory and says so when nats-server is not installed", async () => {
    const state = await started(new HealthState({ NATS_SERVER: "/nonexistent/nats-server" }, say, silent, freePort));
    assert.equal(state.natsUrl, undefined);
    assert.match(said.at(-1) ?? "", /health state in memory: not durable/);
  });
});

describe("health function (real nats-server, real Mosquitto)", { timeout: 180_000 }, () => {
  let nats: TestNats;
  let broker: Broker;
  let collector: Collector;
  let env: NodeJS.ProcessEnv;
  let one: HealthProcess;
  let two: HealthProcess;
  const t0 = Date.UTC(2026, 10, 1);

  /**
   * Puts fan `deviceID` in alarm (20 faulty predictions), acknowledged by Ana when `acknowledged`,
   * and resolves once those transitions are on fan/alarm.
   */
  async function alarm(deviceID: string, acknowledged = false): Promise<void> {
    assert.equal((await postJson(one.url, predictions(deviceID, 1, 20, t0))).status, 200);
    if (acknowledged)
      assert.equal((await postJson(one.url, { deviceID, action: "acknowledge", by: "Ana" })).status, 200);
    const events = acknowledged ? ["alarm", "acknowledged"] : ["alarm"];
    await eventually(`fan ${deviceID}'s ${events.join(" and ")} on fan/alarm`, () =>
      events.every((e) => transitionsOf(collector, deviceID).some((t) => t.event === e)),
    );
  }

  // Every test has its own NATS, broker and two health processes: none relies on a fan, an alarm
  // or an acknowledgement another left.
  beforeEach(async () => {
    [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
    collector = await Collector.start(broker.url, ["fan/alarm", "fan/deadletter"]);
    // Unpublished transitions are re-sent after 1 s rather than 15, so that the test need not wait;
    // fans turn silent only in the test of silence.
    env = {
      NATS_URL: nats.url,
      MQTT_URL: broker.url,
      HEALTH_OUTBOX_RESEND_MS: "1000",
      HEALTH_SILENT_CHECK_MS: "200",
      HEALTH_SILENT_AFTER_MS: "3600000",
    };
    [one, two] = await Promise.all([startHealth(env), startHealth(env)]);
  });
  afterEach(async () => {
    await stopHealthProcesses();
    await collector?.stop();
    await Promise.all([nats?.stop(), broker?.stop()]);
  });

  it("evaluates predictions, publishes the alarm once, naming the model that raised it, and lists the fan", async () => {
    const model = "fan-0123456789abcdef";
    const answer = await postJson(
      one.url,
      predictions("7", 1, 20, t0).map((p) => ({ ...p, model })),
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { evaluated: 20, rejected: 0, transitions: 1 });
    const [alarm] = await collector.waitFor("fan/alarm", 1);
    assert.equal(AlarmTransitionSchema.parse(alarm).event, "alarm");
    assert.equal(AlarmTransitionSchema.parse(alarm).model, model);
    const { fans, counts } = await getFans(one.url, "?deviceID=7");
    assert.equal(fans[0]?.state, "alarm");
    assert.equal(fans[0]?.cause, "vibration");
    assert.equal(fans[0]?.model, model);
    assert.equal(await metric(one.url, `health_raised_total{event="alarm",model="${model}"}`), 1);
    assert.equal(counts.alarm, 1);
    // The other replica sees the same record through the bucket.
    await eventually(
      "replica two sees the alarm",
      async () => (await getFans(two.url, "?deviceID=7")).fans[0]?.state === "alarm",
    );
  });

  it("does not count a batch twice when the connector sends it again", async () => {
    // Three faulty predictions are not an alarm (four of the last five are); counted twice they would be.
    const timed = predictions("8", 1, 3, t0);
    const untimed = timed.map(({ timeStamp: _, ...p }) => ({ ...p, deviceID: "9" }));
    for (const batch of [timed, untimed])
      for (const url of [one.url, two.url, one.url]) assert.equal((await postJson(url, batch)).status, 200);
    for (const id of ["8", "9"])
      assert.equal((await getFans(one.url, `?deviceID=${id}`)).fans[0]?.state, "ok", `fan ${id}`);
    assert.ok(
      (await metric(one.url, 'health_predictions_total{outcome="duplicate"}')) +
        (await metric(two.url, 'health_predictions_total{outcome="duplicate"}')) >=
        6,
      "the untimed batch recognised by its digest",
    );
  });

  it("loses no transition and doubles none when two processes update one fan at once", async () => {
    const id = "contended";
    // Phases of one fan, readings 10 s apart: faulty, healthy for 20 min (past the quiet period
    // and the cleared hold), faulty again (a new episode), each sent as many small batches to both
    // processes at once, so that they race on the fan's entry.
    const phases: Array<[0 | 1, number]> = [
      [1, 60],
      [0, 120],
      [1, 60],
    ];
    let start = t0;
    const conflictsBefore =
      (await metric(one.url, "health_cas_conflicts_total")) + (await metric(two.url, "health_cas_conflicts_total"));
    for (const [fault, count] of phases) {
      const all = predictions(id, fault, count, start, 10_000);
      start += count * 10_000;
      const batches = Array.from({ length: count / 5 }, (_, i) => all.slice(i * 5, i * 5 + 5));
      const answers = await Promise.all(batches.map((b, i) => postJson(i % 2 === 0 ? one.url : two.url, b)));
      for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    }
    const written =
      (await metric(one.url, "health_transitions_total")) + (await metric(two.url, "health_transitions_total"));
    const conflicts =
      (await metric(one.url, "health_cas_conflicts_total")) +
      (await metric(two.url, "health_cas_conflicts_total")) -
      conflictsBefore;
    assert.ok(conflicts > 0, "the two processes did race on the fan (compare-and-set conflicts)");
    // Everything each process wrote is on the alarm topic once: none lost, none doubled.
    const total = () => collector.on("fan/alarm").length;
    await eventually(`${written} transitions on fan/alarm`, () => total() >= written);
    const mine = transitionsOf(collector, id);
    assert.equal(new Set(mine.map((t) => t.id)).size, mine.length, "no transition published twice");
    const alarms = mine.filter((t) => t.event === "alarm");
    assert.equal(alarms.length, 2, `one alarm per faulty episode: ${JSON.stringify(mine.map((t) => t.event))}`);
    assert.notEqual(alarms[0]?.alarmId, alarms[1]?.alarmId, "the second episode is a new alarm");
    const record = (await getFans(one.url, `?deviceID=${id}`)).fans[0];
    assert.equal(record?.state, mine.at(-1)?.state, "the record is where its last transition left it");
    assert.equal(record?.alarmId, alarms[1]?.alarmId);
  });

  it("acknowledges an open alarm over HTTP and publishes the transition", async () => {
    await alarm("7");
    const before = transitionsOf(collector, "7").length;
    const answer = await postJson(two.url, {
      deviceID: "7",
      action: "acknowledge",
      by: "Ana",
      note: "bearing ordered",
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { record, transition } = answer.body as { record: HealthRecord; transition: AlarmTransition };
    assert.deepEqual([record.acknowledged, record.acknowledgedBy, record.note], [true, "Ana", "bearing ordered"]);
    assert.deepEqual([transition.event, transition.by, transition.acknowledged], ["acknowledged", "Ana", true]);
    await eventually("the acknowledgement on fan/alarm", () => transitionsOf(collector, "7").length === before + 1);
    assert.equal(transitionsOf(collector, "7").at(-1)?.id, transition.id);
    const { fans } = await getFans(one.url, "?state=alarm&acknowledged=true");
    assert.ok(fans.some((f) => f.deviceID === "7"));
  });

  it("answers 404 for an unknown fan, 409 without an open alarm and 400 for a bad command, each naming the field", async () => {
    await alarm("7", true); // acknowledged already: no open alarm to acknowledge
    const unknown = await postJson(one.url, { deviceID: "no-such-fan", action: "acknowledge", by: "Ana" });
    assert.equal(unknown.status, 404);
    assert.equal((unknown.body as { field: string }).field, "deviceID");
    const again = await postJson(one.url, { deviceID: "7", action: "acknowledge", by: "Ana" });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal((again.body as { field: string }).field, "action");
    const bad = await postJson(one.url, { deviceID: "7", action: "silence", by: "Ana" });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { field: string }).field, "action");
    const nobody = await postJson(one.url, { deviceID: "7", action: "acknowledge" });
    assert.deepEqual([nobody.status, (nobody.body as { field: string }).field], [400, "by"]);
  });

  it("lists open alarms first, unacknowledged first, then by device ID in numeric order, with filters", async () => {
    await alarm("7", true);
    await alarm("12");
    for (const id of ["10", "2"]) assert.equal((await postJson(one.url, predictions(id, 0, 3, t0))).status, 200);
    const { fans, counts } = await getFans(one.url);
    const open = fans.filter((f) => f.state === "alarm");
    assert.deepEqual(fans.slice(0, open.length), open, "open alarms first");
    assert.deepEqual(
      open.map((f) => f.acknowledged),
      [...open.map((f) => f.acknowledged)].sort(),
      "unacknowledged first",
    );
    const rest = fans.slice(open.length).map((f) => f.deviceID);
    assert.ok(rest.indexOf("2") < rest.indexOf("10"), `numeric order: ${rest.join(",")}`);
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      fans.length,
    );
    assert.deepEqual(
      (await getFans(one.url, "?deviceID=2&deviceID=10")).fans.map((f) => f.deviceID),
      ["2", "10"],
    );
    const bad = await fetch(`${one.url}?state=broken`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, "state");
    const first = (await (await fetch(`${one.url}?limit=1`)).json()) as { fans: HealthRecord[]; matched: number };
    assert.deepEqual(
      [first.fans.length, first.fans[0]?.deviceID, first.matched],
      [1, fans[0]?.deviceID, fans.length],
      "?limit=1: the first fan, and how many matched",
    );
    const zero = await fetch(`${one.url}?limit=0`);
    assert.deepEqual([zero.status, ((await zero.json()) as { field: string }).field], [400, "limit"]);
  });

  it("rejects a bad prediction alone and dead-letters it; a body that is not JSON too", async () => {
    const letters = collector.on("fan/deadletter").length;
    const answer = await postJson(
      one.url,
      [...predictions("11", 0, 2, t0), { deviceID: "11", fault: 2, probability: 0.5 }],
      { "x-topic": "fan/anomaly" },
    );
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { evaluated: 2, rejected: 1, transitions: 0 });
    const [letter] = (await collector.waitFor("fan/deadletter", letters + 1)).slice(letters) as Array<{
      error: string;
      topic: string;
      payload: string;
    }>;
    assert.match(letter?.error ?? "", /^fault: /);
    assert.equal(letter?.topic, "fan/anomaly");
    assert.deepEqual(JSON.parse(letter?.payload ?? ""), { deviceID: "11", fault: 2, probability: 0.5 });
    const broken = await postJson(one.url, "{not json", { "content-type": "text/plain" });
    assert.equal(broken.status, 400);
    await collector.waitFor("fan/deadletter", letters + 2);
    assert.equal((await getFans(one.url, "?deviceID=11")).fans[0]?.state, "ok", "the good ones were evaluated");
  });

  it("dead-letters malformed JSON sent as application/json with its reason (the template hands health the raw body)", async () => {
    const letters = collector.on("fan/deadletter").length;
    const broken = await postJson(one.url, '{"deviceID": "12",', { "x-topic": "fan/anomaly" });
    assert.equal(broken.status, 400);
    const [letter] = (await collector.waitFor("fan/deadletter", letters + 1)).slice(letters) as Array<{
      error: string;
      topic: string;
      payload: string;
    }>;
    assert.match(letter?.error ?? "", /request body is not valid JSON/);
    assert.equal(letter?.topic, "fan/anomaly");
    assert.equal(letter?.payload, '{"deviceID": "12",');
  });

  it("keeps fans whose IDs are not NATS keys, under their own IDs", async () => {
    const ids = ["fan.1", "hall 7/fan 3", "ünïcødé 風扇", "y".repeat(128)];
    for (const id of ids) assert.equal((await postJson(two.url, predictions(id, 0, 2, t0))).status, 200, id);
    for (const id of ids) {
      const { fans } = await getFans(one.url, `?deviceID=${encodeURIComponent(id)}`);
      assert.deepEqual(
        fans.map((f) => f.deviceID),
        [id],
      );
    }
  });

  it("answers 503 while NATS is down, and keeps state and open alarms when health and NATS are killed mid-stream and restarted", async () => {
    await alarm("7", true);
    await alarm("contended");
    const openBefore = (await getFans(one.url, "?state=alarm")).fans;
    assert.ok(openBefore.length >= 2, "open alarms to keep");
    // A stream of predictions for one fan, running while everything is killed.
    let running = true;
    const accepted: number[] = [];
    let next = 0;
    const stream = (async () => {
      while (running) {
        const at = t0 + 1_000_000 + next++ * 1_000;
        const a = await postJson(one.url, [{ deviceID: "streamed", fault: 0, probability: 0.01, timeStamp: at }]).catch(
          () => ({ status: 0 }),
        );
        if (a.status === 200) accepted.push(at);
        else await new Promise((resolve) => setTimeout(resolve, 20)); // the stream's pace after a refused post
      }
    })();
    await eventually("predictions flowing", () => accepted.length >= 5);
    await nats.kill();
    await eventually(
      "503 while NATS is down",
      async () => (await postJson(two.url, predictions("12", 0, 1, t0))).status === 503,
    );
    // NATS back: the same processes reconnect, and each one's cache follows the other's writes again.
    await nats.restart();
    await eventually(
      "200 once NATS is back",
      async () => (await postJson(two.url, predictions("12", 0, 1, t0 + 1_000))).status === 200,
    );
    await eventually(
      "replica one sees replica two's write after the restart",
      async () => (await getFans(one.url, "?deviceID=12")).fans[0]?.lastSeen === new Date(t0 + 1_000).toISOString(),
    );
    const seen = accepted.length;
    await eventually("the stream flowing again", () => accepted.length > seen);
    // Now everything dies at once, mid-stream.
    one.child.kill("SIGKILL");
    two.child.kill("SIGKILL");
    await nats.kill();
    running = false;
    await stream;
    await nats.restart();
    [one, two] = await Promise.all([startHealth(env), startHealth(env)]);
    const openAfter = (await getFans(two.url, "?state=alarm")).fans;
    assert.deepEqual(openAfter, openBefore, "open alarms intact, acknowledgements included");
    const streamed = (await getFans(two.url, "?deviceID=streamed")).fans[0];
    assert.ok(
      streamed !== undefined && Date.parse(streamed.lastSeen) >= Math.max(...accepted),
      "every prediction answered 200 is in the state",
    );
    assert.equal((await postJson(one.url, predictions("12", 0, 1, t0))).status, 200, "and health works again");
  });

  it("publishes a transition whose writer died before it could publish it, once, from the fan's outbox", async () => {
    const pid = broker.pid as number;
    process.kill(pid, "SIGTERM");
    await eventually("Mosquitto stopped", () => !alive(pid));
    // The write wins, the publish cannot happen: the answer is a 503 and the alarm waits in the outbox.
    await eventually(
      "a 503 for want of the broker",
      async () => (await postJson(one.url, predictions("outboxed", 1, 20, t0))).status === 503,
    );
    one.child.kill("SIGKILL");
    await broker.restart();
    // Another process finds the transition in the outbox and sends it, with its id.
    await eventually("the outboxed alarm on fan/alarm", () => transitionsOf(collector, "outboxed").length >= 1);
    // Still once: the outbox is empty, so nothing is left to send again, and whatever was sent
    // before arrived ahead of a marker alarm sent after.
    await eventually("fan outboxed's outbox emptied", async () => (await outboxOf(nats.url, "outboxed")).length === 0);
    await marker(collector, two.url, "outboxed-marker", t0);
    const sent = transitionsOf(collector, "outboxed");
    assert.deepEqual(
      sent.map((t) => t.event),
      ["alarm"],
    );
    assert.ok((await metric(two.url, "health_outbox_resent_total")) >= 1);
    one = await startHealth(env);
    assert.equal((await getFans(one.url, "?deviceID=outboxed")).fans[0]?.alarmId, sent[0]?.alarmId);
  });

  it("marks a fan that stopped reporting silent once, whichever replica's timer gets there first", async () => {
    const quiet = { ...env, HEALTH_BUCKET: "silence_test", HEALTH_SILENT_AFTER_MS: "1000" };
    const [a, b] = await Promise.all([startHealth(quiet), startHealth(quiet)]);
    assert.equal((await postJson(a.url, predictions("quiet", 0, 3, t0))).status, 200);
    await eventually("fan quiet silent", () => transitionsOf(collector, "quiet").some((t) => t.event === "silent"));
    // Once: the fan is silent in the bucket with nothing left in its outbox, and whatever either
    // replica published before has arrived ahead of a marker alarm each sends after.
    await eventually(
      "fan quiet's outbox emptied",
      async () => (await outboxOf(nats.url, "quiet", "silence_test")).length === 0,
    );
    await Promise.all([marker(collector, a.url, "quiet-marker-a", t0), marker(collector, b.url, "quiet-marker-b", t0)]);
    assert.deepEqual(
      transitionsOf(collector, "quiet").map((t) => t.event),
      ["silent"],
    );
    assert.equal((await getFans(b.url, "?deviceID=quiet")).fans[0]?.state, "silent");
    // Its next reading brings it back.
    assert.equal((await postJson(b.url, predictions("quiet", 0, 1, t0 + 10_000))).status, 200);
    await eventually(
      "fan quiet reporting again",
      async () => (await getFans(a.url, "?deviceID=quiet")).fans[0]?.state !== "silent",
    );
  });
});

/** A transition as health's event stream FAN_HEALTH_EVENTS holds it: its subject, its message id and its body. */
interface StoredEvent {
  subject: string;
  msgId: string | undefined;
  transition: AlarmTransition;
}

/** Every message of FAN_HEALTH_EVENTS, in stream order. */
async function streamEvents(natsUrl: string): Promise<StoredEvent[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(HEALTH_EVENTS_STREAM);
    const events: StoredEvent[] = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(HEALTH_EVENTS_STREAM, { seq });
      if (m !== null)
        events.push({
          subject: m.subject,
          msgId: m.header.get("Nats-Msg-Id"),
          transition: AlarmTransitionSchema.parse(m.json()),
        });
    }
    return events;
  } finally {
    await nc.close();
  }
}

/** A fan's events in the stream. */
async function streamEventsOf(natsUrl: string, deviceID: string): Promise<StoredEvent[]> {
  return (await streamEvents(natsUrl)).filter((e) => e.transition.deviceID === deviceID);
}

/** Resolves with `probe`'s value once it has one. */
async function found<T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  return (await eventuallyValue(what, probe, (value) => value !== undefined)) as T;
}

interface ErrorBody {
  error: string;
  code: string;
  field: string;
}

describe(
  "health actions, the event stream and the site (real nats-server, real Mosquitto)",
  { timeout: 180_000 },
  () => {
    const SITE = "plant-a";
    let nats: TestNats;
    let broker: Broker;
    let collector: Collector;
    let env: NodeJS.ProcessEnv;
    let health: HealthProcess;
    const t0 = Date.UTC(2026, 10, 1);
    const iso = (ms: number) => new Date(ms).toISOString();

    /** Puts fan `deviceID` in alarm and resolves once the alarm is on fan/alarm. */
    async function alarm(deviceID: string): Promise<AlarmTransition> {
      assert.equal((await postJson(health.url, predictions(deviceID, 1, 20, t0))).status, 200);
      return found(`fan ${deviceID}'s alarm on fan/alarm`, () =>
        transitionsOf(collector, deviceID).find((t) => t.event === "alarm"),
      );
    }

    async function record(deviceID: string): Promise<HealthRecord | undefined> {
      return (await getFans(health.url, `?deviceID=${encodeURIComponent(deviceID)}`)).fans[0];
    }

    function refusal(answer: { status: number; body: unknown }): [number, string, string] {
      const body = answer.body as ErrorBody;
      assert.ok(body.error.length > 0, JSON.stringify(body));
      return [answer.status, body.code, body.field];
    }

    beforeEach(async () => {
      [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      collector = await Collector.start(broker.url, ["fan/alarm"]);
      env = {
        NATS_URL: nats.url,
        MQTT_URL: broker.url,
        SITE,
        HEALTH_OUTBOX_RESEND_MS: "1000",
        HEALTH_SILENT_CHECK_MS: "200",
        HEALTH_SILENT_AFTER_MS: "3600000",
      };
      health = await startHealth(env);
    });
    afterEach(async () => {
      await stopHealthProcesses();
      await collector?.stop();
      await Promise.all([nats?.stop(), broker?.stop()]);
    });

    it("shelves an open alarm until a time (shelving again moves it); when the time has passed the shelving ends with `resumed`", async () => {
      const opened = await alarm("s1");
      const first = await postJson(health.url, {
        deviceID: "s1",
        action: "shelve",
        until: iso(Date.now() + 3_600_000),
        by: "Ana",
        note: "crane booked",
      });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const until = Date.now() + 3_000;
      const answer = await postJson(health.url, { deviceID: "s1", action: "shelve", until: iso(until), by: "Ben" });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const { record: shelved, transition } = answer.body as { record: HealthRecord; transition: AlarmTransition };
      assert.deepEqual(
        [shelved.state, shelved.shelvedUntil, shelved.shelvedBy],
        ["alarm", iso(until), "Ben"],
        "shelving again moved the time",
      );
      assert.deepEqual(
        [transition.event, transition.until, transition.by, transition.alarmId, transition.site, transition.muted],
        ["shelved", iso(until), "Ben", opened.alarmId, SITE, undefined],
      );
      assert.equal((await record("s1"))?.shelvedUntil, iso(until), "listed shelved");
      const resumed = await found("the shelving of s1 ended", () =>
        transitionsOf(collector, "s1").find((t) => t.event === "resumed"),
      );
      assert.deepEqual(
        [resumed.state, resumed.alarmId, resumed.by, resumed.note, resumed.muted, resumed.site],
        ["alarm", opened.alarmId, undefined, undefined, undefined, SITE],
      );
      assert.ok(Date.parse(resumed.at) >= until, "not before its time");
      const after = await record("s1");
      assert.deepEqual([after?.state, after?.shelvedUntil, after?.shelvedBy], ["alarm", null, null]);
      assert.deepEqual(
        transitionsOf(collector, "s1").map((t) => t.event),
        ["alarm", "shelved", "shelved", "resumed"],
      );
    });

    it("records a shelved fan's transitions as muted (not its clear), and ends the shelving with its episode", async () => {
      await alarm("s2");
      const shelved = await postJson(health.url, {
        deviceID: "s2",
        action: "shelve",
        until: iso(Date.now() + 3_600_000),
        by: "Ana",
      });
      assert.equal(shelved.status, 200, JSON.stringify(shelved.body));
      // Healthy for 20 minutes of reading time: past the quiet period (the alarm clears) and the cleared hold (ok).
      const healthy = predictions("s2", 0, 121, t0 + 20_000, 10_000);
      assert.equal((await postJson(health.url, healthy)).status, 200);
      await eventually("s2 ok again", () => transitionsOf(collector, "s2").some((t) => t.event === "ok"));
      assert.deepEqual(
        transitionsOf(collector, "s2").map((t) => [t.event, t.muted]),
        [
          ["alarm", undefined],
          ["shelved", undefined],
          ["cleared", undefined],
          ["ok", undefined],
        ],
        "the clear is notified, shelved or not (news to whoever was told of the alarm); the shelving ended with the episode",
      );
      const after = await record("s2");
      assert.deepEqual([after?.state, after?.shelvedUntil, after?.shelvedBy], ["ok", null, null]);
    });

    it("puts several fans in maintenance at once; their alarms in the window are muted; the window's end resumes the open ones", async () => {
      await alarm("m1");
      assert.equal((await postJson(health.url, predictions("m2", 0, 3, Date.now() - 10_000))).status, 200);
      const from = Date.now() - 60_000;
      const until = Date.now() + 4_000;
      const answer = await postJson(health.url, {
        deviceIDs: ["m1", "m2"],
        action: "maintenance",
        from: iso(from),
        until: iso(until),
        by: "Ops",
        note: "bearing swap, hall 2",
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const { records, transitions } = answer.body as { records: HealthRecord[]; transitions: AlarmTransition[] };
      const window = { from: iso(from), until: iso(until), by: "Ops", note: "bearing swap, hall 2" };
      assert.deepEqual(
        records.map((r) => [r.deviceID, r.maintenance]),
        [
          ["m1", window],
          ["m2", window],
        ],
      );
      assert.deepEqual(
        transitions.map((t) => [t.event, t.deviceID, t.from, t.until, t.by, t.note, t.muted, t.site]),
        [
          ["maintenance", "m1", window.from, window.until, "Ops", window.note, undefined, SITE],
          ["maintenance", "m2", window.from, window.until, "Ops", window.note, undefined, SITE],
        ],
      );
      // m2 fails during the work (readings stamped within the window): recorded, muted.
      assert.equal((await postJson(health.url, predictions("m2", 1, 5, Date.now() - 5_000))).status, 200);
      const muted = await found("m2's alarm", () => transitionsOf(collector, "m2").find((t) => t.event === "alarm"));
      assert.equal(muted.muted, "maintenance");
      assert.ok(Date.parse(muted.at) >= from && Date.parse(muted.at) < until);
      // The window ends with both episodes open: notifications resume for each.
      for (const id of ["m1", "m2"]) {
        const resumed = await found(`${id} resumed`, () =>
          transitionsOf(collector, id).find((t) => t.event === "resumed"),
        );
        assert.equal(resumed.muted, undefined);
        assert.equal((await record(id))?.maintenance, null);
      }
    });

    it("refuses actions clearly: 404 for an unknown fan (naming it), 409 with nothing open, 400 for a bad time, window or author, 413 for too many fans; nothing changes", async () => {
      await alarm("r1");
      assert.equal((await postJson(health.url, predictions("r2", 0, 3, t0))).status, 200);
      const later = iso(Date.now() + 3_600_000);
      const shelve = (body: object) => postJson(health.url, { action: "shelve", by: "Ana", until: later, ...body });
      assert.deepEqual(refusal(await shelve({ deviceID: "nope" })), [404, "FANWATCH_HEALTH_NOT_FOUND", "deviceID"]);
      assert.deepEqual(refusal(await shelve({ deviceID: "r2" })), [409, "FANWATCH_HEALTH_CONFLICT", "action"]);
      const past = iso(Date.now() - 1_000);
      assert.deepEqual(refusal(await shelve({ deviceID: "r1", until: past })), [
        400,
        "FANWATCH_INPUT_INVALID",
        "until",
      ]);
      for (const until of ["tomorrow", "2026-12-24T18:00:00", "2026-02-30T10:00:00Z", 1_800_000_000_000])
        assert.deepEqual(
          refusal(await shelve({ deviceID: "r1", until })),
          [400, "FANWATCH_INPUT_INVALID", "until"],
          String(until),
        );
      assert.deepEqual(refusal(await shelve({ deviceID: "r1", by: " " })), [400, "FANWATCH_INPUT_INVALID", "by"]);
      assert.deepEqual(refusal(await postJson(health.url, { deviceID: "r1", action: "shelve", until: later })), [
        400,
        "FANWATCH_INPUT_INVALID",
        "by",
      ]);

      const maintenance = (body: object) =>
        postJson(health.url, { action: "maintenance", deviceIDs: ["r1", "r2"], until: later, by: "Ops", ...body });
      const unknown = await maintenance({ deviceIDs: ["r1", "ghost", "r2"] });
      assert.deepEqual(refusal(unknown), [404, "FANWATCH_HEALTH_NOT_FOUND", "deviceIDs"]);
      assert.match((unknown.body as ErrorBody).error, /"ghost"/);
      assert.doesNotMatch((unknown.body as ErrorBody).error, /"r1"/);
      const now = Date.now();
      for (const [from, until] of [
        [now + 7_200_000, now + 3_600_000],
        [now + 3_600_000, now + 3_600_000],
      ] as const)
        assert.deepEqual(
          refusal(await maintenance({ from: iso(from), until: iso(until) })),
          [400, "FANWATCH_INPUT_INVALID", "until"],
          "a window that ends before or when it starts",
        );
      assert.deepEqual(
        refusal(await maintenance({ from: iso(now - 7_200_000), until: iso(now - 3_600_000) })),
        [400, "FANWATCH_INPUT_INVALID", "until"],
        "a window that is over",
      );
      assert.deepEqual(refusal(await maintenance({ from: "soon" })), [400, "FANWATCH_INPUT_INVALID", "from"]);
      assert.deepEqual(refusal(await maintenance({ by: undefined })), [400, "FANWATCH_INPUT_INVALID", "by"]);
      assert.deepEqual(refusal(await maintenance({ deviceIDs: [] })), [400, "FANWATCH_INPUT_INVALID", "deviceIDs"]);
      const many = Array.from({ length: 1_001 }, (_, i) => `f${i}`);
      assert.deepEqual(refusal(await maintenance({ deviceIDs: many })), [413, "FANWATCH_INPUT_INVALID", "deviceIDs"]);
      assert.deepEqual(refusal(await postJson(health.url, { deviceID: "r1", action: "snooze", by: "Ana" })), [
        400,
        "FANWATCH_INPUT_INVALID",
        "action",
      ]);

      // Nothing changed: no fan shelved or in maintenance, and only the two fans' first transitions exist.
      for (const id of ["r1", "r2"]) {
        const r = await record(id);
        assert.deepEqual([r?.shelvedUntil, r?.maintenance], [null, null], id);
      }
      assert.deepEqual(
        (await streamEvents(nats.url)).map((e) => [e.transition.deviceID, e.transition.event]),
        [["r1", "alarm"]],
      );
    });

    it("appends every transition to FAN_HEALTH_EVENTS once, on its site's and fan's subject, with its id as Nats-Msg-Id; the stream survives a NATS restart", async () => {
      const ids = ["e1", "hall.7"];
      for (const id of ids) await alarm(id);
      const acted = [
        { deviceID: "e1", action: "acknowledge", by: "Ana", note: "on it" },
        { deviceID: "hall.7", action: "shelve", until: iso(Date.now() + 3_600_000), by: "Ben" },
        { deviceIDs: ["e1"], action: "maintenance", until: iso(Date.now() + 3_600_000), by: "Ops" },
      ];
      for (const body of acted) assert.equal((await postJson(health.url, body)).status, 200, JSON.stringify(body));
      const published = () => ids.flatMap((id) => transitionsOf(collector, id));
      await eventually("five transitions on fan/alarm", () => published().length === 5);
      assert.deepEqual(
        published().map((t) => t.site),
        Array(5).fill(SITE),
        "the site on every transition",
      );
      const stored = await streamEvents(nats.url);
      assert.deepEqual(
        stored.map((e) => e.transition).sort((a, b) => a.id.localeCompare(b.id)),
        published().sort((a, b) => a.id.localeCompare(b.id)),
        "each transition stored once, as published",
      );
      for (const e of stored) {
        assert.equal(e.msgId, e.transition.id);
        assert.equal(e.subject, `fanwatch.health.${SITE}.${encodeKey(e.transition.deviceID)}`);
      }
      assert.ok(stored.some((e) => e.subject === `fanwatch.health.${SITE}.hall=2E7`));
      // NATS stops and starts again on its store: the history is there, and health appends again.
      await nats.halt();
      await nats.restart();
      assert.deepEqual(await streamEvents(nats.url), stored, "the history kept");
      await eventually(
        "health writing again after the restart",
        async () => (await postJson(health.url, predictions("e3", 1, 20, t0))).status === 200,
      );
      await eventually("e3's alarm in the stream", async () =>
        (await streamEventsOf(nats.url, "e3")).some((e) => e.transition.event === "alarm"),
      );
    });

    it("stores a transition once when the broker was away and its outbox sent it again", async () => {
      const pid = broker.pid as number;
      process.kill(pid, "SIGTERM");
      await eventually("Mosquitto stopped", () => !alive(pid));
      // JetStream takes the alarm, the broker cannot: a 503, and the alarm stays in the outbox.
      await eventually(
        "a 503 for want of the broker",
        async () => (await postJson(health.url, predictions("o1", 1, 20, t0))).status === 503,
      );
      await eventually(
        "the alarm in the stream already",
        async () => (await streamEventsOf(nats.url, "o1")).length > 0,
      );
      await broker.restart();
      await eventually("the alarm on fan/alarm", () => transitionsOf(collector, "o1").length >= 1);
      await eventually("o1's outbox emptied", async () => (await outboxOf(nats.url, "o1")).length === 0);
      const stored = await streamEventsOf(nats.url, "o1");
      assert.deepEqual(
        stored.map((e) => [e.transition.event, e.msgId]),
        [["alarm", transitionsOf(collector, "o1")[0]?.id]],
        "sent twice, stored once",
      );
    });

    it("answers 503 while the event stream cannot take a transition (deleted), creates it again and stores the transition from the outbox", async () => {
      const nc = await connect({ servers: nats.url });
      try {
        await (await jetstreamManager(nc)).streams.delete(HEALTH_EVENTS_STREAM);
      } finally {
        await nc.close();
      }
      const refused = await postJson(health.url, predictions("j1", 1, 20, t0));
      assert.deepEqual([refused.status, (refused.body as ErrorBody).code], [503, "FANWATCH_STORE_UNAVAILABLE"]);
      const stored = await found("j1's alarm stored once the stream is back", async () => {
        const events = await streamEventsOf(nats.url, "j1").catch(() => []);
        return events.length > 0 ? events : undefined;
      });
      assert.deepEqual(
        stored.map((e) => e.transition.event),
        ["alarm"],
      );
      await eventually("j1's outbox emptied", async () => (await outboxOf(nats.url, "j1")).length === 0);
      assert.equal(health.child.exitCode, null, "health still runs");
      assert.equal((await record("j1"))?.state, "alarm");
    });
  },
);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
