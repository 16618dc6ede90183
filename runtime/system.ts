import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readConnectorConfig } from "../connectors/mqtt/config.js";
import { readWriterConfig } from "../connectors/influxdb/config.js";
import { InfluxWriter } from "../connectors/influxdb/writer.js";
import { Connector } from "../connectors/mqtt/connector.js";
import { envValue, readTopics } from "../lib/config.js";
import type { Logger } from "../lib/log.js";
import { connectMqtt, mqttSettingsFromEnv, redactUrl, type MqttSettings } from "../lib/mqtt.js";
import { DEFAULT_SECRET_PATH, readSecret } from "../lib/secrets.js";
import { readStack, type StackFunction } from "../lib/stack.js";
import { startEmbeddedBroker, type EmbeddedBroker } from "./broker.js";
import { FleetView } from "./fleet-view.js";
import { FunctionProcess } from "./function-process.js";
import { LocalGateway } from "./gateway.js";
import { FleetSimulator, type FleetOptions } from "./simulator.js";
import { createWebPage } from "./web-page.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

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
 * The whole system on one machine: a broker (embedded aedes unless MQTT_URL is set), the local
 * gateway running every function of stack.yml as a child process, the MQTT connector discovering
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
      broker = await startEmbeddedBroker({ port: options.brokerPort, ...(mqtt.username === undefined ? {} : { username: mqtt.username }), ...(mqtt.password === undefined ? {} : { password: mqtt.password }) });
      stops.push(() => broker?.close());
      mqtt = { ...mqtt, url: broker.url };
    }

    const secretPath = envValue(env, "SECRET_MOUNT_PATH") ?? DEFAULT_SECRET_PATH;
    const credentials = {
      user: readSecret(join(secretPath, "basic-auth-user")) ?? "admin",
      password: envValue(env, "GATEWAY_PASSWORD") ?? readSecret(join(secretPath, "basic-auth-password")) ?? randomBytes(12).toString("base64url"),
    };
    const topics = readTopics(env);
    const stack = await readStack(options.stackFile, env);
    const viewer = connectMqtt(mqtt, { clientId: `fanwatch-view-${process.pid}`, onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "fleet view: MQTT error") });
    // The view only reads, so it is closed at once rather than waiting on its session.
    stops.push(() => viewer.endAsync(true));
    const fleet = new FleetView(viewer, topics);
    const page = createWebPage(fleet);
    stops.push(() => page.close());

    if (envValue(env, "INFLUX_URL") !== undefined) {
      // Started before the functions and stopped after them, so every prediction is stored.
      const writer = new InfluxWriter({ ...readWriterConfig({ ...env, INFLUX_WRITER_PORT: "0" }), mqtt }, log);
      await writer.start();
      stops.push(() => writer.stop());
      say(`InfluxDB writer storing ${topics.telemetry} and ${topics.anomaly} in ${envValue(env, "INFLUX_URL")} (health on http://127.0.0.1:${writer.port}/healthz)`);
    }

    // The gateway listens first: its address goes into the functions' environment.
    const gateway = new LocalGateway({ port: options.gatewayPort, host: options.gatewayHost, credentials, extra: page.handle, log });
    await gateway.listen();
    stops.push(() => gateway.close());
    say(`gateway on ${gateway.url} (/system/* user ${credentials.user}, password ${credentials.password})`);
    const functions = Object.entries(stack.functions).map(([name, spec]) => {
      const child = new FunctionProcess({ name, env: functionEnv(spec, env, mqtt, gateway.url), onLine: (fn, line) => say(`[${fn}] ${line}`) });
      gateway.add({ name, spec, process: child });
      return child;
    });
    stops.push(() => Promise.all(functions.map((fn) => fn.stop())).then(() => {}));
    say(`starting ${functions.map((f) => f.name).join(" and ")}…`);
    await Promise.all(functions.map((fn) => fn.start()));

    await fleet.subscribe();
    // A fixed client id: readings that arrive at a broker of your own while fanwatch is stopped
    // wait in this persistent session and are predicted at the next start.
    const connector = new Connector(
      { ...readConnectorConfig({ ...env, gateway_url: gateway.url, broker: mqtt.url, port: "0", client_id: "fanwatch-start-connector", refresh_interval_ms: "2000" }), mqtt, basicAuth: credentials },
      log,
    );
    stops.push(() => connector.drain());
    await connector.start();
    say(`connector routing ${topics.telemetry} through the gateway (health on http://127.0.0.1:${connector.port}/healthz)`);

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

/**
 * What a function sees: its stack.yml environment, with the addresses it names (in-cluster
 * service names) replaced by this machine's broker and gateway, and the MQTT credentials of this
 * run rather than the cluster's user name.
 */
function functionEnv(spec: StackFunction, env: NodeJS.ProcessEnv, mqtt: MqttSettings, gatewayUrl: string): NodeJS.ProcessEnv {
  const { MQTT_USERNAME: _clusterUser, ...stackEnv } = spec.environment;
  return {
    ...env,
    LOG_LEVEL: env.LOG_LEVEL ?? "warn",
    ...stackEnv,
    MODEL_DIR: join(REPO_ROOT, spec.environment.MODEL_DIR ?? "model/artifact"),
    MQTT_URL: mqtt.url,
    ...(mqtt.username === undefined ? {} : { MQTT_USERNAME: mqtt.username }),
    ...(mqtt.password === undefined ? {} : { MQTT_PASSWORD: mqtt.password }),
    SCORE_URL: `${gatewayUrl}/function/score`,
    GATEWAY_URL: gatewayUrl,
  };
}
