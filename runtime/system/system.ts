import { randomBytes } from "node:crypto";
import { readConnectorConfig } from "../../connectors/mqtt/config.js";
import { readWriterConfig, WRITER_SETTINGS } from "../../connectors/influxdb/config.js";
import { InfluxWriter } from "../../connectors/influxdb/writer.js";
import { Connector } from "../../connectors/mqtt/connector.js";
import { readSite, readTopics, type Topics } from "../../lib/infra/config.js";
import { readSettings, readSettingsFrom } from "../../lib/infra/settings.js";
import { NOTIFIER_SETTINGS, readNotifierConfig } from "../../notifier/config.js";
import { Notifier } from "../../notifier/notifier.js";
import { PAGE_RECEIVER_PATH } from "../../page/notifications.js";
import { LocalAlerting } from "./alerting.js";
import type { MqttClient } from "mqtt";
import type { Logger } from "../../lib/infra/log.js";
import { connectMqtt } from "../../lib/mqtt/client.js";
import { mqttSettingsFromEnv, redactUrl, type MqttSettings } from "../../lib/mqtt/settings.js";
import { EmbeddedBroker } from "./broker.js";
import { FanLoginsService, OPERATOR_USER, startBrokerUsers, type StartBrokerUsers } from "./broker-users.js";
import { verifyMosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import { FleetView } from "../../page/fleet-view.js";
import { isLoopback, reachableHost } from "../../lib/infra/net.js";
import { GatewayService } from "../gateway/runner.js";
import { HealthState } from "./nats.js";
import { RegistryService } from "./registry.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import { RegistryCache } from "../../lib/registry/cache.js";
import { Lifecycle } from "./lifecycle.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { Supervisor } from "../../lib/infra/supervisor.js";
import { FleetSimulator, type FleetOptions } from "../../simulation/simulator.js";
import { WebPage } from "../../page/web-page.js";
import { OffAccess } from "../../page/access/off.js";
import { createLocalAccess } from "../../page/access/create.js";
import type { Access } from "../../page/access/access.js";
import { PAGE_SETTINGS } from "../../page/config.js";
import { ConfigError } from "../../lib/errors.js";
import { PageApi } from "../../page/page-api.js";
import { ModelsLink, openModelRegistry } from "../../page/models-link.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";

/** A fixed client id: readings that arrive at a broker of your own while fanwatch is stopped wait in its persistent session. */
const START_CONNECTOR_CLIENT_ID = "fanwatch-start-connector";
/** The client ids of the fleet view and the simulator: `<prefix><pid>`, claimed by their users on the embedded broker. */
const VIEW_CLIENT_ID = "fanwatch-view-";
const FLEET_CLIENT_ID = "fanwatch-fleet-";

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
  /** How a function's log line is shown by `say`: on a terminal, one readable line (lib/infra/log.ts). */
  renderLine?: ((line: string) => string) | undefined;
}

