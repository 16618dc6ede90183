import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { startMosquitto, type Broker } from "./support/mosquitto.js";
import { Collector } from "./support/mqtt-collector.js";
import { finished, freePort, postJson, spawnCli, waitForOutput } from "./support/process.js";

const reading = (deviceID: string, values: [number, number, number, number]) => ({
  deviceID,
  timeStamp: "2020-10-02 10:00:00",
  rotation: values[0],
  temperature: values[1],
  vibration: values[2],
  sound: values[3],
});

async function startFunction(name: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcessWithoutNullStreams; url: string }> {
  const port = await freePort();
  const child = spawnCli(["function", name, "--port", String(port)], env);
  await waitForOutput(child, /listening on/);
  return { child, url: `http://127.0.0.1:${port}/` };
}

describe("predict function against a real Mosquitto", () => {
  let broker: Broker;
  let score: { child: ChildProcessWithoutNullStreams; url: string };
  let predict: { child: ChildProcessWithoutNullStreams; url: string };
  let collector: Collector;

  before(async () => {
    broker = await startMosquitto();
    collector = await Collector.start(broker.url, ["fan/anomaly", "fan/deadletter", "custom/anomaly"]);
    score = await startFunction("score", {});
    predict = await startFunction("predict", { MQTT_URL: broker.url, SCORE_URL: score.url, SCORE_RETRIES: "1" });
  });
  after(async () => {
    for (const p of [score, predict]) if (p?.child.exitCode === null) p.child.kill("SIGKILL");
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
    const body = answer.body as { scored: number; rejected: number; results: Array<{ deviceID?: string; fault?: number; error?: string; field?: string; index?: number }> };
    assert.equal(body.scored, 4);
    assert.equal(body.rejected, 5);
    assert.deepEqual(body.results.map((r) => r.deviceID ?? r.field), ["1", "temperature", "temperature", "4", "rotation", "deviceID", "reading", "8", "9"]);
    assert.equal(body.results[3]?.fault, 1);
    assert.match(body.results[1]?.error ?? "", /temperature: must be a finite number, not "hot"/);
    assert.match(body.results[2]?.error ?? "", /temperature: missing/);
    assert.match(body.results[4]?.error ?? "", /rotation: above 20000 rpm/);

    const anomalies = (await collector.waitFor("fan/anomaly", before.anomaly + 4)).slice(before.anomaly) as Array<{ deviceID: string }>;
    assert.deepEqual(anomalies.map((a) => a.deviceID).sort(), ["1", "4", "8", "9"]);
    const dead = (await collector.waitFor("fan/deadletter", before.dead + 5)).slice(before.dead) as Array<{ error: string; topic: string; payload: string; at: string }>;
    assert.equal(dead.length, 5);
    for (const letter of dead) {
      assert.equal(letter.topic, "fan/messages");
      assert.ok(letter.error.length > 5);
      assert.ok(!Number.isNaN(Date.parse(letter.at)));
    }
    assert.ok(dead.some((d) => d.payload.includes('"hot"')));
  });

  it("answers 400 to a body that is not JSON, and dead-letters it", async () => {
    const before = collector.on("fan/deadletter").length;
    const answer = await postJson(predict.url, "{deviceID: 1,", { "content-type": "text/plain", "x-topic": "fan/messages" });
    assert.equal(answer.status, 400);
    assert.match((answer.body as { error: string }).error, /not valid JSON/);
    const [letter] = (await collector.waitFor("fan/deadletter", before + 1)).slice(before) as Array<{ payload: string }>;
    assert.equal(letter?.payload, "{deviceID: 1,");
  });

  it("refuses prototype keys and oversized bodies without crashing", async () => {
    const proto = await postJson(predict.url, '{"deviceID":"1","__proto__":{"x":1},"rotation":1,"temperature":1,"vibration":1,"sound":1}');
    assert.equal(proto.status, 400);
    const huge = await postJson(predict.url, JSON.stringify({ ...reading("1", [600, 40, 150, 48]), pad: "x".repeat(1_100_000) }));
    assert.equal(huge.status, 413);
    assert.equal((await postJson(predict.url, reading("ok", [600, 40, 150, 48]))).status, 200);
  });

  it("accepts the reference system's variable names", async () => {
    const aliased = await startFunction("predict", { MQTT_HOST: broker.url, SCORING_URL: score.url, MQTT_PREDICT_TOPIC: "custom/anomaly" });
    try {
      assert.equal((await postJson(aliased.url, reading("alias", [600, 40, 150, 48]))).status, 200);
      const [message] = await collector.waitFor("custom/anomaly", 1);
      assert.equal((message as { deviceID: string }).deviceID, "alias");
    } finally {
      aliased.child.kill("SIGTERM");
      await finished(aliased.child);
    }
  });

  it("answers 503, never 200, when the score function is down", async () => {
    score.child.kill("SIGKILL");
    await finished(score.child);
    const answer = await postJson(predict.url, reading("1", [600, 40, 150, 48]));
    assert.equal(answer.status, 503, JSON.stringify(answer.body));
    assert.match((answer.body as { error: string }).error, /score function failed 2 times/);
  });
});
