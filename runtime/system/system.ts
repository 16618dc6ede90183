import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { readWriterConfig, WRITER_SETTINGS } from "../../connectors/influxdb/config.js";
import { InfluxWriter } from "../../connectors/influxdb/writer.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { readTopics, type Topics } from "../../lib/infra/config.js";
import { readSettings } from "../../lib/infra/settings.js";
import type { MqttClient } from "mqtt";
import type { Logger } from "../../lib/infra/log.js";
import { connectMqtt } from "../../lib/mqtt/client.js";
import { mqttSettingsFromEnv, redactUrl, type MqttSettings } from "../../lib/mqtt/settings.js";
import { freePort } from "../../lib/infra/net.js";
import { startEmbeddedBroker, type EmbeddedBroker } from "./broker.js";
import { FleetView } from "../../page/fleet-view.js";
import { reachableHost } from "../gateway/gateway.js";
import { startGateway, type RunningGateway } from "../gateway/runner.js";
import { startHealthState } from "./nats.js";
import { Lifecycle, type Part } from "./lifecycle.js";
import { FleetSimulator, type FleetOptions } from "../../simulation/simulator.js";
import { createWebPage, type WebPage } from "../../page/web-page.js";

/** A fixed client id: readings that arrive at a broker of your own while fanwatch is stopped wait in its persistent session. */
const START_CONNECTOR_CLIENT_ID = "fanwatch-start-connector";

export interface SystemOptions {
  gatewayPort: number;
  /** 127.0.0.1 keeps the gateway to this machine; 0.0.0.0 opens it (and the page) to the network. */
  gatewayHost: string;
  /** Where the embedded broker listens unless MQTT_URL names a broker. */
  brokerPort: number;
  stackFile: string;
  fleet: Omit<FleetOptions, "topic">;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Progress and every line a function prints. */
  say: (line: string) => void;
}

export interface RunningSystem {
  gatewayUrl: string;
  brokerUrl: string;
  /** Set when the embedded broker could not have its usual port. */
  brokerMovedFrom: number | undefined;
  embeddedBroker: boolean;
  fleet: FleetView;
  simulator: FleetSimulator | undefined;
  stop(): Promise<void>;
}

/**
 * The whole system on one machine: a broker (embedded aedes unless MQTT_URL is set), NATS for the
 * health state (runtime/system/nats.ts), the local gateway running every function of stack.yml as child
 * processes, the page, the MQTT connector discovering the functions through the gateway, the fleet
 * view behind the page and the console, and a simulated fleet. One lifecycle (runtime/system/lifecycle.ts)
 * stops them in the reverse order: the fleet first, the broker last, so nothing in flight is lost.
 */
export async function startSystem(options: SystemOptions): Promise<RunningSystem> {
  const { env, log, say } = options;
  const parts = new Lifecycle({ log, say });
  try {
    let mqtt: MqttSettings = mqttSettingsFromEnv(env);
    let broker: EmbeddedBroker | undefined;
    if (mqtt.from === undefined) {
      broker = await parts.start(brokerPart(options, mqtt));
      mqtt = { ...mqtt, url: broker.url };
    }
    const topics = readTopics(env);
    const fleet = new FleetView(topics);
    const influxUrl = readSettings({ INFLUX_URL: WRITER_SETTINGS.INFLUX_URL }, env).INFLUX_URL;
    if (influxUrl !== undefined) {
      const writer = await parts.start(writerPart(options, mqtt));
      say(
        `InfluxDB writer storing ${topics.telemetry}, ${topics.anomaly}, ${topics.alarm} and ${topics.deadletter} in ${influxUrl} (health on http://${reachableHost(options.gatewayHost)}:${writer.port}/healthz)`,
      );
    }
    // Started before the functions and closed after them: health's writes under way finish.
    const healthState = await parts.start({
      name: "health state",
      start: () => startHealthState(env, say, freePort),
      close: (h) => h.stop(),
    });

    // The page is started after the gateway (so its streams end before the gateway drains) but
    // served by it: until then its paths are the gateway's 404.
    let page: WebPage | undefined;
    const gateway = await parts.start({
      name: "gateway",
      start: () =>
        startGateway({
          port: options.gatewayPort,
          host: options.gatewayHost,
          stackFile: options.stackFile,
          mqtt,
          natsUrl: healthState.natsUrl,
          env,
          log,
          say,
          extra: (req, res) => page?.handle(req, res) ?? false,
        }),
      // The functions finish what they hold, then the gateway closes.
      drain: (g) => g.stop(),
    });
    // Its event streams end when stopping starts: a page left open must not hold the gateway up.
    page = await parts.start({ name: "page", start: () => createWebPage(fleet), drain: (p) => p.close() });
    await parts.start(fleetViewPart(fleet, mqtt, gateway, log));
    const connector = await parts.start(connectorPart(options, mqtt, topics, gateway));
    say(
      `connector routing ${topics.telemetry} and ${topics.anomaly} through the gateway (health on http://${reachableHost(options.gatewayHost)}:${connector.port}/healthz)`,
    );
    const simulated = options.fleet.fans > 0 ? await parts.start(simulatorPart(options, mqtt, topics)) : undefined;
    return {
      gatewayUrl: gateway.url,
      brokerUrl: redactUrl(mqtt.url),
      brokerMovedFrom: broker?.movedFrom,
      embeddedBroker: broker !== undefined,
      fleet,
      simulator: simulated?.simulator,
      stop: () => parts.stop(),
    };
  } catch (error) {
    await parts.stop();
    throw error;
  }
}

