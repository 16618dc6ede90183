import type { Command } from "commander";
import { CONNECTOR_NODE_OPTIONS } from "../connectors/mqtt/node-options.js";
import { CONNECTOR_SETTINGS, ConnectorSchema, readConnectorConfig } from "../connectors/mqtt/config.js";
import { addSettingFlags, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

export function addConnectorCommand(program: Command, io: Io): void {
  const command = program
    .command("connector")
    .description("run the MQTT connector: messages on MQTT topics invoke OpenFaaS functions")
    .addHelpText(
      "after",
      [
        "",
        "Nothing is dropped: a message is acknowledged to the broker only after its function answered",
        "2xx, or after it was dead-lettered because the function rejected it (a 4xx other than",
        "401/403/404/408/429). An outage (connection refused, timeout, 429, 5xx) is retried without",
        "limit; after 1 + --retries failures in a row the function's circuit opens and the sessions of",
        "the topic filters routed to it are parked until a probe succeeds (each filter has a session of",
        "its own: the others flow on). Messages no function has the topic annotation for are held, their",
        "session paused, until one has. /healthz answers 503 and says why.",
        "",
        `Memory: run with NODE_OPTIONS=${CONNECTOR_NODE_OPTIONS} to keep it under 100 MB resident under load (docs/pipeline.md).`,
      ].join("\n"),
    );
  const given = addSettingFlags(command, ConnectorSchema, CONNECTOR_SETTINGS);
  command.action(async (opts: Record<string, unknown>) => {
    const [{ Connector }, { createLogger }] = await Promise.all([
      import("../connectors/mqtt/connector.js"),
      import("../lib/infra/log.js"),
    ]);
    const log = createLogger("mqtt-connector");
    const connector = new Connector(readConnectorConfig(process.env, given(opts)), log);
    await runUntilSignalled(io, "connector", connector, () => connector.drain(), log);
  });
}