export interface RunningSystem {
  gatewayUrl: string;
  brokerUrl: string;
  /** Set when the embedded broker could not have its usual port. */
  brokerMovedFrom: number | undefined;
  embeddedBroker: boolean;
  /** The embedded broker's login for your own tools (user and the file with this run's password); undefined with MQTT_URL. */
  operator: { username: string; passwordFile: string } | undefined;
  fleet: FleetView;
  simulator: FleetSimulator | undefined;
  /** The device registry (runtime/system/registry.ts), the simulated fleet in it. */
  registry: FanRegistry;
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
  // First: a page that may not be opened where it was asked to is refused before anything starts.
  const access = startAccess(env, options.gatewayHost, log, say);
  try {
    let mqtt: MqttSettings = mqttSettingsFromEnv(env);
    const topics = readTopics(env);
    let broker: EmbeddedBroker | undefined;
    let users: StartBrokerUsers | undefined;
    if (mqtt.from === undefined) {
      users = await startEmbeddedUsers(parts, options, topics);
      const auth = users.auth;
      // Supervised: a broker whose socket fails is started again, on the port the first instance
      // got (the clients reconnect to it), and the console says so.
      let port = options.brokerPort;
      const embedded = await parts.start(
        new Supervisor({ create: () => new EmbeddedBroker({ port, log, auth }), log, say }),
      );
      broker = embedded.current;
      port = broker.port;
      // MQTT_USERNAME and MQTT_PASSWORD are a broker of your own's: each part logs in here as its own user.
      mqtt = { url: broker.url, ...(mqtt.caFile === undefined ? {} : { caFile: mqtt.caFile }) };
    }
    /** The broker settings of one part: its own user on the embedded broker, the ones given for a broker of your own. */
    const as = (part: "connector" | "view" | "writer" | "simulator"): MqttSettings =>
      users === undefined ? mqtt : users.settingsOf(part, mqtt);
    // Readings from predictions: the connector lets only registered fans' readings through.
    const fleet = new FleetView(topics, { readingsFrom: "predictions" });
    const influxUrl = readSettings({ INFLUX_URL: WRITER_SETTINGS.INFLUX_URL }, env).INFLUX_URL;
    if (influxUrl !== undefined) {
      const writerOptions = {
        ...readWriterConfig(env, { INFLUX_WRITER_PORT: 0, HEALTH_HOST: options.gatewayHost }),
        mqtt: as("writer"),
      };
      // Started before the functions and drained after them, so every prediction is stored. Its
      // health server listens where the gateway does (nothing more open than the page).
      const writer = await parts.start(new InfluxWriter(writerOptions, log));
      say(
        `InfluxDB writer storing ${topics.anomaly} (predictions and their readings), ${topics.alarm} and ${topics.deadletter} in ${influxUrl} (health on http://${reachableHost(options.gatewayHost)}:${writer.port}/healthz)`,
      );
    }
    // Started before the functions and drained after them: health's writes under way finish.
    const healthState = await parts.start(new HealthState(env, say, log));
    // The device registry beside health's state, the simulated fleet registered in it before the
    // connector and the page read it (the connector's ConnectorOptions.registry, the page's).
    const registry = (
      await parts.start(new RegistryService({ natsUrl: healthState.natsUrl, fleet: options.fleet, env, say, log }))
    ).registry;
    // The registry's fans log in to the embedded broker as themselves (fan-<id>), as on the production broker.
    if (users !== undefined)
      await parts.start(
        new FanLoginsService({
          auth: users.auth,
          registry,
          verify: verifyMosquittoHash,
          telemetryTopic: topics.telemetry,
          // ALLOW_UNBOUND_FANS is on under fanwatch start: a fan may publish on the reference topic too.
          allowUnbound: true,
        }),
      );
    const pageUrl = `http://${reachableHost(options.gatewayHost)}:${options.gatewayPort}`;
    // Drained after the functions too: the transitions of their last writes are still sent.
    if (healthState.natsUrl !== undefined) await startNotifier(parts, options, healthState.natsUrl, pageUrl);
    else say("no notifier: it reads health's transitions from NATS JetStream (install nats-server, or set NATS_URL)");

    // The page is served by the gateway but started after it, so that its streams end (drain) before
    // the gateway drains; once stopping it answers its streams 503. With sign-in, health and the page
    // share a secret made for this run, so that only the page's signed-in users act (nobody else can
    // reach the gateway's /function/health in their name); without, health takes `by` from the body,
    // as curl on this machine does (docs/page.md).
    const userSecret = access.mode === "off" ? undefined : randomBytes(32).toString("base64url");
    // The Models panel reads the model registry score follows, on health's NATS (opened in the background).
    const natsUrl = healthState.natsUrl;
    const models =
      natsUrl === undefined
        ? undefined
        : await parts.start(
            new ModelsLink(
              () => openModelRegistry({ url: natsUrl, replicas: 1, name: `fanwatch-start-page-models-${process.pid}` }),
              readSite(env),
              log,
            ),
          );
    const api = new PageApi(access, {
      healthUrl: `${pageUrl}/function/health`,
      userSecret,
      client: new HttpClient(),
      log,
      registry,
      models,
    });
    const page = new WebPage(fleet, { access, api });
    const gateway = await parts.start(
      new GatewayService({
        port: options.gatewayPort,
        host: options.gatewayHost,
        stackFile: options.stackFile,
        mqtt,
        functionMqtt: users?.functionLogin,
        natsUrl: healthState.natsUrl,
        env: withUserSecret(env, userSecret),
        log,
        say,
        renderLine: options.renderLine,
        extra: page.handle,
      }),
    );
    // Its event streams end when stopping starts: a page left open must not hold the gateway up.
    await parts.start(page);
    await parts.start(new FleetViewService(fleet, as("view"), gateway, log, registry));
    const connector = await parts.start(
      connectorOf(options, as("connector"), topics, gateway, registry, healthState.natsUrl, broker !== undefined),
    );
    say(
      `connector routing ${topics.telemetry}, ${topics.telemetry}/<id> and ${topics.anomaly} through the gateway (health on http://${reachableHost(options.gatewayHost)}:${connector.port}/healthz)`,
    );
    const simulator =
      options.fleet.fans > 0 ? await parts.start(simulatorOf(options, as("simulator"), topics)) : undefined;
    return {
      gatewayUrl: gateway.url,
      brokerUrl: redactUrl(mqtt.url),
      brokerMovedFrom: broker?.movedFrom,
      embeddedBroker: broker !== undefined,
      operator: users === undefined ? undefined : { username: OPERATOR_USER, passwordFile: users.operatorFile },
      fleet,
      simulator,
      registry,
      stop: () => parts.stop(),
    };
  } catch (error) {
    await parts.stop();
    throw error;
  }
}

