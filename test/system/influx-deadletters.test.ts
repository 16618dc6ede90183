import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { toLines } from "../../connectors/influxdb/points.js";
import { deadLetter, type DeadLetter } from "../../lib/domain/dead-letter.js";
import { startInfluxDB, type Influx } from "../support/influxdb.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { freePort, runCli } from "../support/process.js";

const reading = JSON.stringify({
  deviceID: "7",
  timeStamp: "2026-11-27 10:00:00",
  rotation: 600,
  temperature: "hot",
  vibration: 150,
  sound: 50,
});
const prediction = JSON.stringify({ deviceID: "7", fault: 2, probability: 0.9 });
/** Pretty-printed, as some fans send it, on its per-fan topic: replayed as it was to that topic, listed on one line. */
const pretty = JSON.stringify({ deviceID: "8", rotation: 1 }, null, 2);

/** Stored, oldest first: what a user would find after a bad day, and one letter from yesterday. */
const letters: Array<{ minutesAgo: number; letter: (DeadLetter & { code?: string }) | string }> = [
  { minutesAgo: 24 * 60, letter: deadLetter("predict: old", "fan/messages", reading) },
  {
    minutesAgo: 50,
    // With the refusal's error code, which is stored as a tag.
    letter: {
      ...deadLetter('predict: temperature: must be a finite number, not "hot"', "fan/messages", reading),
      code: "FANWATCH_INPUT_INVALID",
    },
  },
  {
    minutesAgo: 40,
    letter: deadLetter("predict: rotation: too long", "fan/messages", `{"pad":"${"x".repeat(2000)}"}`),
  },
  { minutesAgo: 30, letter: deadLetter("connector: no route", "fan/deadletter", '{"error":"loop"}') },
  { minutesAgo: 20, letter: "garbage on the dead-letter topic" },
  { minutesAgo: 10, letter: deadLetter("influx-writer: prediction fault: invalid", "fan/anomaly", prediction) },
  { minutesAgo: 5, letter: deadLetter("predict: deviceID: bad \u001b[31mred", "fan/messages/8", pretty) },
];

