import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../lib/errors.js";
import {
  encodeEvidenceCursor,
  encodeHistoryCursor,
  HISTORY_DEFAULT_LIMIT,
  parseEvidenceQuery,
  parseHistoryQuery,
} from "../../functions/health/history-query.js";
import {
  episodeOpenedMs,
  groupTransitions,
  settledEpisodes,
  summarise,
  wholeEpisodes,
  type Located,
} from "../../functions/health/history-episodes.js";
import { historyRoute } from "../../functions/health/history-route.js";

function refused(run: () => unknown, field: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof InputError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.field, field, error.message);
    return true;
  });
}

describe("history query", () => {
  it("takes a device ID, ISO times, a limit and a cursor, with defaults", () => {
    assert.deepEqual(parseHistoryQuery({ deviceID: "7" }), {
      deviceID: "7",
      since: undefined,
      until: undefined,
      limit: HISTORY_DEFAULT_LIMIT,
      cursor: undefined,
    });
    const q = parseHistoryQuery({
      deviceID: "fan 7",
      since: "2026-11-01T00:00:00Z",
      until: "2026-11-02T01:00:00+01:00",
      limit: "200",
      cursor: encodeHistoryCursor({ before: 42, readFrom: 1000 }),
    });
    assert.equal(q.since, Date.UTC(2026, 10, 1));
    assert.equal(q.until, Date.UTC(2026, 10, 2));
    assert.equal(q.limit, 200);
    assert.deepEqual(q.cursor, { before: 42, readFrom: 1000 });
    assert.deepEqual(parseHistoryQuery({ deviceID: "7", cursor: encodeHistoryCursor({ before: 9 }) }).cursor, {
      before: 9,
      readFrom: undefined,
    });
  });

  it("refuses what it cannot read, naming the parameter", () => {
    refused(() => parseHistoryQuery({}), "deviceID");
    refused(() => parseHistoryQuery({ deviceID: ["7", "8"] }), "deviceID");
    refused(() => parseHistoryQuery({ deviceID: "7", since: "yesterday" }), "since");
    refused(() => parseHistoryQuery({ deviceID: "7", since: "2026-11-01T00:00:00" }), "since");
    refused(
      () => parseHistoryQuery({ deviceID: "7", since: "2026-11-02T00:00:00Z", until: "2026-11-01T00:00:00Z" }),
      "until",
    );
    for (const limit of ["0", "201", "-1", "1.5", "ten"])
      refused(() => parseHistoryQuery({ deviceID: "7", limit }), "limit");
    for (const cursor of [
      "!!",
      "bm9wZQ",
      Buffer.from("1.2.3").toString("base64url"),
      Buffer.from("0").toString("base64url"),
    ])
      refused(() => parseHistoryQuery({ deviceID: "7", cursor }), "cursor");
  });
});

describe("evidence query", () => {
  it("asks for one episode, or for the healthy sample", () => {
    assert.deepEqual(parseEvidenceQuery({ deviceID: "7", alarmId: "7@2026-11-01T00:00:00.000Z" }), {
      deviceID: "7",
      kind: "episode",
      alarmId: "7@2026-11-01T00:00:00.000Z",
    });
    assert.deepEqual(
      parseEvidenceQuery({ deviceID: "7", healthy: "true", limit: "5", cursor: encodeEvidenceCursor(12) }),
      { deviceID: "7", kind: "healthy", since: undefined, until: undefined, limit: 5, after: 12 },
    );
    refused(() => parseEvidenceQuery({ deviceID: "7" }), "alarmId");
    refused(() => parseEvidenceQuery({ deviceID: "7", alarmId: "a", healthy: "true" }), "healthy");
    refused(() => parseEvidenceQuery({ deviceID: "7", healthy: "yes" }), "healthy");
    refused(() => parseEvidenceQuery({ deviceID: "7", healthy: "true", limit: "10001" }), "limit");
  });
});

describe("history routes", () => {
  it("routes /history and /evidence, and leaves every other path to the listing", () => {
    assert.equal(historyRoute("/history"), "history");
    assert.equal(historyRoute("/history/"), "history");
    assert.equal(historyRoute("/evidence"), "evidence");
    assert.equal(historyRoute("/"), undefined);
    assert.equal(historyRoute("/historyx"), undefined);
  });
});

/** A transition as the stream holds it: `seq` its place, `alarmId` null for one of no episode. */
function at(seq: number, event: string, alarmId: string | null, extra: Record<string, unknown> = {}): Located {
  return {
    seq,
    transition: {
      id: `7:${seq}`,
      event,
      deviceID: "7",
      alarmId,
      at: new Date(Date.UTC(2026, 10, 1) + seq * 1000).toISOString(),
      ...extra,
    },
  };
}

const A = "7@2026-11-01T00:00:02.000Z";
const B = "7@2026-11-01T00:00:10.000Z";