/**
 * The embedded broker's users of this run (runtime/system/broker-users.ts): each part its own, with
 * the production ACL's rules; the operator's password in a file for your own tools, removed when
 * the run stops. MQTT_USERNAME and MQTT_PASSWORD are a broker of your own's, not these.
 */
async function startEmbeddedUsers(parts: Lifecycle, options: SystemOptions, topics: Topics): Promise<StartBrokerUsers> {
  const { env, log, say } = options;
  const influxClientId = readSettings({ INFLUX_CLIENT_ID: WRITER_SETTINGS.INFLUX_CLIENT_ID }, env).INFLUX_CLIENT_ID;
  const users = await startBrokerUsers({
    env,
    telemetryTopic: topics.telemetry,
    clientIds: {
      connector: START_CONNECTOR_CLIENT_ID,
      view: VIEW_CLIENT_ID,
      writer: influxClientId,
      simulator: FLEET_CLIENT_ID,
    },
    log,
  });
  await parts.start(new FileRemover(users));
  const given = mqttSettingsFromEnv(env);
  if (given.username !== undefined || given.password !== undefined)
    say(
      "MQTT_USERNAME/MQTT_PASSWORD are for a broker of your own (MQTT_URL): the embedded broker has users of its own",
    );
  say(
    `broker users: one per part, with deploy/mosquitto/acl's rules; for your own tools, user ${OPERATOR_USER} with the password in ${users.operatorFile} (this run only)`,
  );
  return users;
}

/** Removes the operator's password file when the run stops (started before the broker: removed after it). */
class FileRemover extends ServiceBase {
  readonly name = "broker users";
  constructor(private readonly users: StartBrokerUsers) {
    super();
  }
  protected async onStart(): Promise<void> {}
  protected async onClose(): Promise<void> {
    await this.users.remove();
  }
}