describe("fanwatch deadletters, against a real InfluxDB 1.6 and Mosquitto", () => {
  let influx: Influx;
  let broker: Broker;
  before(async () => {
    [influx, broker] = await Promise.all([startInfluxDB(), startMosquitto()]);
    const now = Date.now();
    const lines = letters.map(({ minutesAgo, letter }) => {
      const point = toLines(
        "deadletter",
        Buffer.from(typeof letter === "string" ? letter : JSON.stringify(letter)),
        now - minutesAgo * 60_000,
        "fan/messages",
      );
      assert.ok(point.ok);
      return point.lines.join("\n");
    });
    assert.deepEqual(await createLineWriter({ api: "v1", url: influx.url, database: "fan" }).write(lines), {
      rejected: [],
    });
  });
  after(() => Promise.all([influx.stop(), broker.stop()]));

  it("lists the last hour's dead letters, oldest first, as text with control characters escaped", async () => {
    const { code, stdout, stderr } = await runCli(["deadletters", "--influx-url", influx.url]);
    assert.equal(code, 0, stderr);
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines.length, 12, stdout);
    assert.match(
      lines[0] ?? "",
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}fan\/messages {2}predict: temperature: must be a finite number, not "hot" \[FANWATCH_INPUT_INVALID\]$/,
    );
    assert.equal(lines[1], `    ${reading}`);
    assert.match(lines[6] ?? "", /Z {2}\(no topic\) {2}not a dead letter: not JSON: /);
    assert.match(lines[10] ?? "", /Z {2}fan\/messages\/8 {2}predict: deviceID: bad \\u001b\[31mred$/);
    assert.equal(lines[11], `    {\\n  "deviceID": "8",\\n  "rotation": 1\\n}`);
    assert.ok(!stdout.includes("\u001b"), "no raw escape reaches the terminal");
    assert.match(stderr, /^6 dead letters in the last 1h\n$/);
  });

  it("--json gives one object per letter; --since and --limit choose which", async () => {
    const all = await runCli(["deadletters", "--influx-url", influx.url, "--since", "2d", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    const listed = all.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { time: string; topic?: string; code?: string; error: string; payload: string });
    assert.deepEqual(
      listed.map((l) => [l.topic, l.code, l.error, l.payload]),
      letters.map(({ letter }) =>
        typeof letter === "string"
          ? [undefined, undefined, listed[4]?.error, letter]
          : [letter.topic, letter.code, letter.error, letter.payload],
      ),
    );
    const newest = await runCli(["deadletters", "--influx-url", influx.url, "--limit", "2", "--json"]);
    assert.deepEqual(
      newest.stdout
        .trimEnd()
        .split("\n")
        .map((l) => (JSON.parse(l) as { error: string }).error),
      ["influx-writer: prediction fault: invalid", "predict: deviceID: bad \u001b[31mred"],
    );
    assert.match(newest.stderr, /6 dead letters in the last 1h \(the newest 2 of 6; --limit to see more\)/);
    const none = await runCli(["deadletters", "--influx-url", influx.url, "--since", "1m"]);
    assert.equal(none.stdout, "");
    assert.match(none.stderr, /no dead letters in the last 1m/);
  });

  it("--replay publishes each untruncated payload to its topic at QoS 1 and says what it skipped", async () => {
    const subscriber = await Collector.start(broker.url, [
      "fan/messages",
      "fan/messages/8",
      "fan/anomaly",
      "fan/deadletter",
    ]);
    try {
      const { code, stdout, stderr } = await runCli([
        "deadletters",
        "--influx-url",
        influx.url,
        "--replay",
        "--broker",
        broker.url,
      ]);
      assert.equal(code, 0, stderr);
      assert.equal(stdout, "replayed 3 dead letters to their topics at QoS 1; skipped 3\n");
      assert.match(stderr, /skipping \S+ fan\/messages: payload truncated/);
      assert.match(stderr, /skipping \S+ fan\/deadletter: from the dead-letter topic itself/);
      assert.match(stderr, /skipping \S+ \(no topic\): not a dead letter: no source topic/);
      // Published in order: once the last arrived, anything wrongly published before it has too.
      await subscriber.waitFor("fan/messages/8", 1);
      assert.deepEqual(subscriber.on("fan/messages"), [JSON.parse(reading)]);
      // To the per-fan topic in full, not to the normalised tag it is stored under.
      assert.deepEqual(subscriber.on("fan/messages/8"), [JSON.parse(pretty)]);
      assert.deepEqual(subscriber.on("fan/anomaly"), [JSON.parse(prediction)]);
      assert.deepEqual(subscriber.on("fan/deadletter"), []);
    } finally {
      await subscriber.stop();
    }
  });

  it("tags dead letters with the per-fan topic normalised, so forged ids add no series", async () => {
    const q = encodeURIComponent('SHOW TAG VALUES FROM "deadletter" WITH KEY = "topic"');
    const response = await fetch(`${influx.url}/query?db=fan&q=${q}`);
    const body = (await response.json()) as { results: Array<{ series?: Array<{ values: string[][] }> }> };
    const values = (body.results[0]?.series?.[0]?.values ?? []).map((v) => v[1]).sort();
    assert.deepEqual(values, ["fan/anomaly", "fan/deadletter", "fan/messages", "fan/messages/+"]);
  });

  it("exits 1 with the reason when InfluxDB cannot be read, 2 on a usage error", async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const noInflux = await runCli(["deadletters", "--influx-url", down]);
    assert.equal(noInflux.code, 1);
    assert.match(noInflux.stderr, /^fanwatch: InfluxDB at http:\/\/127\.0\.0\.1:\d+ is unreachable: .*ECONNREFUSED/);
    const noDatabase = await runCli(["deadletters", "--influx-url", influx.url, "--influx-db", "nope"]);
    assert.equal(noDatabase.code, 1);
    assert.match(noDatabase.stderr, /fanwatch: database not found: nope/);
    const usage = await runCli(["deadletters", "--influx-url", influx.url, "--since", "an hour"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--since takes a duration such as 30m, 1h or 7d, not "an hour"/);
  });
});
