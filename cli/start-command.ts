import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { WRITER_SETTINGS } from "../connectors/influxdb/config.js";
import { CONNECTOR_SETTINGS } from "../connectors/mqtt/config.js";
import { TOPIC_SETTINGS } from "../lib/infra/config.js";
import { logLevelSetting } from "../lib/infra/log-level.js";
import { DEFAULT_MQTT_PORT, MQTT_SETTINGS, mqttSettingsFromEnv } from "../lib/mqtt/settings.js";
import { DEFAULT_STORE_DIR, NATS_SETTINGS } from "../runtime/system/nats.js";
import { ALERTING_SETTINGS } from "../runtime/system/alerting.js";
import { BROKER_USER_SETTINGS } from "../runtime/system/broker-users.js";
import { PAGE_SETTINGS } from "../page/config.js";
import { NOTIFIER_SETTINGS } from "../notifier/config.js";
import { DEFAULT_GATEWAY_HOST, DEFAULT_GATEWAY_PORT, GATEWAY_OWN_HELP } from "./gateway-command.js";
import { addFleetOptions, DEFAULT_FLEET, defaultedShapes, fleetOptions, type FleetFlags } from "./simulate-command.js";
import type { FleetMix } from "../simulation/fan-profiles.js";
import { addSettingsHelp, integer, type Io } from "./parse.js";
import { REPO_ROOT } from "./paths.js";

/** What fanwatch start gives its connector and writer (runtime/system/system.ts) rather than reading it. */
const START_GIVES_CONNECTOR = [
  "gateway_url",
  "broker",
  "topic",
  "client_id",
  "refresh_interval_ms",
  "port",
  "HEALTH_HOST",
];
const START_GIVES_WRITER = ["broker", "INFLUX_WRITER_PORT", "HEALTH_HOST"];
/** PAGE_URL only when unset: the page's address here. */
const START_GIVES_NOTIFIER = ["NATS_URL", "ALERTMANAGER_URL", "NOTIFIER_PORT", "HEALTH_HOST", "SECRET_MOUNT_PATH"];

interface StartFlags extends FleetFlags {
  port: number;
  host: string;
  mqttPort: number;
  stack?: string;
}

