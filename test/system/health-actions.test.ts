import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { AlarmTransitionSchema, type AlarmTransition, type HealthRecord } from "../../lib/domain/health.js";
import type { Prediction } from "../../lib/domain/prediction.js";
import { signUser, USER_HEADER, USER_SIGNATURE_TTL_MS } from "../../lib/infra/signed-user.js";
import { HEALTH_EVENTS_STREAM } from "../../lib/nats/health-events.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson } from "../support/process.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";

// Health's notes on an episode (comment, assign, finding) and the page's signed user, against a
// real nats-server and Mosquitto: what an engineer does and what the history then holds.

/** Faulty readings a second apart: the fan's alarm opens within them. */
function faulty(deviceID: string, start: number): Prediction[] {
  return Array.from({ length: 20 }, (_, i) => ({
    deviceID,
    fault: 1,
    probability: 0.97,
    timeStamp: start + i * 1_000,
    cause: "vibration" as const,
  }));
}

/** Healthy readings ten seconds apart for 20 minutes of reading time: past the quiet period and the cleared hold. */
function healthy(deviceID: string, start: number): Prediction[] {
  return Array.from({ length: 121 }, (_, i) => ({
    deviceID,
    fault: 0,
    probability: 0.02,
    timeStamp: start + i * 10_000,
  }));
}

/** Every transition of a fan in FAN_HEALTH_EVENTS, in stream order. */
async function stored(natsUrl: string, deviceID: string): Promise<AlarmTransition[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(HEALTH_EVENTS_STREAM);
    const out: AlarmTransition[] = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(HEALTH_EVENTS_STREAM, { seq });
      const t = m === null ? undefined : AlarmTransitionSchema.parse(m.json());
      if (t?.deviceID === deviceID) out.push(t);
    }
    return out;
  } finally {
    await nc.close();
  }
}

interface ErrorBody {
  error: string;
  code: string;
  field: string;
}

type Answer = { status: number; body: unknown };

function refusal(answer: Answer): [number, string, string] {
  const body = answer.body as ErrorBody;
  assert.ok(typeof body.error === "string" && body.error.length > 0, JSON.stringify(body));
  return [answer.status, body.code, body.field];
}

function accepted(answer: Answer): { record: HealthRecord; transition: AlarmTransition } {
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as { record: HealthRecord; transition: AlarmTransition };
}