/** The embedded broker (aedes), with the credentials MQTT_USERNAME/MQTT_PASSWORD give, if any. */
function brokerPart({ brokerPort, log }: SystemOptions, { username, password }: MqttSettings): Part<EmbeddedBroker> {
  return {
    name: "broker",
    start: () =>
      startEmbeddedBroker({
        port: brokerPort,
        log,
        ...(username === undefined ? {} : { username }),
        ...(password === undefined ? {} : { password }),
      }),
    close: (b) => b.close(),
  };
}

/**
 * The InfluxDB writer: started before the functions and drained after them, so every prediction
 * is stored. Its health server listens where the gateway does (nothing more open than the page).
 */
function writerPart({ env, gatewayHost, log }: SystemOptions, mqtt: MqttSettings): Part<InfluxWriter> {
  return {
    name: "InfluxDB writer",
    start: async () => {
      const writer = new InfluxWriter(
        { ...readWriterConfig(env, { INFLUX_WRITER_PORT: 0, HEALTH_HOST: gatewayHost }), mqtt },
        log,
      );
      await writer.start();
      return writer;
    },
    drain: (writer) => writer.stop(),
  };
}

/**
 * What the page and the console show: readings, predictions and transitions from the broker; the
 * health records at start and every 5 s from the health function through the gateway (the page's
 * own Acknowledge posts there too); the replicas every 2 s from the gateway's /system/functions.
 */
function fleetViewPart(fleet: FleetView, mqtt: MqttSettings, gateway: RunningGateway, log: Logger): Part<MqttClient> {
  return {
    name: "fleet view",
    start: async () => {
      const viewer = connectMqtt(mqtt, {
        clientId: `fanwatch-view-${process.pid}`,
        onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "fleet view: MQTT error"),
      });
      await fleet.subscribe(viewer).catch(async (error: unknown) => {
        await viewer.endAsync(true);
        throw error;
      });
      void fleet.readHealthFrom(`${gateway.url}/function/health`);
      void fleet.readReplicasFrom(`${gateway.url}/system/functions`, {
        headers: { authorization: basicAuth(gateway.credentials) },
      });
      return viewer;
    },
    drain: () => fleet.stop(),
    // The view only reads, so it is closed at once rather than waiting on its session.
    close: (viewer) => viewer.endAsync(true),
  };
}

/**
 * The connector, finding the functions through the gateway: readings go to predict, its
 * predictions to health (each function's `topic` annotation says which). Its session keeps what
 * arrives while fanwatch is stopped: predicted at the next start.
 */
function connectorPart(
  { env, gatewayHost, log }: SystemOptions,
  mqtt: MqttSettings,
  topics: Topics,
  gateway: RunningGateway,
): Part<Connector> {
  return {
    name: "connector",
    start: async () => {
      const settings = {
        gateway_url: gateway.url,
        broker: mqtt.url,
        topic: [topics.telemetry, topics.anomaly],
        client_id: START_CONNECTOR_CLIENT_ID,
        refresh_interval_ms: 2_000,
        port: 0,
        HEALTH_HOST: gatewayHost,
      };
      const connector = new Connector(
        { ...readConnectorConfig(env, settings), mqtt, basicAuth: gateway.credentials },
        log,
      );
      await connector.start().catch(async (error: unknown) => {
        await connector.drain();
        throw error;
      });
      return connector;
    },
    // Finishes the batches it holds: the functions are still up.
    drain: (connector) => connector.drain(),
  };
}

function simulatorPart(
  { fleet, log }: SystemOptions,
  mqtt: MqttSettings,
  topics: Topics,
): Part<{ simulator: FleetSimulator; publisher: MqttClient }> {
  return {
    name: "simulated fleet",
    start: () => {
      const publisher = connectMqtt(mqtt, {
        clientId: `fanwatch-fleet-${process.pid}`,
        onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "simulator: MQTT error"),
      });
      const simulator = new FleetSimulator(publisher, { ...fleet, topic: topics.telemetry });
      simulator.start();
      return { simulator, publisher };
    },
    drain: ({ simulator }) => simulator.stop(),
    // Forced: readings still unsent at Ctrl-C are simulated, and a client still connecting
    // would otherwise hold the shutdown up.
    close: ({ publisher }) => publisher.endAsync(true),
  };
}

function basicAuth({ user, password }: { user: string; password: string }): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}
