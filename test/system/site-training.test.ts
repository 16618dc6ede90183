import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Prediction } from "../../lib/domain/prediction.js";
import { bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import { labelSiteReadings } from "../../model/site-data.js";
import { readSiteHistory, type SiteHistory } from "../../model/site-history.js";
import { trainFromSite } from "../../model/site-train.js";
import { eventuallyValue } from "../support/eventually.js";
import { startHealth, stopHealthProcesses } from "../support/health-process.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { MODEL_DIR } from "../support/paths.js";
import { postJson, runCli } from "../support/process.js";

const t0 = Date.UTC(2026, 11, 1, 8, 0, 0);
const HEALTHY = { rotation: 600, temperature: 40, vibration: 150, sound: 48 };
const HOT = { ...HEALTHY, temperature: 57 };
const BROKEN = { rotation: 450, temperature: 53, vibration: 230, sound: 57 };

/** `count` predictions of a fan `stepMs` apart from `start`, each with its reading, as predict sends them to health. */
function predictions(
  deviceID: string,
  reading: typeof HEALTHY,
  fault: 0 | 1,
  count: number,
  start: number,
  stepMs = 1_000,
): Prediction[] {
  return Array.from({ length: count }, (_, i) => ({
    deviceID,
    fault,
    probability: fault === 1 ? 0.97 : 0.02,
    timeStamp: start + i * stepMs,
    reading: { ...reading, rotation: reading.rotation + (i % 5) },
    ...(fault === 1 ? { cause: "temperature" as const } : {}),
  }));
}

describe(
  "training from the site's findings (real nats-server, real health, real Mosquitto)",
  { timeout: 300_000 },
  () => {
    let nats: TestNats;
    let broker: Broker;
    let url: string;
    let nc: NatsConnection;

    async function send(body: unknown): Promise<void> {
      const answer = await postJson(url, body);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }

    async function episodeOf(deviceID: string): Promise<string> {
      const history = (await (await fetch(`${url}/history?deviceID=${deviceID}`)).json()) as {
        episodes: { alarmId: string }[];
      };
      const alarmId = history.episodes[0]?.alarmId;
      assert.ok(alarmId !== undefined, `fan ${deviceID} has an episode`);
      return alarmId;
    }

    /** As an engineer records one on an open episode: acknowledged first, then what was found. */
    async function finding(deviceID: string, result: string, acknowledge = true): Promise<void> {
      if (acknowledge) await send({ deviceID, action: "acknowledge", by: "Ben" });
      await send({ deviceID, alarmId: await episodeOf(deviceID), action: "finding", result, by: "Ben" });
    }

    before(async () => {
      [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      // Quick clears: 10 s quiet and 10 s hold in reading time.
      url = (
        await startHealth({
          NATS_URL: nats.url,
          MQTT_URL: broker.url,
          HEALTH_QUIET_MS: "10000",
          HEALTH_CLEARED_HOLD_MS: "10000",
          HEALTH_SILENT_AFTER_MS: "3600000",
        })
      ).url;
      nc = await connect({ servers: nats.url });
      // Fan 1 fails (temperature, vibration, sound), clears, and the engineer confirms the fault.
      await send(predictions("1", HEALTHY, 0, 30, t0));
      await send(predictions("1", BROKEN, 1, 10, t0 + 30_000));
      await send(predictions("1", HEALTHY, 0, 40, t0 + 40_000));
      await finding("1", "confirmed");
      // Fan 2 runs hot and is alarmed on from its first readings; first marked confirmed by mistake, then corrected.
      await send(predictions("2", HOT, 1, 30, t0));
      await finding("2", "confirmed");
      await finding("2", "false-alarm", false);
      // Fan 3 is healthy: 18 readings over 3 minutes, one healthy sample a minute.
      await send(predictions("3", HEALTHY, 0, 18, t0, 10_000));
      // Fan 4's alarm was not checked: no label.
      await send(predictions("4", BROKEN, 1, 10, t0));
      await finding("4", "not-checked");
    });

    after(async () => {
      await nc?.close();
      await stopHealthProcesses();
      await Promise.all([nats?.stop(), broker?.stop()]);
    });

    it("reads the findings and the evidence health wrote, and labels them", async () => {
      const history = await eventuallyValue<SiteHistory>(
        "every labelled episode's evidence and fan 3's three healthy samples",
        async () => readSiteHistory(jetstream(nc), await jetstreamManager(nc), "local"),
        (read) => read.episodes.length === 2 && read.healthy.filter((h) => h.deviceID === "3").length === 3,
        { paceMs: 200 },
      );
      assert.deepEqual(history.episodes.map((e) => [e.deviceID, e.result]).sort(), [
        ["1", "confirmed"],
        ["2", "false-alarm"],
      ]);
      assert.equal(history.unlabelled, 1); // fan 4: not-checked
      const rows = labelSiteReadings(history);
      const confirmed = rows.filter((r) => r.origin === "confirmed");
      const falseAlarm = rows.filter((r) => r.origin === "false-alarm");
      // Fan 1's fault readings from the one that opened the alarm (the fourth fault) on: faults.
      assert.equal(confirmed.length, 7);
      assert.ok(confirmed.every((r) => r.deviceID === "1" && r.faulty === 1 && r.features[1] === BROKEN.temperature));
      // Every reading of hot fan 2, before and during its episode: healthy.
      assert.equal(falseAlarm.length, 30);
      assert.ok(falseAlarm.every((r) => r.deviceID === "2" && r.faulty === 0 && r.features[1] === HOT.temperature));
      const healthy = rows.filter((r) => r.origin === "healthy");
      assert.ok(healthy.every((r) => r.faulty === 0 && r.features[1] === HEALTHY.temperature));
      assert.equal(healthy.filter((r) => r.deviceID === "3").length, 3);
      // At most --max-healthy samples, the last stored: fan 3's last one (the last written) among them.
      const newest = await readSiteHistory(jetstream(nc), await jetstreamManager(nc), "local", { maxHealthy: 2 });
      assert.equal(newest.healthy.length, 2);
      assert.ok(
        newest.healthy.some((h) => h.deviceID === "3" && h.reading.at === new Date(t0 + 120_000).toISOString()),
        JSON.stringify(newest.healthy),
      );
      assert.equal(newest.healthyLeftOut, history.healthy.length - 2);
    });

    it("trains a candidate, pushes it with the active model as its parent, and compares the two", async () => {
      const registry = await ModelRegistry.open(nc);
      const shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
      const activeId = bundleId(encodeBundle(shipped));
      await registry.bootstrap("local", shipped, "test");
      const result = await trainFromSite({
        site: "local",
        js: jetstream(nc),
        jsm: await jetstreamManager(nc),
        registry,
        by: "test",
        baseRows: 300,
        heldOut: 0.2,
        siteShare: 0.25,
        epochs: 2,
        batchSize: 64,
        seed: 1,
        testSplit: 0.2,
      });
      assert.equal(result.candidate.parent, activeId);
      assert.equal(result.candidate.created, true);
      const stored = await registry.get(result.candidate.id);
      assert.equal(stored.parent, activeId);
      assert.match(stored.metadata.training.data.file, /^site local: 1 confirmed episodes \(7 fault readings\)/);
      // Its golden set: the 200 standard readings and the held-out site readings (1 fault, 6 hot, some samples).
      const site = stored.golden.readings.slice(200);
      assert.equal(site.length, result.summary.heldOutRows.site);
      assert.ok(site.some((r) => r.input[1] === HOT.temperature && r.label === 0));
      // The shipped model calls every held-out hot reading a fault: none of the false alarm's readings is called healthy.
      assert.equal(result.active.byOrigin["false-alarm"], 0);
      assert.equal(result.active.id, activeId);
      assert.equal(result.candidateScores.id, result.candidate.id);
      assert.equal(result.summary.base.rows, 300);
      assert.equal(result.active.golden.readings, result.candidateScores.golden.readings);
    });

    it("runs as fanwatch train --from-site, and says what it needs", async () => {
      const run = await runCli(
        ["train", "--from-site", "--epochs", "1", "--batch-size", "64", "--base-rows", "200", "--json"],
        { NATS_URL: nats.url },
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /candidate fan-[0-9a-f]{16} pushed, parent fan-[0-9a-f]{16}/);
      assert.match(run.stdout, /false-alarm readings called healthy\s+0\.000/);
      const json = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "") as { candidate: { parent: string } };
      assert.match(json.candidate.parent, /^fan-/);

      const noRegistry = await runCli(["train", "--from-site"], { NATS_URL: "" });
      assert.notEqual(noRegistry.code, 0);
      assert.match(noRegistry.stderr, /NATS_URL is not set/);
      const both = await runCli(["train", "--from-site", "--data", "x.csv"], { NATS_URL: nats.url });
      assert.notEqual(both.code, 0);
      assert.match(both.stderr, /either --data <file> or --from-site/);
    });
  },
);
