import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { Prediction } from "../../lib/domain/prediction.js";
import { EVIDENCE_STREAM, EVIDENCE_SUBJECTS } from "../../lib/nats/evidence.js";
import { healthEventSubject } from "../../lib/nats/health-events.js";
import { sentSubject, type SentRecord } from "../../lib/nats/notifications.js";
import { ensureNotifierStream } from "../../notifier/streams.js";
import { NOTIFIER_STREAM } from "../../lib/nats/notifications.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson } from "../support/process.js";
import { startHealth, stopHealthProcesses } from "../support/health-process.js";
import { eventually, eventuallyValue } from "../support/eventually.js";

/** The history's answer, as a caller reads it. */
interface History {
  deviceID: string;
  episodes: {
    alarmId: string;
    opened: string;
    closed: string | null;
    state: string;
    severity: string;
    cause: string | null;
    model: string | null;
    transitions: { event: string; alarmId: string | null; at: string; by?: string }[];
    findings: unknown[];
    notifications: { target: string; event: string; transitionId: string; at: string; outcome: string }[];
    evidence: { readings: number };
    partial: boolean;
  }[];
  other: { event: string; alarmId: string | null }[];
  cursor: string | null;
  truncated: boolean;
}

interface Readings {
  readings: { at: string; rotation: number; fault: number; probability: number; model?: string }[];
  cursor?: string | null;
}

/** `count` predictions of a fan `stepMs` apart from `start`, each with its reading (what evidence keeps). */
function predictions(deviceID: string, fault: 0 | 1, count: number, start: number, stepMs = 1_000): Prediction[] {
  return Array.from({ length: count }, (_, i) => ({
    deviceID,
    fault,
    probability: fault === 1 ? 0.97 : 0.02,
    timeStamp: start + i * stepMs,
    reading: {
      rotation: 600 + (i % 7),
      temperature: 40 + (i % 3) / 10,
      vibration: 150 + (i % 5) / 10,
      sound: 48 + (i % 4) / 10,
    },
    ...(fault === 1 ? { cause: "vibration" as const } : {}),
  }));
}

