import type { Command } from "commander";
import { readWriterConfig, WRITER_SETTINGS, WriterSchema } from "../connectors/influxdb/config.js";
import { addSettingFlags, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

export function addInfluxWriterCommand(program: Command, io: Io): void {
  const command = program
    .command("influx-writer")
    .description(
      "store readings, predictions, dead letters and health transitions from MQTT in InfluxDB (1.x or 2.x), acknowledging each only once written or dead-lettered",
    );
  const given = addSettingFlags(command, WriterSchema, WRITER_SETTINGS);
  command.action(async (opts: Record<string, unknown>) => {
    const [{ InfluxWriter }, { createLogger }] = await Promise.all([
      import("../connectors/influxdb/writer.js"),
      import("../lib/infra/log.js"),
    ]);
    const log = createLogger("influx-writer");
    const writer = new InfluxWriter(readWriterConfig(process.env, given(opts)), log);
    await runUntilSignalled(io, writer, log);
  });
}
