import { readConnectorConfig } from "../connectors/mqtt/config.js";
import { readWriterConfig } from "../connectors/influxdb/config.js";
import { InfluxWriter } from "../connectors/influxdb/writer.js";
import { Connector } from "../connectors/mqtt/connector.js";
import { envValue, readTopics } from "../lib/config.js";
import type { Logger } from "../lib/log.js";
import { connectMqtt, mqttSettingsFromEnv, redactUrl, type MqttSettings } from "../lib/mqtt.js";
import { freePort } from "../lib/net.js";
import { startEmbeddedBroker, type EmbeddedBroker } from "./broker.js";
import { FleetView } from "./fleet-view.js";
import { reachableHost } from "./gateway.js";
import { startGateway } from "./gateway-runner.js";
import { startHealthState } from "./nats.js";
import { FleetSimulator, type FleetOptions } from "./simulator.js";
import { createWebPage } from "./web-page.js";

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
 * health state (runtime/nats.ts), the local gateway running every function of stack.yml as a child process, the MQTT connector discovering
 * them through the gateway, the fleet view behind the web page, and a simulated fleet. Parts are
 * stopped in the reverse order: the fleet first, the broker last, so nothing in flight is lost.
 */
export async function startSystem(options: SystemOptions): Promise<RunningSystem> {
  const { env, log, say } = options;
  const stops: Array<() => Promise<void> | void> = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    let broker: EmbeddedBroker | undefined;
    let mqtt: MqttSettings = mqttSettingsFromEnv(env);
    if (envValue(env, "MQTT_URL", "MQTT_HOST") === undefined) {
      broker = await startEmbeddedBroker({ port: options.brokerPort, log, ...(mqtt.username === undefined ? {} : { username: mqtt.username }), ...(mqtt.password === undefined ? {} : { password: mqtt.password }) });
      stops.push(() => broker?.close());
      mqtt = { ...mqtt, url: broker.url };
    }

    const topics = readTopics(env);
    // Servers of this run listen where the gateway does: nothing more open than the page.
    const healthEnv = { HEALTH_HOST: options.gatewayHost };
    const fleet = new FleetView(topics);
    const page = createWebPage(fleet);

    if (envValue(env, "INFLUX_URL") !== undefined) {
      // Started before the functions and stopped after them, so every prediction is stored.
      const writer = new InfluxWriter({ ...readWriterConfig({ ...env, ...healthEnv, INFLUX_WRITER_PORT: "0" }), mqtt }, log);
      await writer.start();
      stops.push(() => writer.stop());
      say(`InfluxDB writer storing ${topics.telemetry}, ${topics.anomaly}, ${topics.alarm} and ${topics.deadletter} in ${envValue(env, "INFLUX_URL")} (health on http://${reachableHost(options.gatewayHost)}:${writer.port}/healthz)`);
    }

    // Started before the functions and stopped after them: health's writes under way finish.
    const healthState = await startHealthState(env, say, freePort);
    stops.push(() => healthState.stop());

    const gateway = await startGateway({ port: options.gatewayPort, host: options.gatewayHost, stackFile: options.stackFile, mqtt, natsUrl: healthState.natsUrl, env, log, say, extra: page.handle });
    stops.push(() => gateway.stop());
    // Closed before the gateway, which would otherwise wait for the pages' open event streams.
    stops.push(() => page.close());

    const viewer = connectMqtt(mqtt, { clientId: `fanwatch-view-${process.pid}`, onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "fleet view: MQTT error") });
    // The view only reads, so it is closed at once rather than waiting on its session.
    stops.push(() => viewer.endAsync(true));
    await fleet.subscribe(viewer);
    // The health records at start and every 5 s, from the health function through the gateway
    // (the page's own Acknowledge posts there too); transitions in between come from the broker.
    stops.push(() => fleet.stop());
    void fleet.readHealthFrom(`${gateway.url}/function/health`);
    // A fixed client id: readings that arrive at a broker of your own while fanwatch is stopped
    // wait in this persistent session and are predicted at the next start.
    // Readings go to predict, its predictions to health: each function's `topic` annotation says which.
    const connector = new Connector(
      { ...readConnectorConfig({ ...env, ...healthEnv, gateway_url: gateway.url, broker: mqtt.url, port: "0", client_id: "fanwatch-start-connector", refresh_interval_ms: "2000", topic: `${topics.telemetry},${topics.anomaly}` }), mqtt, basicAuth: gateway.credentials },
      log,
    );
    stops.push(() => connector.drain());
    await connector.start();
    say(`connector routing ${topics.telemetry} and ${topics.anomaly} through the gateway (health on http://${reachableHost(options.gatewayHost)}:${connector.port}/healthz)`);

    let simulator: FleetSimulator | undefined;
    if (options.fleet.fans > 0) {
      const publisher = connectMqtt(mqtt, { clientId: `fanwatch-fleet-${process.pid}`, onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "simulator: MQTT error") });
      // Forced: readings still unsent at Ctrl-C are simulated, and a client still connecting would
      // otherwise hold the shutdown up.
      stops.push(() => publisher.endAsync(true));
      simulator = new FleetSimulator(publisher, { ...options.fleet, topic: topics.telemetry });
      stops.push(() => simulator?.stop());
      simulator.start();
    }
    return {
      gatewayUrl: gateway.url,
      brokerUrl: redactUrl(mqtt.url),
      brokerMovedFrom: broker?.movedFrom,
      embeddedBroker: broker !== undefined,
      fleet,
      simulator,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