/**
 * Alarms that reach a person (docs/notifier.md): the Alertmanager LocalAlerting finds or starts
 * (its notifications go to the page), and the notifier sending health's transitions to it and to
 * NOTIFY_WEBHOOK_URL, its health server where the gateway listens.
 */
async function startNotifier(
  parts: Lifecycle,
  { env, gatewayHost, log, say }: SystemOptions,
  natsUrl: string,
  pageUrl: string,
): Promise<void> {
  const alerting = await parts.start(
    new LocalAlerting({ env, pageReceiverUrl: `${pageUrl}${PAGE_RECEIVER_PATH}`, say, log }),
  );
  const { from } = readSettingsFrom({ PAGE_URL: NOTIFIER_SETTINGS.PAGE_URL }, env);
  const config = readNotifierConfig(env, {
    NATS_URL: natsUrl,
    ALERTMANAGER_URL: alerting.urls,
    ...(from.PAGE_URL === undefined ? { PAGE_URL: pageUrl } : {}),
    NOTIFIER_PORT: 0,
    HEALTH_HOST: gatewayHost,
  });
  const notifier = await parts.start(new Notifier(config, log));
  const targets = notifier.targets.map((t) => t.description);
  say(
    targets.length === 0
      ? "notifier: no receiver (set NOTIFY_WEBHOOK_URL or ALERTMANAGER_URL, or install prometheus-alertmanager); alarms are only on the page"
      : `notifier sending site ${config.site}'s alarms to ${targets.join(" and ")} (health on http://${reachableHost(gatewayHost)}:${notifier.port}/healthz)`,
  );
}

/**
 * What the page and the console show: readings, predictions and transitions from the broker; the
 * health records at start and every 5 s from the health function through the gateway (the page's
 * own Acknowledge posts there too); the replicas every 2 s from the gateway's /system/functions.
 */
class FleetViewService extends ServiceBase {
  readonly name = "fleet view";
  #viewer: MqttClient | undefined;
  /** The registry as the view counts from it (page/fleet-count.ts). */
  readonly #cache: RegistryCache;

  constructor(
    private readonly fleet: FleetView,
    private readonly mqtt: MqttSettings,
    private readonly gateway: GatewayService,
    private readonly log: Logger,
    registry: FanRegistry,
  ) {
    super();
    this.#cache = new RegistryCache(registry);
  }

