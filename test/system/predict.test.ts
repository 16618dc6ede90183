import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import mqtt from "mqtt";
import { BudgetExhaustedError, PublishFailedError } from "../../lib/errors.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { Publisher } from "../../lib/mqtt/publisher.js";
import { PredictionSchema, type Prediction } from "../../lib/domain/prediction.js";
import { isSensorNotice, SensorNoticeSchema } from "../../lib/domain/sensor-notice.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { eventuallyValue } from "../support/eventually.js";
import { Collector } from "../support/mqtt-collector.js";
import { finished, freePort, postJson, spawnCli, waitUntilReady } from "../support/process.js";

const reading = (deviceID: string, values: [number, number, number, number]) => ({
  deviceID,
  timeStamp: "2020-10-02 10:00:00",
  rotation: values[0],
  temperature: values[1],
  vibration: values[2],
  sound: values[3],
});

async function startFunction(
  name: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcessWithoutNullStreams; url: string; output: () => string }> {
  const port = await freePort();
  const child = spawnCli(["function", name, "--port", String(port)], env);
  let output = "";
  for (const stream of [child.stdout, child.stderr]) stream.on("data", (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}/`;
  await waitUntilReady(url, child);
  return { child, url, output: () => output };
}

/** A counter's value in a function's Prometheus metrics (0 when absent). */
async function counter(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}_/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("predict function against a real Mosquitto", () => {
  let broker: Broker;
  let score: Awaited<ReturnType<typeof startFunction>>;
  let predict: Awaited<ReturnType<typeof startFunction>>;
  let collector: Collector;

  before(async () => {
    broker = await startMosquitto();
    collector = await Collector.start(broker.url, ["fan/anomaly", "fan/deadletter", "custom/anomaly"]);
    score = await startFunction("score", {});
    predict = await startFunction("predict", { MQTT_URL: broker.url, SCORE_URL: score.url, LOG_LEVEL: "warn" });
  });
  after(async () => {
    for (const p of [score, predict])
      if (p?.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await collector?.stop();
    await broker?.stop();
  });

  it("scores one reading, publishes its prediction and answers once it is out", async () => {
    const answer = await postJson(predict.url, reading("fan-7", [420, 53, 240, 58]));
    assert.equal(answer.status, 200);
    const body = answer.body as { scored: number; rejected: number; results: Array<Record<string, unknown>> };
    assert.equal(body.scored, 1);
    assert.equal(body.rejected, 0);
    assert.equal(body.results[0]?.deviceID, "fan-7");
    assert.equal(body.results[0]?.fault, 1);
    assert.match(String(body.results[0]?.model), /^fan-dense-/);
    const [published] = await collector.waitFor("fan/anomaly", 1);
    assert.deepEqual(published, body.results[0]);
    assert.equal((published as { timeStamp: string }).timeStamp, "2020-10-02 10:00:00");
  });

  it("explains faulty readings only: their predictions name the cause and each sensor's contribution; every one carries its reading", async () => {
    const explainCalls = () => counter(predict.url, "predict_explain_calls_total", 'outcome="ok"');
    const before = { anomaly: collector.on("fan/anomaly").length, explained: await explainCalls() };
    const batch = [
      reading("healthy", [620, 40, 150, 48]),
      reading("vibrating", [600, 40, 240, 48.5]),
      reading("hot", [600, 54, 152, 48.5]),
      reading("healthy-too", [580, 41, 160, 50]),
    ];
    const answer = await postJson(predict.url, batch);
    assert.equal(answer.status, 200);
    const results = (answer.body as { results: Prediction[] }).results;
    assert.deepEqual(
      results.map((p) => [p.deviceID, p.fault, p.cause]),
      [
        ["healthy", 0, undefined],
        ["vibrating", 1, "vibration"],
        ["hot", 1, "temperature"],
        ["healthy-too", 0, undefined],
      ],
    );
    const published = (await collector.waitFor("fan/anomaly", before.anomaly + 4))
      .slice(before.anomaly)
      .map((m) => PredictionSchema.parse(m));
    published.sort(
      (a, b) => batch.findIndex((r) => r.deviceID === a.deviceID) - batch.findIndex((r) => r.deviceID === b.deviceID),
    );
    assert.deepEqual(published, results);
    for (const [i, p] of published.entries()) {
      const sent = batch[i]!;
      assert.deepEqual(p.reading, {
        rotation: sent.rotation,
        temperature: sent.temperature,
        vibration: sent.vibration,
        sound: sent.sound,
      });
      if (p.fault === 0) {
        assert.equal(p.contributions, undefined);
        continue;
      }
      const contributions = p.contributions!;
      assert.deepEqual(Object.keys(contributions), ["rotation", "temperature", "vibration", "sound"]);
      const largest = Math.max(...Object.values(contributions));
      assert.equal(contributions[p.cause!], largest);
      // Measured from the healthy reference reading, whose probability is well below the threshold.
      const total = Object.values(contributions).reduce((a, b) => a + b, 0);
      assert.ok(total > 0.3 && total <= p.probability, `contributions add up to ${total}`);
    }
    assert.equal(await explainCalls(), before.explained + 1, "one explain call for the two faulty readings");
    assert.equal((await postJson(predict.url, reading("calm", [600, 40, 150, 48.5]))).status, 200);
    assert.equal(await explainCalls(), before.explained + 1, "no explain call when every reading is healthy");
  });

  it("answers 503 and publishes nothing when score cannot explain, without retrying", async () => {
    // A stand-in for a score function whose explanations are unavailable (overloaded, or an older
    // version being replaced): plain requests go to the real score, explain requests get a 503.
    const standIn: Server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        if (body.includes('"explain":true')) {
          response.writeHead(503, { "content-type": "application/json" }).end('{"error":"overloaded"}');
          return;
        }
        fetch(score.url, { method: "POST", headers: { "content-type": "application/json" }, body })
          .then(async (r) => response.writeHead(r.status, { "content-type": "application/json" }).end(await r.text()))
          .catch(() => response.writeHead(502).end());
      });
    });
    await new Promise<void>((resolve) => standIn.listen(0, "127.0.0.1", resolve));
    const port = (standIn.address() as AddressInfo).port;
    const other = await startFunction("predict", {
      MQTT_URL: broker.url,
      SCORE_URL: `http://127.0.0.1:${port}/`,
      LOG_LEVEL: "warn",
    });
    try {
      const before = collector.on("fan/anomaly").length;
      const answer = await postJson(other.url, [
        reading("unexplained-ok", [620, 40, 150, 48]),
        reading("unexplained", [420, 53, 240, 58]),
      ]);
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.match((answer.body as { error: string }).error, /the score function answered 503/);
      assert.equal(await counter(other.url, "predict_explain_calls_total", 'outcome="unavailable"'), 1);
      assert.equal(await counter(other.url, "predict_score_calls_total", 'outcome="ok"'), 1);
      // A healthy reading needs no explanation, so it goes through; once it is out, anything the
      // failed invocation had published would be too.
      assert.equal((await postJson(other.url, reading("marker", [620, 40, 150, 48]))).status, 200);
      const after = (await collector.waitFor("fan/anomaly", before + 1)).slice(before) as Array<{ deviceID: string }>;
      assert.deepEqual(
        after.map((p) => p.deviceID),
        ["marker"],
      );
    } finally {
      other.child.kill("SIGTERM");
      await finished(other.child);
      standIn.close();
    }
  });

  it("scores a batch, rejects bad readings alone and dead-letters them with reasons", async () => {
    const before = { anomaly: collector.on("fan/anomaly").length, dead: collector.on("fan/deadletter").length };
    const batch = [
      reading("1", [620, 40, 150, 48]),
      { ...reading("2", [620, 40, 150, 48]), temperature: "hot" },
      { deviceID: "3", rotation: 600 },
      reading("4", [420, 53, 240, 58]),
      { ...reading("5", [620, 40, 150, 48]), rotation: 1e9 },
      { ...reading("", [620, 40, 150, 48]) },
      "not an object",
      { ...reading("8", [620, 40, 150, 48]), deep: JSON.parse("[".repeat(500) + "]".repeat(500)) as unknown },
      { deviceID: 9, rotation: 620, temperature: 40, vibration: 150, sound: 48 },
    ];
    const answer = await postJson(predict.url, batch);
    assert.equal(answer.status, 200);
    const body = answer.body as {
      scored: number;
      rejected: number;
      results: Array<{ deviceID?: string; fault?: number; error?: string; field?: string; index?: number }>;
    };
    assert.equal(body.scored, 4);
    assert.equal(body.rejected, 5);
    assert.deepEqual(
      body.results.map((r) => r.deviceID ?? r.field),
      ["1", "temperature", "temperature", "4", "rotation", "deviceID", "reading", "8", "9"],
    );
    assert.equal(body.results[3]?.fault, 1);
    assert.match(body.results[1]?.error ?? "", /temperature: must be a finite number, not "hot"/);
    assert.match(body.results[2]?.error ?? "", /temperature: missing/);
    assert.match(body.results[4]?.error ?? "", /rotation: 1000000000 rpm is outside its physical limits/);

    // Four predictions, and the notice of the implausible reading that tells health of it.
    const anomalies = (await collector.waitFor("fan/anomaly", before.anomaly + 5)).slice(before.anomaly) as Array<{
      deviceID: string;
      implausible?: unknown;
    }>;
    assert.deepEqual(
      anomalies
        .filter((a) => a.implausible === undefined)
        .map((a) => a.deviceID)
        .sort(),
      ["1", "4", "8", "9"],
    );
    const dead = (await collector.waitFor("fan/deadletter", before.dead + 5)).slice(before.dead) as Array<{
      error: string;
      topic: string;
      payload: string;
      at: string;
    }>;
    assert.equal(dead.length, 5);
    for (const letter of dead) {
      assert.equal(letter.topic, "fan/messages");
      assert.ok(letter.error.length > 5);
      assert.ok(!Number.isNaN(Date.parse(letter.at)));
    }
    assert.ok(dead.some((d) => d.payload.includes('"hot"')));
  });

  it("rejects a reading no sensor can give as a sensor fault: its own code in the answer and the dead letter, a notice for health, the rest scored", async () => {
    const implausibleCount = () => counter(predict.url, "predict_readings_total", 'outcome="implausible"');
    const before = {
      anomaly: collector.on("fan/anomaly").length,
      dead: collector.on("fan/deadletter").length,
      implausible: await implausibleCount(),
    };
    const batch = [
      reading("p1", [620, 40, 150, 48]),
      reading("p2", [-600, 40, 150, 48]),
      reading("p3", [620, 40, 150, 1e308]),
      { ...reading("p4", [620, 40, 150, 48]), temperature: "hot" },
      reading("p5", [420, 53, 240, 58]),
    ];
    const answer = await postJson(predict.url, batch);
    assert.equal(answer.status, 200);
    const body = answer.body as {
      scored: number;
      rejected: number;
      results: Array<{ deviceID?: string; fault?: number; error?: string; field?: string; code?: string }>;
    };
    assert.equal(body.scored, 2);
    assert.equal(body.rejected, 3);
    assert.deepEqual(body.results[1], {
      index: 1,
      error: "rotation: -600 rpm is outside its physical limits (0 to 20000 rpm): a sensor fault, not a fan fault",
      field: "rotation",
      code: "FANWATCH_READING_IMPLAUSIBLE",
    });
    assert.equal(body.results[2]?.code, "FANWATCH_READING_IMPLAUSIBLE");
    assert.equal(body.results[2]?.field, "sound");
    assert.equal(body.results[3]?.code, undefined, "a malformed reading is no sensor fault");
    assert.equal(body.results[4]?.fault, 1);

    const anomalies = (await collector.waitFor("fan/anomaly", before.anomaly + 4)).slice(before.anomaly);
    const notices = anomalies.filter((m) => isSensorNotice(m)).map((m) => SensorNoticeSchema.parse(m));
    assert.deepEqual(
      notices.sort((a, b) => a.deviceID.localeCompare(b.deviceID)),
      [
        {
          deviceID: "p2",
          timeStamp: "2020-10-02 10:00:00",
          implausible: { sensor: "rotation", value: -600, code: "FANWATCH_READING_IMPLAUSIBLE" },
        },
        {
          deviceID: "p3",
          timeStamp: "2020-10-02 10:00:00",
          implausible: { sensor: "sound", value: 1e308, code: "FANWATCH_READING_IMPLAUSIBLE" },
        },
      ],
    );
    const predicted = anomalies.filter((m) => !isSensorNotice(m)).map((m) => PredictionSchema.parse(m).deviceID);
    assert.deepEqual(predicted.sort(), ["p1", "p5"]);

    const dead = (await collector.waitFor("fan/deadletter", before.dead + 3)).slice(before.dead) as Array<{
      error: string;
      payload: string;
      code?: string;
    }>;
    const coded = dead.filter((d) => d.code === "FANWATCH_READING_IMPLAUSIBLE");
    assert.equal(coded.length, 2);
    assert.ok(coded.some((d) => d.payload.includes('"deviceID":"p2"') && /rotation: -600 rpm/.test(d.error)));
    assert.ok(dead.some((d) => d.payload.includes('"hot"') && d.code === undefined));
    assert.equal(await implausibleCount(), before.implausible + 2);
  });

  it("dead-letters timeStamps InfluxDB cannot store and impossible dates, and scores the rest", async () => {
    const before = { anomaly: collector.on("fan/anomaly").length, dead: collector.on("fan/deadletter").length };
    const batch = [
      reading("t1", [620, 40, 150, 48]),
      { ...reading("t2", [620, 40, 150, 48]), timeStamp: "9999-12-31 23:59:59" },
      { ...reading("t3", [620, 40, 150, 48]), timeStamp: "2020-02-31 10:00:00" },
      { ...reading("t4", [620, 40, 150, 48]), timeStamp: -1 },
      reading("t5", [620, 40, 150, 48]),
    ];
    const answer = await postJson(predict.url, batch);
    assert.equal(answer.status, 200);
    const body = answer.body as {
      scored: number;
      rejected: number;
      results: Array<{ deviceID?: string; error?: string }>;
    };
    assert.equal(body.scored, 2);
    assert.equal(body.rejected, 3);
    assert.match(body.results[1]?.error ?? "", /^timeStamp: must be between 1970-01-01 and 2262-04-11/);
    assert.match(body.results[2]?.error ?? "", /^timeStamp: 2020-02 has no day 31/);
    assert.match(body.results[3]?.error ?? "", /^timeStamp: must be between 1970-01-01 and 2262-04-11/);
    const anomalies = (await collector.waitFor("fan/anomaly", before.anomaly + 2)).slice(before.anomaly) as Array<{
      deviceID: string;
    }>;
    assert.deepEqual(anomalies.map((a) => a.deviceID).sort(), ["t1", "t5"]);
    const dead = (await collector.waitFor("fan/deadletter", before.dead + 3)).slice(before.dead) as Array<{
      error: string;
      payload: string;
    }>;
    const letter = dead.find((d) => d.payload.includes("9999-12-31 23:59:59"));
    assert.match(letter?.error ?? "", /timeStamp: must be between 1970-01-01 and 2262-04-11/);
  });

  it("answers 400 to a body that is not JSON, and dead-letters it", async () => {
    const before = collector.on("fan/deadletter").length;
    const answer = await postJson(predict.url, "{deviceID: 1,", {
      "content-type": "text/plain",
      "x-topic": "fan/messages",
    });
    assert.equal(answer.status, 400);
    assert.match((answer.body as { error: string }).error, /not valid JSON/);
    const [letter] = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{
      payload: string;
    }>;
    assert.equal(letter?.payload, "{deviceID: 1,");
  });

  it("leaves the dead letter of a body that is not JSON to our connector, which dead-letters every 4xx", async () => {
    const before = collector.on("fan/deadletter").length;
    const answer = await postJson(predict.url, "{connector: 1,", {
      "content-type": "text/plain",
      "x-topic": "fan/messages",
      "x-connector": "fanwatch-mqtt-connector",
    });
    assert.equal(answer.status, 400);
    // A marker published after the bad body: once it arrives, anything predict published before it has too.
    const marker = await postJson(predict.url, "{marker: 1,", {
      "content-type": "text/plain",
      "x-topic": "fan/messages",
    });
    assert.equal(marker.status, 400);
    const letters = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{ payload: string }>;
    assert.deepEqual(
      letters.map((l) => l.payload),
      ["{marker: 1,"],
    );
  });

  it("dead-letters malformed JSON with its reason whatever its content type, application/json with X-Topic (the official connector's) included", async () => {
    for (const type of [
      "application/json",
      "application/json; charset=utf-8",
      "text/plain",
      "application/octet-stream",
      undefined,
    ]) {
      const before = collector.on("fan/deadletter").length;
      const payload = `{"deviceID": "${type ?? "no content type"}",`;
      const response = await fetch(predict.url, {
        method: "POST",
        headers: { "x-topic": "fan/messages", ...(type === undefined ? {} : { "content-type": type }) },
        body: Buffer.from(payload),
      });
      assert.equal(response.status, 400, String(type));
      assert.match(((await response.json()) as { error: string }).error, /request body is not valid JSON/);
      const [letter] = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{
        error: string;
        topic: string;
        payload: string;
      }>;
      assert.match(letter?.error ?? "", /request body is not valid JSON/, String(type));
      assert.equal(letter?.topic, "fan/messages");
      assert.equal(letter?.payload, payload);
    }
  });

  it("leaves malformed application/json from our connector to the connector too: one dead letter, not two", async () => {
    const before = collector.on("fan/deadletter").length;
    const answer = await postJson(predict.url, "{json connector: 1,", {
      "x-topic": "fan/messages",
      "x-connector": "fanwatch-mqtt-connector",
    });
    assert.equal(answer.status, 400);
    const marker = await postJson(predict.url, "{json marker: 1,", { "x-topic": "fan/messages" });
    assert.equal(marker.status, 400);
    const letters = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{ payload: string }>;
    assert.deepEqual(
      letters.map((l) => l.payload),
      ["{json marker: 1,"],
    );
  });

  it("answers 400 to a reading that is not UTF-8, and dead-letters it with the reason", async () => {
    const before = collector.on("fan/deadletter").length;
    // A Latin-1 "é" (0xE9) where UTF-8 needs two bytes: decoded leniently it would pass as U+FFFD.
    const bytes = Buffer.concat([
      Buffer.from('{"deviceID":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('","rotation":600,"temperature":40,"vibration":150,"sound":48}'),
    ]);
    const response = await fetch(predict.url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "x-topic": "fan/messages" },
      body: bytes,
    });
    assert.equal(response.status, 400);
    assert.match(
      ((await response.json()) as { error: string }).error,
      /request body is not valid JSON: not valid UTF-8 text/,
    );
    const [letter] = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{
      error: string;
      topic: string;
      payload: string;
    }>;
    assert.match(letter?.error ?? "", /not valid UTF-8/);
    assert.equal(letter?.topic, "fan/messages");
    assert.match(letter?.payload ?? "", /"deviceID":"caf/);
  });

  it("refuses prototype keys and oversized bodies without crashing", async () => {
    const proto = await postJson(
      predict.url,
      '{"deviceID":"1","__proto__":{"x":1},"rotation":1,"temperature":1,"vibration":1,"sound":1}',
    );
    assert.equal(proto.status, 400);
    const huge = await postJson(
      predict.url,
      JSON.stringify({ ...reading("1", [600, 40, 150, 48]), pad: "x".repeat(1_100_000) }),
    );
    assert.equal(huge.status, 413);
    assert.equal((await postJson(predict.url, reading("ok", [600, 40, 150, 48]))).status, 200);
  });

  it("accepts the reference system's variable names, and says which removed settings it ignores", async () => {
    const aliased = await startFunction("predict", {
      MQTT_HOST: broker.url,
      SCORING_URL: score.url,
      MQTT_PREDICT_TOPIC: "custom/anomaly",
      SCORE_RETRIES: "3",
      LOG_LEVEL: "warn",
    });
    try {
      assert.match(aliased.output(), /SCORE_RETRIES no longer has an effect: the connector retries/);
      assert.doesNotMatch(aliased.output(), /PUBLISH_TIMEOUT_MS/);
      assert.equal((await postJson(aliased.url, reading("alias", [600, 40, 150, 48]))).status, 200);
      const [message] = await collector.waitFor("custom/anomaly", 1);
      assert.equal((message as { deviceID: string }).deviceID, "alias");
    } finally {
      aliased.child.kill("SIGTERM");
      await finished(aliased.child);
    }
  });

  it("answers 503 when the broker does not acknowledge within the caller's timeout; the late publish is a duplicate", async () => {
    const pid = broker.pid as number;
    const before = collector.on("fan/anomaly").length;
    process.kill(pid, "SIGSTOP"); // connected, but acknowledges nothing
    let answer;
    try {
      answer = await postJson(predict.url, reading("unacked", [600, 40, 150, 48]), { "x-timeout-ms": "1000" });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.match(
      (answer.body as { error: string }).error,
      /time ran out \(X-Timeout-Ms 1000 ms less a margin\) waiting for the broker to acknowledge 1 messages on fan\/anomaly/,
    );
    // MQTT.js had sent it: once the broker reads it, it is published though predict answered 503.
    // The connector retries the 503, so this reading is predicted twice (at-least-once).
    const late = (await collector.waitFor("fan/anomaly", before + 1)).slice(before) as Array<{ deviceID: string }>;
    assert.equal(late[0]?.deviceID, "unacked");
    assert.equal((await postJson(predict.url, reading("after", [600, 40, 150, 48]))).status, 200);
  });

  it("answers 503 within the caller's timeout when score is slower, and does not call score again", async () => {
    const pid = score.child.pid as number;
    const calls = () =>
      Promise.all(
        ["ok", "unavailable", "out_of_time", "rejected"].map((o) =>
          counter(predict.url, "predict_score_calls_total", `outcome="${o}"`),
        ),
      );
    const [ok, unavailable, outOfTime, rejected] = await calls();
    process.kill(pid, "SIGSTOP"); // score accepts the connection and never answers
    let answer;
    try {
      answer = await postJson(predict.url, reading("slow", [600, 40, 150, 48]), { "x-timeout-ms": "1000" });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // Answered while score was still frozen: predict did not wait for it.
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.match(
      (answer.body as { error: string }).error,
      /time ran out \(X-Timeout-Ms 1000 ms less a margin\) waiting for the score function/,
    );
    assert.deepEqual(await calls(), [ok, unavailable, (outOfTime ?? 0) + 1, rejected]);
  });

  it("answers 503 at once, never 200, when the score function is down: one call, no retries", async () => {
    const before = await counter(predict.url, "predict_score_calls_total", 'outcome="unavailable"');
    score.child.kill("SIGKILL");
    await finished(score.child);
    const answer = await postJson(predict.url, reading("1", [600, 40, 150, 48]));
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.match((answer.body as { error: string }).error, /^the score function is unreachable: connect ECONNREFUSED/);
    assert.equal(await counter(predict.url, "predict_score_calls_total", 'outcome="unavailable"'), before + 1);
  });
});

