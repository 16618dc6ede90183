import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { LOG_SETTINGS, logLevelSetting } from "../lib/infra/log-level.js";
import { readSettings } from "../lib/infra/settings.js";
import { MQTT_SETTINGS, mqttSettingsFromEnv, redactUrl } from "../lib/mqtt/settings.js";
import { SCALE_SETTINGS } from "../runtime/gateway/autoscaler.js";
import { GATEWAY_SETTINGS } from "../runtime/gateway/credentials.js";
import { LIMIT_SETTINGS } from "../runtime/gateway/guards.js";
import { addSettingsHelp, integer, type Io } from "./parse.js";
import { REPO_ROOT } from "./paths.js";

/** Where `fanwatch gateway` and `fanwatch start` listen unless told otherwise: this machine only. */
export const DEFAULT_GATEWAY_PORT = 8080;
export const DEFAULT_GATEWAY_HOST = "127.0.0.1";

interface GatewayFlags {
  port: number;
  host: string;
  stack?: string;
}

export function addGatewayCommand(program: Command, io: Io): void {
  const command = program
    .command("gateway")
    .description(
      "run the local gateway with every function of stack.yml, against the broker in MQTT_URL (no broker, connector, fleet or page of its own)",
    )
    .option("--port <port>", "the gateway's port", integer("--port"), DEFAULT_GATEWAY_PORT)
    .option("--host <address>", "the gateway's address; 0.0.0.0 opens it to the network", DEFAULT_GATEWAY_HOST)
    .option("--stack <file>", "the functions to run (default: the repository's stack.yml)");
  addSettingsHelp(command, GATEWAY_HELP, [
    "The functions publish to the broker and keep the fans' health in NATS_URL (JetStream); without it, in memory",
    "(lost when it stops). Async callbacks go to loopback only, or to the hosts in CALLBACK_ALLOWED_HOSTS (docs/start.md).",
    "It answers only Hosts naming localhost, an IP address, this machine or a name in GATEWAY_HOSTS (421 otherwise:",
    "DNS rebinding), and makes an address wait after GATEWAY_LOGIN_FAILURES wrong /system logins (429, Retry-After).",
    "/system credentials: basic-auth-user/-password under SECRET_MOUNT_PATH, else GATEWAY_PASSWORD, else printed at start;",
    "feed it from MQTT with `fanwatch connector --basic-auth --secret-mount-path DIR` and SECRET_MOUNT_PATH=DIR here,",
    "or with OpenFaaS's own mqtt-connector; faas-cli (login, list, describe, invoke, logs, namespaces, secret list,",
    "version) works against it: its functions are in the namespace openfaas-fn (docs/start.md).",
    "Each function runs between its com.openfaas.scale.min and scale.max replicas, autoscaled from measured load",
    "(GATEWAY_SCALE_*, docs/start.md), or set by hand with POST /system/scale-function/<name>. The functions read",
    "their own settings from the environment they inherit (fanwatch function --help).",
  ]);
  command.action(async (opts: GatewayFlags) => {
    // Listening before anything starts: a signal during start-up stops the functions once they are up.
    const stopped = new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    const [{ GatewayService, CONSOLE_LOG_LEVEL }, { createLogger, readableLine }] = await Promise.all([
      import("../runtime/gateway/runner.js"),
      import("../lib/infra/log.js"),
    ]);
    // On a terminal every log line, ours and the functions', is one readable line; piped, JSON.
    const renderLine = io.interactive ? readableLine : undefined;
    const log = createLogger(
      "fanwatch-gateway",
      logLevelSetting() ?? CONSOLE_LOG_LEVEL,
      renderLine === undefined ? undefined : (line) => io.err(renderLine(line)),
    );
    const mqtt = mqttSettingsFromEnv();
    const stackFile = opts.stack ?? fileURLToPath(new URL("stack.yml", REPO_ROOT));
    const gateway = new GatewayService({
      port: opts.port,
      host: opts.host,
      stackFile,
      mqtt,
      natsUrl: readSettings({ NATS_URL: HEALTH_SETTINGS.NATS_URL }).NATS_URL,
      // What the functions inherit; the gateway's own settings are read from it too.
      env: process.env,
      log,
      say: (line: string) => io.err(line),
      renderLine,
    });
    await gateway.start();
    io.err(`functions publish to ${redactUrl(mqtt.url)}`);
    io.err(
      `gateway running on ${gateway.url}${opts.host === "0.0.0.0" ? " and every address of this machine" : ""}; Ctrl-C stops it`,
    );
    await stopped;
    process.once("SIGINT", () => process.exit(130)); // a second Ctrl-C gives up at once
    io.err("stopping: the functions finish what they hold…");
    await gateway.drain();
    io.err("stopped");
  });
}

/** What the gateway reads of its own, in `fanwatch gateway` and `fanwatch start`. */
export const GATEWAY_OWN_HELP = [
  { title: "The gateway's /system credentials", settings: GATEWAY_SETTINGS },
  { title: "What it accepts", settings: LIMIT_SETTINGS },
  { title: "How it scales the functions", settings: SCALE_SETTINGS },
  { title: "Logs", settings: LOG_SETTINGS },
] as const;

const GATEWAY_HELP = [
  { title: "The functions' broker (MQTT)", settings: MQTT_SETTINGS },
  { title: "The fans' health", settings: { NATS_URL: HEALTH_SETTINGS.NATS_URL } },
  ...GATEWAY_OWN_HELP,
];
