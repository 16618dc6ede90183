import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { DEFAULT_MQTT_URL } from "../lib/mqtt/settings.js";
import { integer, type Io } from "./parse.js";
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
  program
    .command("gateway")
    .description(
      "run the local gateway with every function of stack.yml, against the broker in MQTT_URL (no broker, connector, fleet or page of its own)",
    )
    .option("--port <port>", "the gateway's port", integer("--port"), DEFAULT_GATEWAY_PORT)
    .option("--host <address>", "the gateway's address; 0.0.0.0 opens it to the network", DEFAULT_GATEWAY_HOST)
    .option("--stack <file>", "the functions to run (default: the repository's stack.yml)")
    .addHelpText(
      "after",
      `\nThe functions publish to MQTT_URL (default ${DEFAULT_MQTT_URL}, credentials from MQTT_USERNAME/MQTT_PASSWORD).\n` +
        "health keeps the fans' health in the NATS server at NATS_URL (JetStream); without it, in memory (lost when it stops).\n" +
        "Async callbacks go to loopback only, or to the hosts in CALLBACK_ALLOWED_HOSTS (docs/start.md).\n" +
        "/system credentials: basic-auth-user/-password under SECRET_MOUNT_PATH, else GATEWAY_PASSWORD, else printed at start;\n" +
        "feed it from MQTT with `fanwatch connector --basic-auth --secret-mount-path DIR` and SECRET_MOUNT_PATH=DIR here,\n" +
        "or with OpenFaaS's own mqtt-connector; faas-cli (login, list, describe, invoke, logs, namespaces, secret list,\n" +
        "version) works against it: its functions are in the namespace openfaas-fn (docs/start.md).\n" +
        "Each function runs between its com.openfaas.scale.min and scale.max replicas, autoscaled from measured load\n" +
        "(GATEWAY_SCALE_INTERVAL_MS, _TARGET_INFLIGHT, _LATENCY_MS, _DOWN_WINDOW_MS, _MIN_IDLE_CPU; docs/start.md),\n" +
        "or set by hand with POST /system/scale-function/<name>.",
    )
    .action(async (opts: GatewayFlags) => {
      // Listening before anything starts: a signal during start-up stops the functions once they are up.
      const stopped = new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      const [
        { GatewayService, CONSOLE_LOG_LEVEL },
        { createLogger, readableLine },
        { mqttSettingsFromEnv, redactUrl },
      ] = await Promise.all([
        import("../runtime/gateway/runner.js"),
        import("../lib/infra/log.js"),
        import("../lib/mqtt/settings.js"),
      ]);
      // On a terminal every log line, ours and the functions', is one readable line; piped, JSON.
      const renderLine = io.interactive ? readableLine : undefined;
      const log = createLogger(
        "fanwatch-gateway",
        process.env.LOG_LEVEL ?? CONSOLE_LOG_LEVEL,
        renderLine === undefined ? undefined : (line) => io.err(renderLine(line)),
      );
      const mqtt = mqttSettingsFromEnv(process.env);
      const stackFile = opts.stack ?? fileURLToPath(new URL("stack.yml", REPO_ROOT));
      const gateway = new GatewayService({
        port: opts.port,
        host: opts.host,
        stackFile,
        mqtt,
        natsUrl: process.env.NATS_URL,
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