export function addStartCommand(program: Command, io: Io): void {
  const command = program
    .command("start")
    .description(
      "run the whole system on this machine: broker, gateway with the functions, connector, simulated fleet and live page",
    )
    .option(
      "--port <port>",
      "the local gateway's port, also serving the page at /ui/",
      integer("--port"),
      DEFAULT_GATEWAY_PORT,
    )
    .option(
      "--host <address>",
      "where the gateway, the page and the health servers listen; 0.0.0.0 to open the page from a tablet on the network (then with sign-in: PAGE_USERS_FILE, docs/page.md)",
      DEFAULT_GATEWAY_HOST,
    )
    .option(
      "--mqtt-port <port>",
      "the embedded broker's port when MQTT_URL is not set (a free port if taken)",
      integer("--mqtt-port"),
      DEFAULT_MQTT_PORT,
    )
    .option("--stack <file>", "the functions to run (default: the repository's stack.yml)");
  addFleetOptions(command, DEFAULT_FLEET);
  addSettingsHelp(
    command,
    [
      {
        title: "The broker (MQTT_URL and MQTT_HOST unset: the embedded one, with users of its own)",
        settings: { ...MQTT_SETTINGS, ...BROKER_USER_SETTINGS },
      },
      { title: "Topics", settings: TOPIC_SETTINGS },
      { title: "The fans' health", settings: NATS_SETTINGS },
      { title: "Alerting (with NATS: the notifier runs)", settings: ALERTING_SETTINGS },
      {
        title: "The page (no sign-in, loopback only, unless PAGE_USERS_FILE gives it users: docs/page.md)",
        settings: { PAGE_USERS_FILE: PAGE_SETTINGS.PAGE_USERS_FILE },
      },
      {
        title: "The notifier (start gives it NATS, the Alertmanager, the page's address and its port)",
        settings: NOTIFIER_SETTINGS,
        except: START_GIVES_NOTIFIER,
      },
      ...GATEWAY_OWN_HELP,
      {
        title: "The connector (start gives it the gateway, the broker, the topics, its client id and ports)",
        settings: CONNECTOR_SETTINGS,
        except: START_GIVES_CONNECTOR,
      },
      { title: "The InfluxDB writer, when INFLUX_URL is set", settings: WRITER_SETTINGS, except: START_GIVES_WRITER },
    ],
    [
      "Set MQTT_URL (and MQTT_USERNAME/MQTT_PASSWORD) to use a broker of your own instead of the embedded one (checked",
      "before anything starts), INFLUX_URL to store readings, predictions and health transitions in InfluxDB, and NATS_URL",
      `to keep the fans' health in a NATS server of your own (otherwise nats-server is started, its data in ${DEFAULT_STORE_DIR}`,
      "or NATS_STORE_DIR; without nats-server the health state is kept in memory and lost at the end). The functions read",
      "theirs from the environment they inherit (fanwatch function --help). fanwatch gateway runs the gateway and the",
      "functions alone.",
    ],
  );
  command.action(async (opts: StartFlags, self: Command) => {
    const fleet = fleetOptions(opts, defaultedShapes(self));
    // Listen for Ctrl-C before anything starts: one that comes during start-up stops the system
    // as soon as it is up, and none can arrive between saying "running" and listening for it.
    const interrupted = new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    const [
      { startSystem },
      { CONSOLE_LOG_LEVEL },
      { createLogger, readableLine },
      { replicasLine },
      { probeBroker },
      { fansLine },
    ] = await Promise.all([
      import("../runtime/system/system.js"),
      import("../runtime/gateway/runner.js"),
      import("../lib/infra/log.js"),
      import("../page/function-replicas.js"),
      import("../lib/mqtt/client.js"),
      import("../page/fleet-count.js"),
    ]);
    // The console is for people: the status line and warnings, not every service event (LOG_LEVEL=info shows them).
    // On a terminal every log line, ours and the functions', is one readable line; piped, JSON.
    const renderLine = io.interactive ? readableLine : undefined;
    const log = createLogger(
      "fanwatch-start",
      logLevelSetting() ?? CONSOLE_LOG_LEVEL,
      renderLine === undefined ? undefined : (line) => io.err(renderLine(line)),
    );
    // A broker of your own is checked before anything starts: a wrong MQTT_URL is one line, not a
    // gateway's start-up ending in a stack.
    const mqtt = mqttSettingsFromEnv();
    if (mqtt.from !== undefined) await probeBroker(mqtt);
    io.err("fanwatch: starting the broker, the gateway and the functions…");
    const system = await startSystem({
      gatewayPort: opts.port,
      gatewayHost: opts.host,
      brokerPort: opts.mqttPort,
      stackFile: opts.stack ?? fileURLToPath(new URL("stack.yml", REPO_ROOT)),
      fleet: { ...fleet, qos: 1 },
      env: process.env,
      log,
      say: (line) => io.err(line),
      renderLine,
    });
    if (system.brokerMovedFrom !== undefined) {
      io.err(
        `port ${system.brokerMovedFrom} is taken (another broker?), so the embedded broker listens on ${system.brokerUrl}.`,
      );
      io.err(
        `  To use the broker on ${system.brokerMovedFrom} instead: MQTT_URL=mqtt://127.0.0.1:${system.brokerMovedFrom} npm start`,
      );
    }
    io.err(`broker   ${system.brokerUrl}${system.embeddedBroker ? " (embedded)" : ""}`);
    // The exact line to hear the topics, with the port the broker really has (it may have moved off 1883).
    const heard = new URL(system.brokerUrl);
    // The embedded broker lets nobody in anonymously: the line logs in as the operator of this run.
    const login =
      system.operator === undefined
        ? heard.username === ""
          ? ""
          : " -u <user> -P <password>"
        : ` -u ${system.operator.username} -P "$(cat '${system.operator.passwordFile}')"`;
    io.err(
      `listen   mosquitto_sub -h ${heard.hostname} -p ${heard.port === "" ? "1883" : heard.port} -t 'fan/#' -v${login}`,
    );
    io.err(
      `gateway  ${system.gatewayUrl}  (curl ${system.gatewayUrl}/function/score -d '{"params":[612.3,40.1,151.7,48.9]}')`,
    );
    io.err(
      `page     ${system.gatewayUrl}/ui/${opts.host === DEFAULT_GATEWAY_HOST ? "" : `, and from the network at http://<this machine>:${opts.port}/ui/`}`,
    );
    io.err(
      system.simulator === undefined
        ? "no simulated fleet (--fans 0): publish readings to the broker yourself"
        : `fleet    ${fleet.fans} simulated fans (${describeMix(fleet, opts.degradeMinutes)})${fleet.ownLevels === true ? ", each at its own levels" : ""}`,
    );
    io.err("running; Ctrl-C stops everything");

    // On a terminal the status line is redrawn every second; in a log, one line every 10 s.
    let ticks = 0;
    const status = setInterval(() => {
      if (!io.interactive && ++ticks % 10 !== 0) return;
      const { totals, rates, functions } = system.fleet.summary();
      io.progress(
        `${rates.readingsPerSecond.toFixed(1)} readings/s · ${totals.predictions} predictions · ${fansLine(totals)} · replicas: ${functions.replicas.length === 0 ? "unknown" : replicasLine(functions.replicas)} · ${totals.deadLetters} dead letters`,
      );
    }, 1_000);

    await interrupted;
    // A second Ctrl-C while stopping gives up at once.
    process.once("SIGINT", () => process.exit(130));
    clearInterval(status);
    io.progressDone();
    io.err("stopping…");
    await system.stop();
    io.err("stopped");
  });
}

/** "2 faulty, 2 degrading over 10 min, 1 noisy": the shapes the fleet has, wear-outs with their length. */
function describeMix(fleet: FleetMix, degradeMinutes: number): string {
  const { bearing = 0, sudden = 0, noisy = 0, drift = 0, driftPair = 0, hot = 0 } = fleet;
  const parts = [`${fleet.faulty} faulty`, `${fleet.degrading} degrading`];
  if (bearing > 0) parts.push(`${bearing} bearing`);
  if (drift > 0) parts.push(`${drift} drifting`);
  if (driftPair > 0) parts.push(`${driftPair} drifting in pairs`);
  if (fleet.degrading > 0 || bearing > 0 || drift > 0 || driftPair > 0)
    parts[parts.length - 1] += ` over ${degradeMinutes} min`;
  if (sudden > 0) parts.push(`${sudden} sudden`);
  if (noisy > 0) parts.push(`${noisy} noisy`);
  if (hot > 0) parts.push(`${hot} hot (healthy)`);
  return parts.join(", ");
}