describe("episodes from transitions", () => {
  const stream = [
    at(1, "silent", null),
    at(2, "warning", A, { state: "warning", severity: "minor", cause: "temperature" }),
    at(3, "alarm", A, { state: "alarm", severity: "major", cause: "vibration" }),
    at(4, "acknowledged", A, { state: "alarm", by: "Ana" }),
    at(5, "cleared", A, { state: "cleared", severity: "none" }),
    at(6, "ok", null, { state: "ok" }),
    at(10, "alarm", B, { state: "alarm", severity: "critical", cause: "sound" }),
    // A finding on the first episode, recorded while the second is open; an event from a newer health.
    // Notes carry the record of their moment: here B's critical alarm, which is not A's state.
    at(11, "finding", A, { state: "alarm", severity: "critical", cause: "sound", result: "confirmed", by: "Ana" }),
    at(12, "teleported", B, { state: "alarm", where: "elsewhere" }),
  ];

  it("groups by alarmId, newest episode first, transitions oldest first, and keeps the rest apart", () => {
    const { episodes, other } = groupTransitions(stream);
    assert.deepEqual(
      episodes.map((e) => [e.alarmId, e.firstSeq]),
      [
        [B, 10],
        [A, 2],
      ],
    );
    assert.deepEqual(
      episodes[1]?.transitions.map((t) => t.event),
      ["warning", "alarm", "acknowledged", "cleared", "finding"],
    );
    assert.deepEqual(
      episodes[0]?.transitions.map((t) => t.event),
      ["alarm", "teleported"],
    );
    assert.equal(episodes[0]?.transitions[1]?.where, "elsewhere"); // unknown fields kept
    assert.equal(episodes[1]?.opened, "2026-11-01T00:00:02.000Z");
    assert.deepEqual(
      other.map((m) => m.transition.event),
      ["silent", "ok"],
    );
  });

  it("sums an episode up: its state now, the highest severity, the latest cause, when it closed", () => {
    const { episodes } = groupTransitions(stream);
    assert.deepEqual(summarise(episodes[1]?.transitions ?? []), {
      state: "cleared",
      severity: "major",
      cause: "vibration",
      model: null,
      closed: "2026-11-01T00:00:05.000Z",
    });
    assert.deepEqual(summarise(episodes[0]?.transitions ?? []), {
      state: "alarm",
      severity: "critical",
      cause: "sound",
      model: null,
      closed: null,
    });
  });

  it("names the model that raised an episode: its opening warning's or alarm's, not a later one's", () => {
    const raised = [
      at(30, "warning", "9@x", { state: "warning", severity: "minor", model: "fan-aaaaaaaaaaaaaaaa" }),
      at(31, "alarm", "9@x", { state: "alarm", severity: "major", model: "fan-bbbbbbbbbbbbbbbb" }),
      at(32, "cleared", "9@x", { state: "cleared", severity: "none", model: "fan-bbbbbbbbbbbbbbbb" }),
    ];
    const [episode] = groupTransitions(raised).episodes;
    assert.equal(summarise(episode?.transitions ?? []).model, "fan-aaaaaaaaaaaaaaaa");
    const unnamed = [
      at(40, "alarm", "9@y", { state: "alarm", severity: "major" }),
      at(41, "cleared", "9@y", { model: "fan-b" }),
    ];
    assert.equal(summarise(groupTransitions(unnamed).episodes[0]?.transitions ?? []).model, null);
  });

  it("takes an episode's state, severity and cause from its own events, not from notes on it", () => {
    const notes = [
      at(20, "commented", A, { state: "alarm", severity: "critical", cause: "sound", note: "later" }),
      at(21, "assigned", A, { state: "alarm", severity: "critical", cause: "sound", to: "Bo" }),
    ];
    const { episodes } = groupTransitions([...stream, ...notes]);
    const a = episodes.find((e) => e.alarmId === A);
    assert.equal(a?.transitions.length, 7);
    assert.deepEqual(summarise(a?.transitions ?? []), {
      state: "cleared",
      severity: "major",
      cause: "vibration",
      model: null,
      closed: "2026-11-01T00:00:05.000Z",
    });
    // An event this version does not know is shown but does not decide the summary either.
    const newer = at(13, "teleported", B, { state: "elsewhere", severity: "critical" }).transition;
    assert.equal(summarise([...(episodes[0]?.transitions ?? []), newer]).state, "alarm");
  });

  it("knows an episode is whole once a state event of another comes before it", () => {
    const { episodes } = groupTransitions(stream.slice(5));
    const whole = wholeEpisodes(stream.slice(5), false);
    // From seq 6 on: B is whole (the `ok` before it); of A only its late finding was read.
    assert.deepEqual(
      episodes.map((e) => [e.alarmId, whole(e)]),
      [
        [A, false],
        [B, true],
      ],
    );
    const fromStart = wholeEpisodes(stream, true);
    assert.ok(groupTransitions(stream).episodes.every(fromStart));
  });

  it("knows an episode can get nothing more once 20 later ones opened (the actions name only the last 20)", () => {
    // 21 episodes, each opened by an alarm and cleared; a comment on the first after the fourth opened.
    const stream: Located[] = [];
    for (let i = 0; i < 21; i++) {
      const id = `7@2026-11-01T00:${String(i).padStart(2, "0")}:00.000Z`;
      stream.push(at(10 * i + 1, "alarm", id, { state: "alarm" }), at(10 * i + 2, "cleared", id, { state: "cleared" }));
      if (i === 3) stream.push(at(10 * i + 3, "commented", "7@2026-11-01T00:00:00.000Z", { note: "late" }));
    }
    const { episodes } = groupTransitions(stream);
    const settled = settledEpisodes(episodes);
    assert.deepEqual(
      episodes.filter(settled).map((e) => e.alarmId),
      ["7@2026-11-01T00:00:00.000Z"],
    );
    assert.deepEqual(
      groupTransitions(stream.slice(2)).episodes.filter(settledEpisodes(groupTransitions(stream.slice(2)).episodes)),
      [],
    );
  });

  it("reads the opening time from an alarmId, and nothing from another kind of id", () => {
    assert.equal(episodeOpenedMs(A), Date.UTC(2026, 10, 1, 0, 0, 2));
    assert.equal(episodeOpenedMs("fan@with@ats@2026-11-01T00:00:00Z"), Date.UTC(2026, 10, 1));
    assert.equal(episodeOpenedMs("7:123"), undefined);
  });
});
