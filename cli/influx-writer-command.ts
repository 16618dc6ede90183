import type { Command } from "commander";
import { envWithFlags, type EnvFlag, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

/** Flags and the environment variables they set. */
const FLAGS: EnvFlag[] = [
  ["--influx-url <url>", "INFLUX_URL", "InfluxDB, e.g. http://127.0.0.1:8086 (required)"],
  ["--influx-api <1|2>", "INFLUX_API", "1.x /write or 2.x /api/v2/write (default 2 when INFLUX_TOKEN is set, else 1)"],
  ["--influx-db <name>", "INFLUX_DB", "1.x database, or 2.x bucket (default fan)"],
  ["--influx-org <org>", "INFLUX_ORG", "2.x organisation (the token comes from INFLUX_TOKEN or INFLUX_TOKEN_FILE)"],
  ["--broker <url>", "MQTT_URL", "MQTT broker (default mqtt://127.0.0.1:1883; MQTT_USERNAME/MQTT_PASSWORD)"],
  ["--client-id <id>", "INFLUX_CLIENT_ID", "the persistent session's client id (default fanwatch-influx-writer)"],
  ["--batch-size <n>", "INFLUX_BATCH_SIZE", "points per write (default 1000)"],
  ["--flush-ms <ms>", "INFLUX_FLUSH_MS", "longest wait before a partial batch is written (default 1000)"],
  ["--retry-max-ms <ms>", "INFLUX_RETRY_MAX_MS", "longest wait between two write attempts while InfluxDB is down (default 5000)"],
  ["--max-buffer-bytes <n>", "INFLUX_MAX_BUFFER_BYTES", "bytes of messages held unwritten before the writer stops reading from the broker (default 8388608)"],
  ["--port <port>", "INFLUX_WRITER_PORT", "port of /healthz and /metrics (default 8082)"],
  ["--health-host <host>", "HEALTH_HOST", "address of /healthz and /metrics (default 0.0.0.0)"],
];

export function addInfluxWriterCommand(program: Command, io: Io): void {
  const command = program.command("influx-writer").description("store readings, predictions, dead letters and health transitions from MQTT in InfluxDB (1.x or 2.x), acknowledging each only once written or dead-lettered");
  for (const [flag, , help] of FLAGS) command.option(flag, help);
  command.action(async (opts: Record<string, string | undefined>) => {
    const env = envWithFlags(FLAGS, opts);
    const [{ readWriterConfig }, { InfluxWriter }, { createLogger }] = await Promise.all([import("../connectors/influxdb/config.js"), import("../connectors/influxdb/writer.js"), import("../lib/infra/log.js")]);
    const log = createLogger("influx-writer");
    const writer = new InfluxWriter(readWriterConfig(env), log);
    await runUntilSignalled(io, "InfluxDB writer", writer, () => writer.stop(), log);
  });
}
