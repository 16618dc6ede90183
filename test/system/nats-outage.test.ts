import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";
import { faulty, healthy } from "../../bench/faults/load.js";
import { AlarmTransitionSchema, HealthRecordSchema, type AlarmTransition } from "../../lib/domain/health.js";
import { PredictionSchema } from "../../lib/domain/prediction.js";
import { CONNECTOR_NODE_OPTIONS } from "../../connectors/mqtt/node-options.js";
import { eventually } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { startNats, type TestNats } from "../support/nats.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";
import { writeGatewaySecrets } from "../support/gateway-secrets.js";

// Health's NATS dies while readings keep coming, as in the issue "One way to build a part": the
// whole pipeline as processes (Mosquitto from the shipped config, a real nats-server, the local
// gateway running score, predict and health from stack.yml, the connector routing fan/messages to
// predict and fan/anomaly to health). Predictions must keep arriving for new readings while health
// answers 503 and its messages are held; once NATS is back health must have taken the held
// predictions: the fan that turned faulty during the outage gets its alarm, no fan that kept
// reporting is called silent. Counts and orderings only, no timing thresholds.
describe("NATS killed under the pipeline (real Mosquitto, real nats-server)", { timeout: 180_000 }, () => {
  let broker: Broker;
  let nats: TestNats;
  let secrets: string;
  let gateway: ChildProcessWithoutNullStreams;
  let connector: ChildProcessWithoutNullStreams;
  let gatewayUrl: string;
  let connectorPort: number;
  let collector: Collector;
  let fleet: MqttClient;
  const FANS = ["fan-1", "fan-2", "fan-3"];
  const FAULTY = "fan-1";
  const t0 = Date.UTC(2026, 10, 1);
  /** Readings sent per fan: the k-th carries timeStamp t0 + k s (reading time drives health's rules). */
  const sent = new Map<string, number>();
  let faultyFrom = Infinity;

  /** Sends one reading from every fan; `faultyFrom` on, FAULTY's readings are faulty. */
  async function tick(): Promise<void> {
    await Promise.all(
      FANS.map((deviceID) => {
        const k = sent.get(deviceID) ?? 0;
        sent.set(deviceID, k + 1);
        const values = deviceID === FAULTY && k >= faultyFrom ? faulty(k) : healthy(k);
        const reading = { deviceID, timeStamp: new Date(t0 + k * 1000).toISOString(), ...values };
        return fleet.publishAsync("fan/messages", JSON.stringify(reading), { qos: 1 });
      }),
    );
  }

  const predictions = () => collector.on("fan/anomaly").map((p) => PredictionSchema.parse(p));
  const predicted = (deviceID: string, k: number) =>
    predictions().some((p) => p.deviceID === deviceID && p.timeStamp === new Date(t0 + k * 1000).toISOString());
  const transitions = (): AlarmTransition[] => collector.on("fan/alarm").map((t) => AlarmTransitionSchema.parse(t));
  const health = (query = "") => fetch(`${gatewayUrl}/function/health${query}`);
  const connectorHealth = async () =>
    (await (await fetch(`http://127.0.0.1:${connectorPort}/healthz`)).json()) as {
      problems: string[];
      sessions: Array<{ filter: string; state: string }>;
    };

  before(async () => {
    [broker, nats] = await Promise.all([startMosquitto(), startNats()]);
    secrets = await writeGatewaySecrets("fanwatch-nats-outage-", "admin", randomBytes(12).toString("base64url"));
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    gateway = spawnCli(["gateway", "--port", String(gatewayPort)], {
      LOG_LEVEL: "warn",
      MQTT_URL: broker.url,
      SECRET_MOUNT_PATH: secrets,
      NATS_URL: nats.url,
      // Silent after 2 s, looked at every 200 ms: the outage below lasts longer than that (the
      // connector's circuit alone takes about 3 s to open), so a health that took its own outage
      // for the fans' silence would say so here.
      HEALTH_SILENT_AFTER_MS: "2000",
      HEALTH_SILENT_CHECK_MS: "200",
    });
    await waitForOutput(gateway, /gateway running/, 60_000);
    connectorPort = await freePort();
    connector = spawnCli(["connector"], {
      gateway_url: gatewayUrl,
      broker: broker.url,
      basic_auth: "true",
      secret_mount_path: secrets,
      port: String(connectorPort),
      client_id: "nats-outage",
      topic: "fan/messages,fan/anomaly",
      refresh_interval_ms: "500",
      // Probes of health's open circuit every 0.5 s at most (5 s by default): the held predictions
      // then come well within HEALTH_SILENT_AFTER_MS (2 s here) of NATS's return, as they do within
      // the default 30 s (docs/health.md). With 5 s a sweep could run first: a race, not a defect.
      retry_max_ms: "500",
      NODE_OPTIONS: CONNECTOR_NODE_OPTIONS,
    });
    await waitForOutput(connector, /connector running/);
    collector = await Collector.start(broker.url, ["fan/anomaly", "fan/alarm"]);
    fleet = await mqtt.connectAsync(broker.url, { clientId: "nats-outage-fleet", clean: false });
  });
  after(async () => {
    await fleet?.endAsync();
    await collector?.stop();
    if (connector !== undefined) await terminate(connector);
    if (gateway !== undefined) await terminate(gateway);
    await Promise.all([nats?.stop(), broker?.stop()]);
    await rm(secrets, { recursive: true, force: true });
  });

  it("keeps predicting while health's NATS is dead, and health takes the held predictions once it is back", async () => {
    // Steady state: every fan predicted and known to health.
    await tick();
    await eventually("health knows every fan", async () => {
      await tick();
      const listing = z.object({ fans: z.array(HealthRecordSchema) }).parse(await (await health()).json());
      return FANS.every((id) => listing.fans.some((f) => f.deviceID === id));
    });

    await nats.kill();
    faultyFrom = sent.get(FAULTY) ?? 0;
    // The fleet keeps reporting; health answers 503 and the connector holds its messages.
    await eventually("health's circuit open in the connector", async () => {
      await tick();
      return (await connectorHealth()).problems.some((p) => /^health is failing/.test(p));
    });
    assert.equal((await health()).status, 503, "health cannot answer without NATS");
    assert.deepEqual(
      (await connectorHealth()).sessions.map(({ filter, state }) => ({ filter, state })),
      [
        { filter: "fan/messages", state: "reading" },
        { filter: "fan/anomaly", state: "parked" },
      ],
    );

    // New readings while NATS is still dead: each gets its prediction.
    const from = new Map(FANS.map((id) => [id, sent.get(id) ?? 0]));
    for (let i = 0; i < 10; i++) await tick();
    await eventually("predictions for the readings sent while health is down", () =>
      FANS.every((id) => {
        for (let k = from.get(id) ?? 0; k < (sent.get(id) ?? 0); k++) if (!predicted(id, k)) return false;
        return true;
      }),
    );
    assert.equal(nats.pid, undefined, "NATS still dead when they arrived");
    assert.ok(
      (await connectorHealth()).problems.some((p) => /^health is failing/.test(p)),
      "health's messages still held when they arrived",
    );
    assert.ok(
      predictions().some((p) => p.deviceID === FAULTY && p.fault === 1),
      "the faulty fan's readings predicted as faulty",
    );
    assert.equal(
      transitions().filter((t) => t.deviceID === FAULTY).length,
      0,
      "no alarm yet: health has not seen them",
    );

    // NATS back: health takes what the connector held, in order.
    const lastDuringOutage = (sent.get(FAULTY) ?? 0) - 1;
    await nats.restart();
    await eventually(
      "the faulty fan's alarm, from predictions held during the outage",
      () => transitions().some((t) => t.deviceID === FAULTY && t.event === "alarm"),
      60_000,
    );
    await eventually(
      "health's record of the faulty fan holds its readings from the outage",
      async () => {
        const listing = z
          .object({ fans: z.array(HealthRecordSchema) })
          .parse(await (await health(`?deviceID=${FAULTY}`)).json());
        const record = listing.fans[0];
        return record !== undefined && Date.parse(record.lastSeen) >= t0 + lastDuringOutage * 1000;
      },
      60_000,
    );
    const record = z
      .object({ fans: z.array(HealthRecordSchema) })
      .parse(await (await health(`?deviceID=${FAULTY}`)).json()).fans[0];
    assert.equal(record?.state, "alarm");
    assert.equal(
      record?.alarmId,
      transitions().find((t) => t.deviceID === FAULTY && t.event === "alarm")?.alarmId,
      "the alarm announced is the record's",
    );
    assert.deepEqual(
      transitions().filter((t) => t.event === "silent"),
      [],
      "no fan called silent: they reported throughout, health was the one away",
    );
    await eventually("the connector healthy again, both sessions reading", async () => {
      const state = await connectorHealth();
      return state.problems.length === 0 && state.sessions.every((s) => s.state === "reading");
    });
  });
});