// Every test has its own broker and client: none finds the broker frozen or killed by another.
describe("predict's publisher against a real Mosquitto", () => {
  let broker: Broker;
  let client: mqtt.MqttClient;

  beforeEach(async () => {
    broker = await startMosquitto();
    client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 100, clientId: "publisher-test" });
  });
  afterEach(async () => {
    try {
      if (broker?.pid !== undefined) process.kill(broker.pid, "SIGCONT");
    } catch {
      // killed by the test: nothing to resume
    }
    await client?.endAsync(true);
    await broker?.stop();
  });

  it("refuses at once to pile up more unacknowledged publishes than its bound", async () => {
    const publisher = new Publisher(client, { maxUnacknowledged: 2 });
    const pid = broker.pid as number;
    process.kill(pid, "SIGSTOP");
    try {
      await assert.rejects(
        publisher.publish("t/frozen", [{ n: 1 }, { n: 2 }], new Deadline(200, "test")),
        BudgetExhaustedError,
      );
      const error = await publisher.publish("t/frozen", [{ n: 3 }], new Deadline(60_000, "test")).then(
        () => "published",
        (e: unknown) => e,
      );
      assert.ok(error instanceof PublishFailedError, String(error));
      assert.equal(error.status, 503);
      assert.match(
        error.message,
        /the broker has not acknowledged 2 earlier publishes; not adding 1 more until it does/,
      );
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // Once the broker acknowledges the earlier two, there is room again; until then, each try is refused.
    const outcome = await eventuallyValue(
      "room for a publish once the broker acknowledged the earlier two",
      () =>
        publisher.publish("t/thawed", [{ n: 4 }], new Deadline(10_000, "test")).then(
          () => "published",
          (e: unknown) => e,
        ),
      (o) => o === "published" || !(o instanceof PublishFailedError),
    );
    assert.equal(outcome, "published");
  });

  it("fails with a 503 when the broker drops the connection mid-publish", async () => {
    const publisher = new Publisher(client);
    const pid = broker.pid as number;
    process.kill(pid, "SIGSTOP");
    const publishing = publisher.publish("t/dropped", [{ n: 1 }], new Deadline(1_000, "test"));
    const outcome = publishing.then(
      () => "acknowledged",
      (error: unknown) => error,
    );
    process.kill(pid, "SIGKILL"); // the publish is written to the socket; no PUBACK will come
    const error = await outcome;
    assert.ok(error instanceof BudgetExhaustedError, String(error));
    assert.equal(error.status, 503);
    assert.match(error.message, /waiting for the broker to acknowledge 1 messages on t\/dropped/);
  });

  it("waits for a broker that is down, within the deadline, instead of queueing", async () => {
    const publisher = new Publisher(client);
    const lost = new Promise<void>((resolve) => client.once("close", () => resolve()));
    process.kill(broker.pid as number, "SIGKILL");
    await lost;
    assert.equal(client.connected, false);
    const error = await publisher.publish("t/down", [{ n: 1 }], new Deadline(300, "test")).then(
      () => "published",
      (e: unknown) => e,
    );
    assert.ok(error instanceof BudgetExhaustedError, String(error));
    assert.match(error.message, /waiting for the broker, which is unreachable, to publish 1 messages to t\/down/);
    // Back within the deadline: the publish goes out and is acknowledged.
    const publishing = publisher.publish("t/back", [{ n: 2 }], new Deadline(10_000, "test"));
    await broker.restart();
    await publishing;
  });
});