  protected async onStart(): Promise<void> {
    await this.#cache.start();
    this.fleet.useRegistry(this.#cache);
    const viewer = connectMqtt(this.mqtt, {
      clientId: `${VIEW_CLIENT_ID}${process.pid}`,
      onError: (e) => this.log.warn({ event: "mqtt_error", err: e.message }, "fleet view: MQTT error"),
    });
    this.#viewer = viewer;
    await this.fleet.subscribe(viewer);
    void this.fleet.readHealthFrom(`${this.gateway.url}/function/health`);
    void this.fleet.readReplicasFrom(`${this.gateway.url}/system/functions`, {
      headers: { authorization: basicAuthHeader(this.gateway.credentials) },
    });
  }

  protected override async onDrain(): Promise<void> {
    this.fleet.stop();
  }

  // The view only reads, so it is closed at once rather than waiting on its session.
  protected async onClose(): Promise<void> {
    await this.#viewer?.endAsync(true);
    await this.#cache.stop();
  }
}

/**
 * The connector, finding the functions through the gateway: readings go to predict, its
 * predictions to health (each function's `topic` annotation says which). Its session keeps what
 * arrives while fanwatch is stopped: predicted at the next start.
 */
function connectorOf(
  { env, gatewayHost, log }: SystemOptions,
  mqtt: MqttSettings,
  topics: Topics,
  gateway: GatewayService,
  registry: FanRegistry,
  natsUrl: string | undefined,
  embeddedBroker: boolean,
): Connector {
  const settings = {
    gateway_url: gateway.url,
    broker: mqtt.url,
    // Per-fan topics last: the first filters keep their sessions (client ids) of earlier runs.
    topic: [topics.telemetry, topics.anomaly, `${topics.telemetry}/+`],
    client_id: START_CONNECTOR_CLIENT_ID,
    refresh_interval_ms: 2_000,
    port: 0,
    HEALTH_HOST: gatewayHost,
    // The reference fans (and the simulated fleet) publish on fan/messages.
    ALLOW_UNBOUND_FANS: true,
    // The system's registry (given: NATS_URL opens no second one) checks the readings; NATS, when
    // it runs, holds the quarantine of pending fans' readings.
    NATS_URL: natsUrl ?? "",
    // aedes speaks MQTT 3.1.1 only: asking it for an MQTT 5 session expiry first would only print
    // warnings at every start. A broker of your own gets the connector's default.
    ...(embeddedBroker ? { session_expiry_s: 0 } : {}),
  };
  return new Connector({ ...readConnectorConfig(env, settings), mqtt, basicAuth: gateway.credentials }, log, {
    registry,
  });
}

/** The simulated fleet, with a publisher of its own, ended (forced) when it stops. */
function simulatorOf({ fleet, log }: SystemOptions, mqtt: MqttSettings, topics: Topics): FleetSimulator {
  const publisher = connectMqtt(mqtt, {
    clientId: `${FLEET_CLIENT_ID}${process.pid}`,
    onError: (e) => log.warn({ event: "mqtt_error", err: e.message }, "simulator: MQTT error"),
  });
  return new FleetSimulator(publisher, { ...fleet, topic: topics.telemetry }, true);
}

/**
 * The environment of the functions under `fanwatch start`: the page's user secret of this run, or
 * none when the page has no sign-in (health then takes `by` from the body, curl on this machine too).
 * One set outside is never passed on: only this run's page may sign for this run's health.
 */
function withUserSecret(env: NodeJS.ProcessEnv, secret: string | undefined): NodeJS.ProcessEnv {
  const rest = { ...env };
  delete rest.PAGE_USER_SECRET;
  delete rest.PAGE_USER_SECRET_FILE;
  if (secret !== undefined) rest.PAGE_USER_SECRET = secret;
  return rest;
}

/**
 * The page's sign-in under `fanwatch start`: none on loopback (the console says so), where whoever
 * uses this machine acts in the name they type; the users of PAGE_USERS_FILE when it is set, which
 * opening the page to the network (--host 0.0.0.0) requires.
 */
function startAccess(env: NodeJS.ProcessEnv, host: string, log: Logger, say: (line: string) => void): Access {
  const {
    PAGE_USERS_FILE: file,
    PAGE_SESSION_IDLE,
    PAGE_SESSION_MAX,
  } = readSettings(
    {
      PAGE_USERS_FILE: PAGE_SETTINGS.PAGE_USERS_FILE,
      PAGE_SESSION_IDLE: PAGE_SETTINGS.PAGE_SESSION_IDLE,
      PAGE_SESSION_MAX: PAGE_SETTINGS.PAGE_SESSION_MAX,
    },
    env,
  );
  if (file === undefined) {
    if (!isLoopback(host))
      throw new ConfigError(
        `the page has no sign-in, so it is served on loopback only, not on ${host}: set PAGE_USERS_FILE (fanwatch page add-user) to open it to the network`,
      );
    say("page: no sign-in (loopback only): whoever uses this machine acts, in the name they type");
    return new OffAccess();
  }
  const access = createLocalAccess(
    {
      usersFile: file,
      sessionIdleMs: PAGE_SESSION_IDLE,
      sessionMaxMs: PAGE_SESSION_MAX,
      cookieSecure: false,
      trustedProxies: [],
    },
    log,
    (message) => say(`page: ${message}; the last good users stay`),
  );
  say(`page: sign-in with the users of ${file} (${access.userCount} now)`);
  return access;
}
