import type { Command } from "commander";
import { CONNECTOR_NODE_OPTIONS } from "../connectors/mqtt/node-options.js";
import { CONNECTOR_SETTINGS, readConnectorConfig } from "../connectors/mqtt/config.js";
import { TOPIC_SETTINGS } from "../lib/infra/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { MQTT_SETTINGS } from "../lib/mqtt/settings.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

export function addConnectorCommand(program: Command, io: Io): void {
  const command = program
    .command("connector")
    .description("run the MQTT connector: messages on MQTT topics invoke OpenFaaS functions");
  const given = addSettingFlags(command, CONNECTOR_SETTINGS);
  addSettingsHelp(
    command,
    [
      { title: "Each flag's variable, in lower or upper case (a flag beats it)", settings: CONNECTOR_SETTINGS },
      { title: "The broker, unless --broker or broker names it", settings: MQTT_SETTINGS },
      { title: "Topics (dead letters go to DEADLETTER_TOPIC)", settings: TOPIC_SETTINGS },
      { title: "Logs", settings: LOG_SETTINGS },
    ],
    [
      "Nothing is dropped: a message is acknowledged to the broker only after its function answered",
      "2xx, or after it was dead-lettered because the function rejected it (a 4xx other than",
      "401/403/404/408/429). An outage (connection refused, timeout, 429, 5xx) is retried without",
      "limit; after 1 + --retries failures in a row the function's circuit opens and the sessions of",
      "the topic filters routed to it are parked until a probe succeeds (each filter has a session of",
      "its own: the others flow on). Messages no function has the topic annotation for are held, their",
      "session paused, until one has. /healthz answers 503 and says why. A broker nothing answers at when",
      "the connector starts ends it (exit 1): a wrong address, not an outage; once running, it waits.",
      "",
      `Memory: run with NODE_OPTIONS=${CONNECTOR_NODE_OPTIONS} to keep it under 100 MB resident under load (docs/pipeline.md).`,
    ],
  );
  command.action(async (opts: Record<string, unknown>) => {
    const [{ Connector }, { createLogger }, { probeBroker }] = await Promise.all([
      import("../connectors/mqtt/connector.js"),
      import("../lib/infra/log.js"),
      import("../lib/mqtt/client.js"),
    ]);
    const config = readConnectorConfig(undefined, given(opts));
    await probeBroker(config.mqtt);
    const log = createLogger("mqtt-connector");
    const connector = new Connector(config, log);
    await runUntilSignalled(io, connector, log);
  });
}