async function send(url: string, body: unknown): Promise<unknown> {
  const answer = await postJson(url, body);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

async function get<T>(url: string, status = 200): Promise<T> {
  const response = await fetch(url);
  const text = await response.text();
  assert.equal(response.status, status, text);
  return JSON.parse(text) as T;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/_/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

const MINUTE = 60_000;
const t0 = Date.UTC(2026, 10, 1, 8, 0, 0);

describe("health's history and evidence (real nats-server, real Mosquitto)", { timeout: 240_000 }, () => {
  let nats: TestNats;
  let broker: Broker;
  let url: string;

  // Quick clears: 10 s quiet and 10 s hold in reading time, so that two episodes fit in a test.
  const policy = { HEALTH_QUIET_MS: "10000", HEALTH_CLEARED_HOLD_MS: "10000", HEALTH_SILENT_AFTER_MS: "3600000" };

  beforeEach(async () => {
    [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
    url = (await startHealth({ NATS_URL: nats.url, MQTT_URL: broker.url, ...policy })).url;
  });
  afterEach(async () => {
    await stopHealthProcesses();
    await Promise.all([nats?.stop(), broker?.stop()]);
  });

  /**
   * Fan 7's two episodes: healthy, an alarm (acknowledged by Ana, then cleared and back to ok),
   * healthy again, a second alarm. Answers the two alarmIds, oldest first.
   */
  async function twoEpisodes(between?: () => Promise<void>): Promise<[string, string]> {
    await send(url, predictions("7", 0, 30, t0));
    await send(url, predictions("7", 1, 10, t0 + 30_000));
    await send(url, { deviceID: "7", action: "acknowledge", by: "Ana", note: "on my way" });
    await send(url, predictions("7", 0, 40, t0 + 40_000)); // cleared after 10 quiet seconds, ok 10 s later
    await between?.();
    await send(url, predictions("7", 1, 10, t0 + 5 * MINUTE));
    const history = await get<History>(`${url}/history?deviceID=7`);
    assert.equal(history.episodes.length, 2, JSON.stringify(history));
    const [second, first] = history.episodes.map((e) => e.alarmId) as [string, string];
    return [first, second];
  }

  it("lists a fan's episodes newest first, each with its transitions and actions oldest first", async () => {
    const [first, second] = await twoEpisodes();
    // A finding on the cleared episode while the next is open: the note carries the fan's record
    // of its moment (the open alarm), which is not the cleared episode's state.
    await send(url, { deviceID: "7", alarmId: first, action: "finding", result: "confirmed", by: "Ana" });
    const history = await get<History>(`${url}/history?deviceID=7`);
    assert.equal(history.deviceID, "7");
    assert.deepEqual(
      history.episodes.map((e) => e.alarmId),
      [second, first],
    );
    const [newer, older] = history.episodes;
    assert.deepEqual(
      older?.transitions.map((t) => t.event),
      ["alarm", "acknowledged", "cleared", "finding"],
    );
    assert.equal(older?.transitions[1]?.by, "Ana");
    assert.ok(older?.transitions.every((t) => t.alarmId === first));
    assert.equal(older?.findings.length, 1);
    assert.equal(older?.state, "cleared");
    assert.equal(older?.severity, "major");
    assert.equal(older?.cause, "vibration");
    assert.equal(older?.opened, new Date(t0 + 33_000).toISOString()); // the fourth fault of five opened it
    assert.notEqual(older?.closed, null);
    assert.deepEqual(
      newer?.transitions.map((t) => t.event),
      ["alarm"],
    );
    assert.equal(newer?.closed, null);
    // Back to ok after the clear has no episode: it is listed apart.
    assert.deepEqual(
      history.other.map((t) => t.event),
      ["ok"],
    );
    assert.equal(history.cursor, null);
    assert.equal(history.truncated, false);
    assert.ok(history.episodes.every((e) => !e.partial));
  });

  /** Appends to the stream as health does (lib/nats/health-events.ts): other fans' events, a finding. */
  async function append(messages: { subject: string; body: unknown }[]): Promise<void> {
    const nc = await connect({ servers: nats.url });
    try {
      const js = jetstream(nc);
      for (let i = 0; i < messages.length; i += 500)
        await Promise.all(messages.slice(i, i + 500).map((m) => js.publish(m.subject, JSON.stringify(m.body))));
    } finally {
      await nc.close();
    }
  }

  it("pages by cursor and selects by since and until, with other fans' events between", async () => {
    // 9,000 transitions of other fans between the two episodes: more than one chunk of the walk back.
    const others = Array.from({ length: 9_000 }, (_, i) => ({
      subject: healthEventSubject("local", `other-${i % 50}`),
      body: { id: `o${i}`, event: "ok", deviceID: `other-${i % 50}`, alarmId: null, at: new Date(t0).toISOString() },
    }));
    const [first, second] = await twoEpisodes(() => append(others));
    // A finding on the first episode recorded after the second opened (as the actions record one).
    await append([
      {
        subject: healthEventSubject("local", "7"),
        body: {
          id: "7:finding",
          event: "finding",
          deviceID: "7",
          alarmId: first,
          at: new Date().toISOString(),
          result: "confirmed",
          part: "bearing",
          by: "Ana",
        },
      },
    ]);
    const page1 = await get<History>(`${url}/history?deviceID=7&limit=1`);
    assert.deepEqual(
      page1.episodes.map((e) => e.alarmId),
      [second],
    );
    assert.notEqual(page1.cursor, null);
    const page2 = await get<History>(`${url}/history?deviceID=7&limit=1&cursor=${page1.cursor}`);
    assert.deepEqual(
      page2.episodes.map((e) => e.alarmId),
      [first],
    );
    assert.deepEqual(
      page2.episodes[0]?.transitions.map((t) => t.event),
      ["alarm", "acknowledged", "cleared", "finding"],
    );
    assert.deepEqual(page2.episodes[0]?.findings, [page2.episodes[0]?.transitions[3]]);
    assert.equal(page2.cursor, null);
    // The `ok` between the episodes is on the first page (after the second page's episode), once.
    assert.deepEqual(
      [...page1.other, ...page2.other].map((t) => t.event),
      ["ok"],
    );

    const split = new Date(t0 + 4 * MINUTE).toISOString();
    const since = await get<History>(`${url}/history?deviceID=7&since=${split}`);
    assert.deepEqual(
      since.episodes.map((e) => e.alarmId),
      [second],
    );
    const until = await get<History>(`${url}/history?deviceID=7&until=${split}`);
    assert.deepEqual(
      until.episodes.map((e) => e.alarmId),
      [first],
    );
  });

  it("reads at most 10,000 messages a page, says so, and goes on from there with the cursor", async () => {
    const [first, second] = await twoEpisodes();
    // 10,500 of fan 7's own transitions after its episodes (a fan that went silent and back very often).
    const subject = healthEventSubject("local", "7");
    await append(
      Array.from({ length: 10_500 }, (_, i) => ({
        subject,
        body: {
          id: `7:s${i}`,
          event: i % 2 === 0 ? "silent" : "ok",
          deviceID: "7",
          alarmId: null,
          at: new Date(t0 + 6 * MINUTE + i).toISOString(),
        },
      })),
    );
    // And a finding on the first episode after them all: beyond what the next pages read.
    await send(url, { deviceID: "7", alarmId: first, action: "finding", result: "false-alarm", by: "Ana" });
    const page1 = await get<History>(`${url}/history?deviceID=7`);
    assert.equal(page1.truncated, true);
    assert.ok(page1.cursor !== null);
    assert.ok(page1.other.length <= 10_000);
    let page = page1;
    const episodes = page1.episodes.map((e) => e.alarmId);
    let others = page1.other.length;
    const later: History["episodes"] = [];
    for (let pages = 1; page.cursor !== null; pages++) {
      assert.ok(pages < 10, "the cursor goes on");
      page = await get<History>(`${url}/history?deviceID=7&cursor=${page.cursor}`);
      episodes.push(...page.episodes.map((e) => e.alarmId));
      later.push(...page.episodes);
      others += page.other.length;
    }
    assert.deepEqual(episodes, [second, first]);
    assert.equal(others, 10_500 + 1); // and the `ok` between the episodes, each once
    // Read below the first page's end: what may lie above it (the finding) is said to be missing.
    assert.deepEqual(
      later.map((e) => [e.alarmId, e.partial]),
      [
        [second, true],
        [first, true],
      ],
    );
    assert.equal(later[1]?.findings.length, 0);
  });

  it("answers within the caller's time: a truncated page or 503, and goes on answering", async () => {
    await twoEpisodes();
    const subject = healthEventSubject("local", "7");
    await append(
      Array.from({ length: 5_000 }, (_, i) => ({
        subject,
        body: { id: `7:s${i}`, event: "ok", deviceID: "7", alarmId: null, at: new Date(t0 + 6 * MINUTE).toISOString() },
      })),
    );
    // One millisecond: not enough to read the stream (X-Timeout-Ms, as the page's calls send it).
    const response = await fetch(`${url}/history?deviceID=7`, { headers: { "x-timeout-ms": "1" } });
    const body = (await response.json()) as History & { code?: string };
    if (response.status === 200) assert.ok(body.truncated && body.cursor !== null, JSON.stringify(body).slice(0, 300));
    else {
      assert.equal(response.status, 503);
      assert.equal(body.code, "FANWATCH_BUDGET_EXHAUSTED");
    }
    const whole = await get<History>(`${url}/history?deviceID=7`);
    assert.equal(whole.episodes.length, 2);
    assert.equal(whole.truncated, false);
  });

  it("shows the notifications the notifier sent for each episode", async () => {
    const [first] = await twoEpisodes();
    const history = await get<History>(`${url}/history?deviceID=7`);
    const alarm = history.episodes[1]?.transitions[0] as { event: string; at: string; id?: string };
    // Written as the notifier writes its delivery log (notifier/delivery-log.ts).
    const nc = await connect({ servers: nats.url });
    try {
      await ensureNotifierStream(await jetstreamManager(nc), NOTIFIER_STREAM, 1);
      const record: SentRecord = {
        target: "webhook-1a2b3c4d",
        transitionId: String(alarm.id),
        deviceID: "7",
        event: "alarm",
        alarmId: first,
        at: alarm.at,
        sentAt: new Date().toISOString(),
        attempts: 2,
        redriven: false,
      };
      await jetstream(nc).publish(sentSubject("local", "7", record.target), JSON.stringify(record));
    } finally {
      await nc.close();
    }
    const after = await get<History>(`${url}/history?deviceID=7`);
    assert.deepEqual(after.episodes[0]?.notifications, []);
    const sent = after.episodes[1]?.notifications ?? [];
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.target, "webhook-1a2b3c4d");
    assert.equal(sent[0]?.event, "alarm");
    assert.equal(sent[0]?.transitionId, alarm.id);
    assert.equal(sent[0]?.outcome, "sent");
  });

  it("keeps the whole history when NATS restarts, and answers 503 while it is away", async () => {
    await twoEpisodes();
    const before = await get<History>(`${url}/history?deviceID=7`);
    await nats.halt();
    await eventually("history answers 503 while NATS is away", async () => {
      const response = await fetch(`${url}/history?deviceID=7`);
      const body = (await response.json()) as { code?: string };
      return response.status === 503 && body.code === "FANWATCH_STORE_UNAVAILABLE";
    });
    await nats.restart();
    const after = await eventuallyValue(
      "history answers again after NATS restarted",
      () => fetch(`${url}/history?deviceID=7`),
      (response) => response.status === 200,
    );
    assert.deepEqual(await after.json(), before);
  });

  it("refuses a bad query (400) and an unknown fan (404)", async () => {
    await send(url, predictions("7", 0, 3, t0));
    for (const [query, field] of [
      ["", "deviceID"],
      ["deviceID=7&since=yesterday", "since"],
      ["deviceID=7&since=2026-11-01T10:00:00", "since"], // no zone
      ["deviceID=7&since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until"],
      ["deviceID=7&limit=0", "limit"],
      ["deviceID=7&limit=201", "limit"],
      ["deviceID=7&cursor=%21%21", "cursor"],
      ["deviceID=7&cursor=bm9wZQ", "cursor"],
    ] as const) {
      const answer = await get<{ code: string; field: string }>(`${url}/history?${query}`, 400);
      assert.equal(answer.code, "FANWATCH_INPUT_INVALID", query);
      assert.equal(answer.field, field, query);
    }
    const unknown = await get<{ code: string }>(`${url}/history?deviceID=nobody`, 404);
    assert.equal(unknown.code, "FANWATCH_HEALTH_NOT_FOUND");
    const none = await get<{ code: string }>(`${url}/evidence?deviceID=nobody&healthy=true`, 404);
    assert.equal(none.code, "FANWATCH_HEALTH_NOT_FOUND");
    // A fan that is known but has had no transition yet has an empty history.
    const quiet = await get<History>(`${url}/history?deviceID=7`);
    assert.deepEqual(quiet.episodes, []);
    // A known fan, an episode it never had (any id, or one made like health's): 404 as the actions.
    for (const alarmId of ["unknown", "7@2026-10-01T00:00:00.000Z"]) {
      const episode = await get<{ code: string; field: string }>(
        `${url}/evidence?deviceID=7&alarmId=${encodeURIComponent(alarmId)}`,
        404,
      );
      assert.equal(episode.code, "FANWATCH_HEALTH_NOT_FOUND", alarmId);
      assert.equal(episode.field, "alarmId", alarmId);
    }
    // An old episode the fan no longer remembers, with nothing kept: in the history, so an empty answer.
    const old = "7@2026-10-01T00:00:00.000Z";
    await append([
      {
        subject: healthEventSubject("local", "7"),
        body: { id: "7:old", event: "alarm", deviceID: "7", alarmId: old, at: "2026-10-01T00:00:00.000Z" },
      },
    ]);
    const kept = await get<Readings>(`${url}/evidence?deviceID=7&alarmId=${encodeURIComponent(old)}`);
    assert.deepEqual(kept.readings, []);
  });

  it("keeps the readings that led to an episode and those during it, bounded, each with the model that scored it", async () => {
    await send(url, predictions("8", 0, 100, t0));
    // The faults come from a model that names itself; the healthy readings before them from one that did not.
    const model = "fan-0123456789abcdef";
    await send(
      url,
      predictions("8", 1, 20, t0 + 100_000).map((p) => ({ ...p, model })),
    );
    const history = await get<History>(`${url}/history?deviceID=8`);
    const episode = history.episodes[0];
    assert.ok(episode !== undefined);
    // The alarm opened on the fourth fault (t0 + 103 s): 60 readings before it, 17 from it on.
    const evidence = await get<Readings & { alarmId: string }>(
      `${url}/evidence?deviceID=8&alarmId=${encodeURIComponent(episode.alarmId)}`,
    );
    assert.equal(evidence.alarmId, episode.alarmId);
    assert.equal(evidence.readings.length, 77);
    assert.equal(evidence.readings[0]?.at, new Date(t0 + 43_000).toISOString());
    assert.equal(evidence.readings.filter((r) => r.fault === 1).length, 20);
    assert.equal(episode.model, model, "the episode names the model that raised it");
    assert.deepEqual(
      [...new Set(evidence.readings.map((r) => `${r.fault} ${r.model ?? "none"}`))],
      ["0 none", `1 ${model}`],
    );
    assert.equal(episode.evidence.readings, 77);
    // The same batch sent again (the connector after a timeout) is not kept twice.
    await send(url, predictions("8", 1, 20, t0 + 100_000));
    // An episode keeps at most 660 readings, however long it lasts, and a health started afresh
    // (its count in memory gone) goes on from what the stream holds.
    await stopHealthProcesses();
    url = (await startHealth({ NATS_URL: nats.url, MQTT_URL: broker.url, ...policy })).url;
    await send(url, predictions("8", 1, 700, t0 + 120_000));
    const bounded = await get<Readings>(`${url}/evidence?deviceID=8&alarmId=${encodeURIComponent(episode.alarmId)}`);
    assert.equal(bounded.readings.length, 660);
    assert.deepEqual(
      bounded.readings.slice(0, 77).map((r) => r.at),
      evidence.readings.map((r) => r.at),
    );
    assert.equal((await get<History>(`${url}/history?deviceID=8`)).episodes[0]?.evidence.readings, 660);
  });

  it("keeps one healthy reading a minute, pages it, and stores a resent batch once", async () => {
    const batch = predictions("9", 0, 300, t0); // five minutes, one reading a second
    await send(url, batch);
    await send(url, batch);
    const all = await get<Readings>(`${url}/evidence?deviceID=9&healthy=true`);
    assert.deepEqual(
      all.readings.map((r) => r.at),
      [0, 1, 2, 3, 4].map((m) => new Date(t0 + m * MINUTE).toISOString()),
    );
    assert.equal(all.cursor, null);
    const some = await get<Readings>(
      `${url}/evidence?deviceID=9&healthy=true&since=${new Date(t0 + MINUTE).toISOString()}&until=${new Date(t0 + 3 * MINUTE).toISOString()}`,
    );
    assert.deepEqual(
      some.readings.map((r) => r.at),
      [1, 2].map((m) => new Date(t0 + m * MINUTE).toISOString()),
    );
    const page1 = await get<Readings>(`${url}/evidence?deviceID=9&healthy=true&limit=2`);
    assert.equal(page1.readings.length, 2);
    assert.ok(typeof page1.cursor === "string");
    const page2 = await get<Readings>(`${url}/evidence?deviceID=9&healthy=true&limit=2&cursor=${page1.cursor}`);
    assert.deepEqual(
      [...page1.readings, ...page2.readings].map((r) => r.at),
      all.readings.slice(0, 4).map((r) => r.at),
    );
  });

  it("evaluates as usual when the evidence cannot be stored, and counts the failure", async () => {
    // A stream that takes no message of any size: every evidence write fails.
    const nc = await connect({ servers: nats.url });
    try {
      await (
        await jetstreamManager(nc)
      ).streams.add({
        name: EVIDENCE_STREAM,
        subjects: [EVIDENCE_SUBJECTS],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_msg_size: 1,
      });
    } finally {
      await nc.close();
    }
    assert.deepEqual(await send(url, predictions("5", 1, 10, t0)), { evaluated: 10, rejected: 0, transitions: 1 });
    const fans = await get<{ fans: { state: string }[] }>(`${url}?deviceID=5`);
    assert.equal(fans.fans[0]?.state, "alarm");
    assert.ok((await metric(url, "health_evidence_failures_total")) > 0);
    const history = await get<History>(`${url}/history?deviceID=5`);
    assert.equal(history.episodes[0]?.evidence.readings, 0);
    // The episode is known: nothing kept is an empty answer, not a 404.
    const alarmId = encodeURIComponent(history.episodes[0]?.alarmId ?? "");
    assert.deepEqual((await get<Readings>(`${url}/evidence?deviceID=5&alarmId=${alarmId}`)).readings, []);
  });
});

describe("health's history without NATS", { timeout: 60_000 }, () => {
  let broker: Broker;
  afterEach(async () => {
    await stopHealthProcesses();
    await broker?.stop();
  });

  it("answers 501 FANWATCH_HISTORY_NEEDS_NATS", async () => {
    broker = await startMosquitto();
    const url = (await startHealth({ MQTT_URL: broker.url })).url;
    await send(url, predictions("7", 1, 10, t0));
    for (const path of ["history?deviceID=7", "evidence?deviceID=7&healthy=true"]) {
      const answer = await get<{ code: string }>(`${url}/${path}`, 501);
      assert.equal(answer.code, "FANWATCH_HISTORY_NEEDS_NATS");
    }
  });
});
