import type { Command } from "commander";
import { readWriterConfig, WRITER_SETTINGS } from "../connectors/influxdb/config.js";
import { TOPIC_SETTINGS } from "../lib/infra/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { MQTT_SETTINGS } from "../lib/mqtt/settings.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

export function addInfluxWriterCommand(program: Command, io: Io): void {
  const command = program
    .command("influx-writer")
    .description(
      "store predictions with the readings they scored (never the telemetry topic: it carries readings not let in), dead letters and health transitions from MQTT in InfluxDB (1.x or 2.x), acknowledging each only once written or dead-lettered",
    );
  const given = addSettingFlags(command, WRITER_SETTINGS);
  addSettingsHelp(command, [
    { title: "The writer's variables (a flag beats its variable)", settings: WRITER_SETTINGS },
    { title: "The broker, unless --broker names it", settings: MQTT_SETTINGS },
    { title: "The topics it stores", settings: TOPIC_SETTINGS },
    { title: "Logs", settings: LOG_SETTINGS },
  ]);
  command.action(async (opts: Record<string, unknown>) => {
    const [{ InfluxWriter }, { createLogger }, { probeBroker }] = await Promise.all([
      import("../connectors/influxdb/writer.js"),
      import("../lib/infra/log.js"),
      import("../lib/mqtt/client.js"),
    ]);
    const config = readWriterConfig(undefined, given(opts));
    await probeBroker(config.mqtt);
    const log = createLogger("influx-writer");
    const writer = new InfluxWriter(config, log);
    await runUntilSignalled(io, writer, log);
  });
}