describe(
  "health notes on an episode and the signed user (real nats-server, real Mosquitto)",
  { timeout: 180_000 },
  () => {
    const SECRET = "a-test-secret-of-at-least-32-characters";
    const t0 = Date.UTC(2026, 10, 1);
    let nats: TestNats;
    let broker: Broker;
    let collector: Collector;
    /** Health without PAGE_USER_SECRET (npm start, tests): `by` from the body. */
    let open: HealthProcess;
    /** Health with PAGE_USER_SECRET (the page in production): only the page's signed users act. */
    let signed: HealthProcess;

    const onAlarmTopic = (deviceID: string) =>
      collector
        .on("fan/alarm")
        .map((m) => AlarmTransitionSchema.parse(m))
        .filter((t) => t.deviceID === deviceID);

    async function alarm(health: HealthProcess, deviceID: string): Promise<string> {
      assert.equal((await postJson(health.url, faulty(deviceID, t0))).status, 200);
      const raised = await eventuallyValue(
        `fan ${deviceID}'s alarm on fan/alarm`,
        () => onAlarmTopic(deviceID).find((t) => t.event === "alarm"),
        (t) => t !== undefined,
      );
      return raised?.alarmId as string;
    }

    async function record(health: HealthProcess, deviceID: string): Promise<HealthRecord | undefined> {
      const answer = await fetch(`${health.url}?deviceID=${encodeURIComponent(deviceID)}`);
      return ((await answer.json()) as { fans: HealthRecord[] }).fans[0];
    }

    before(async () => {
      [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      collector = await Collector.start(broker.url, ["fan/alarm"]);
      const env = { NATS_URL: nats.url, MQTT_URL: broker.url, HEALTH_SILENT_AFTER_MS: "3600000" };
      [open, signed] = await Promise.all([
        startHealth(env),
        startHealth({ ...env, HEALTH_BUCKET: "fan_health_signed", PAGE_USER_SECRET: SECRET }),
      ]);
    });
    after(async () => {
      await stopHealthProcesses();
      await collector?.stop();
      await Promise.all([nats?.stop(), broker?.stop()]);
    });

    it("records a comment, an assignee and (once acknowledged) a finding with who did it, on fan/alarm and in FAN_HEALTH_EVENTS", async () => {
      const alarmId = await alarm(open, "n1");
      const commented = accepted(
        await postJson(open.url, { deviceID: "n1", alarmId, action: "comment", note: "loud rattle", by: "Ana" }),
      );
      assert.deepEqual(
        [commented.transition.event, commented.transition.alarmId, commented.transition.by, commented.transition.note],
        ["commented", alarmId, "Ana", "loud rattle"],
      );
      const assigned = accepted(
        await postJson(open.url, { deviceID: "n1", alarmId, action: "assign", to: "Ben", by: "Ana" }),
      );
      assert.deepEqual([assigned.record.assignedTo, assigned.transition.to], ["Ben", "Ben"]);
      const finding = { deviceID: "n1", alarmId, action: "finding", result: "confirmed", part: "bearing", by: "Ben" };
      assert.deepEqual(refusal(await postJson(open.url, finding)), [409, "FANWATCH_HEALTH_CONFLICT", "alarmId"]);
      accepted(await postJson(open.url, { deviceID: "n1", action: "acknowledge", by: "Ben" }));
      const found = accepted(await postJson(open.url, { ...finding, sensor: "vibration", note: "outer race pitted" }));
      assert.deepEqual(found.record.finding, {
        result: "confirmed",
        part: "bearing",
        sensor: "vibration",
        note: "outer race pitted",
        by: "Ben",
        at: found.transition.at,
      });
      assert.deepEqual((await record(open, "n1"))?.finding, found.record.finding, "listed by GET");
      assert.equal((await record(open, "n1"))?.assignedTo, "Ben");

      const expected = [
        ["alarm", undefined],
        ["commented", "Ana"],
        ["assigned", "Ana"],
        ["acknowledged", "Ben"],
        ["finding", "Ben"],
      ];
      await eventually("every note on fan/alarm", () => onAlarmTopic("n1").length === expected.length);
      assert.deepEqual(
        onAlarmTopic("n1").map((t) => [t.event, t.by]),
        expected,
      );
      const history = await stored(nats.url, "n1");
      assert.deepEqual(
        history.map((t) => [t.event, t.by]),
        expected,
        "the same transitions in the history",
      );
      assert.deepEqual(history.at(-1), found.transition, "as answered");
    });

    it("takes a finding after the alarm cleared; a second one replaces the record's and both stay in the history", async () => {
      const alarmId = await alarm(open, "n2");
      assert.equal((await postJson(open.url, healthy("n2", t0 + 20_000))).status, 200);
      await eventually("n2 ok again", async () => (await record(open, "n2"))?.state === "ok");
      const first = accepted(
        await postJson(open.url, { deviceID: "n2", alarmId, action: "finding", result: "false-alarm", by: "Ana" }),
      );
      assert.deepEqual(
        [first.record.state, first.record.alarmId, first.transition.alarmId, first.record.finding?.result],
        ["ok", null, alarmId, "false-alarm"],
      );
      const second = accepted(
        await postJson(open.url, {
          deviceID: "n2",
          alarmId,
          action: "finding",
          result: "confirmed",
          part: "belt",
          note: "frayed after all",
          by: "Ben",
        }),
      );
      assert.deepEqual([second.record.finding?.result, second.record.finding?.by], ["confirmed", "Ben"]);
      const findings = (await stored(nats.url, "n2")).filter((t) => t.event === "finding");
      assert.deepEqual(
        findings.map((t) => [t.alarmId, t.result, t.part, t.by]),
        [
          [alarmId, "false-alarm", undefined, "Ana"],
          [alarmId, "confirmed", "belt", "Ben"],
        ],
      );
    });

    it("refuses an unknown fan or episode (404), a result outside the three, a missing note, assignee or by (400)", async () => {
      const alarmId = await alarm(open, "n3");
      const base = { deviceID: "n3", alarmId, by: "Ana" };
      assert.deepEqual(
        refusal(await postJson(open.url, { ...base, deviceID: "nobody", action: "comment", note: "x" })),
        [404, "FANWATCH_HEALTH_NOT_FOUND", "deviceID"],
      );
      const unknown = await postJson(open.url, {
        ...base,
        alarmId: "n3@2020-01-01T00:00:00.000Z",
        action: "assign",
        to: "Ben",
      });
      assert.deepEqual(refusal(unknown), [404, "FANWATCH_HEALTH_NOT_FOUND", "alarmId"]);
      assert.match((unknown.body as ErrorBody).error, /no episode "n3@2020-01-01T00:00:00.000Z"/);
      accepted(await postJson(open.url, { deviceID: "n3", action: "acknowledge", by: "Ana" }));
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ ...base, action: "finding", result: "fixed" }, "result"],
        [{ ...base, action: "finding", result: "confirmed", sensor: "smell" }, "sensor"],
        [{ ...base, action: "finding", result: "confirmed", part: "x".repeat(129) }, "part"],
        [{ ...base, action: "comment" }, "note"],
        [{ ...base, action: "comment", note: "   " }, "note"],
        [{ ...base, action: "comment", note: "x".repeat(1025) }, "note"],
        [{ ...base, action: "assign" }, "to"],
        [{ ...base, action: "assign", to: "Ben", by: undefined }, "by"],
        [{ deviceID: "n3", action: "comment", note: "x", by: "Ana" }, "alarmId"],
      ];
      for (const [body, field] of cases)
        assert.deepEqual(
          refusal(await postJson(open.url, body)),
          [400, "FANWATCH_INPUT_INVALID", field],
          JSON.stringify(body),
        );
      assert.deepEqual(
        (await stored(nats.url, "n3")).map((t) => t.event),
        ["alarm", "acknowledged"],
        "nothing refused is in the history",
      );
    });

    it("with PAGE_USER_SECRET: every action needs the page's signed user who may act; `by` is the signed name; predictions need none", async () => {
      // Predictions (the connector's) need no header.
      const alarmId = await alarm(signed, "u1");
      // The header is signed for the exact bytes posted (postJson sends JSON.stringify(body)).
      const user = (
        body: unknown,
        role: "viewer" | "engineer" | "admin",
        name = "Erin",
        secret = SECRET,
        now = Date.now(),
      ) => ({ [USER_HEADER]: signUser({ name, role }, secret, JSON.stringify(body), now) });
      const later = new Date(Date.now() + 3_600_000).toISOString();
      const actions = [
        { deviceID: "u1", action: "acknowledge", by: "Mallory" },
        { deviceID: "u1", action: "shelve", until: later, by: "Mallory" },
        { deviceIDs: ["u1"], action: "maintenance", until: later, by: "Mallory" },
        { deviceID: "u1", alarmId, action: "comment", note: "x", by: "Mallory" },
        { deviceID: "u1", alarmId, action: "assign", to: "Mallory", by: "Mallory" },
        { deviceID: "u1", alarmId, action: "finding", result: "confirmed", by: "Mallory" },
      ];
      const refusedHeaders: Array<Record<string, string>> = [];
      for (const body of actions) {
        const forged = user(body, "engineer", "Erin", "another-secret-of-at-least-32-characters");
        const expired = user(body, "engineer", "Erin", SECRET, Date.now() - 2 * USER_SIGNATURE_TTL_MS);
        // A valid header captured from another action: signed for other bytes, so refused.
        const replayed = user({ ...body, note: "something else" }, "engineer");
        refusedHeaders.push(forged, expired, replayed);
        for (const headers of [{}, forged, expired, replayed, { [USER_HEADER]: "v1.not-a-user" }])
          assert.deepEqual(
            refusal(await postJson(signed.url, body, headers)),
            [401, "FANWATCH_UNAUTHENTICATED", USER_HEADER],
            `${body.action} with ${JSON.stringify(Object.keys(headers))}`,
          );
        assert.deepEqual(refusal(await postJson(signed.url, body, user(body, "viewer", "Vic"))), [
          403,
          "FANWATCH_FORBIDDEN",
          USER_HEADER,
        ]);
      }
      assert.deepEqual(
        (await stored(nats.url, "u1")).map((t) => t.event),
        ["alarm"],
        "nothing refused was done",
      );

      const acked = accepted(await postJson(signed.url, actions[0], user(actions[0], "engineer")));
      assert.deepEqual(
        [acked.record.acknowledgedBy, acked.transition.by],
        ["Erin", "Erin"],
        "the signed name, not the body's",
      );
      const { by: _, ...withoutBy } = actions[3] as Record<string, unknown>;
      const commented = accepted(await postJson(signed.url, withoutBy, user(withoutBy, "admin", "Ada")));
      assert.equal(commented.transition.by, "Ada", "no `by` needed in the body");
      const found = accepted(await postJson(signed.url, actions[5], user(actions[5], "engineer")));
      assert.equal(found.record.finding?.by, "Erin");
      assert.deepEqual(
        (await stored(nats.url, "u1")).map((t) => [t.event, t.by]),
        [
          ["alarm", undefined],
          ["acknowledged", "Erin"],
          ["commented", "Ada"],
          ["finding", "Erin"],
        ],
      );
      // Refusals are logged with their reason, never with the header's value.
      const log = signed.output();
      assert.match(log, /"event":"action_refused".*"reason":"x-fanwatch-user carries a wrong signature"/);
      assert.match(log, /"event":"action_refused".*"reason":"x-fanwatch-user has expired"/);
      assert.match(log, /"event":"action_refused".*"reason":"x-fanwatch-user was signed for another body"/);
      assert.match(log, /"event":"action_refused".*"role":"viewer"/);
      for (const header of refusedHeaders)
        assert.ok(!log.includes(header[USER_HEADER] ?? "-"), "the header is not logged");
    });
  },
);
