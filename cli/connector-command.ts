import type { Command } from "commander";
import { CONNECTOR_NODE_OPTIONS } from "../connectors/mqtt/node-options.js";
import { envWithFlags, type EnvFlag, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

/** Flags and the environment variables they set (the official connector's names where it has them). */
const FLAGS: EnvFlag[] = [
  ["--gateway-url <url>", "gateway_url", "OpenFaaS gateway (default http://127.0.0.1:8080)"],
  ["--broker <url>", "broker", "MQTT broker URL, mqtt:// or mqtts:// (default $MQTT_URL or mqtt://127.0.0.1:1883)"],
  ["--topic <filters>", "topic", "comma-separated topic filters to subscribe to (default $TELEMETRY_TOPIC or fan/messages)"],
  ["--functions <map>", "functions", "static routes instead of asking the gateway: 'fan/messages=predict;fan/+/x=a,b'"],
  ["--client-id <id>", "client_id", "MQTT client id of the persistent session (default fanwatch-connector)"],
  ["--qos <0|1>", "qos", "subscription QoS (default 1)"],
  ["--shared-group <name>", "shared_group", "subscribe as $share/<name>/<filter> so replicas split the load"],
  ["--batch-size <n>", "batch_size", "messages per invocation; 1 sends the raw payload (default 200)"],
  ["--batch-wait-ms <ms>", "batch_wait_ms", "longest wait to fill a batch (default 10)"],
  ["--max-inflight <n>", "max_inflight", "invocations open at once per replica of a function (its availableReplicas, at least one); per function with --functions (default 8)"],
  ["--max-inflight-total <n>", "max_inflight_total", "invocations open at once over all functions (default 5 x --max-inflight)"],
  ["--autoscale", "autoscale", "ask the gateway's /system/scale-function for replicas from the backlog, within the scale labels (off by default; docs/deploy.md)"],
  ["--autoscale-interval-ms <ms>", "autoscale_interval_ms", "how often autoscale decides (default 5000)"],
  ["--autoscale-window-ms <ms>", "autoscale_window_ms", "low load this long before one replica is removed (default 60000)"],
  ["--autoscale-target-inflight <n>", "autoscale_target_inflight", "work per replica (in flight and waiting, in batches) above which autoscale asks for more (default --max-inflight)"],
  ["--retries <n>", "retries", "retries of a failing function before its circuit opens and intake pauses (default 5); outages never dead-letter"],
  ["--retry-base-ms <ms>", "retry_base_ms", "first backoff, doubled each retry (default 100)"],
  ["--retry-max-ms <ms>", "retry_max_ms", "longest backoff, and between probes of an open circuit (default 5000)"],
  ["--timeout-ms <ms>", "timeout_ms", "per invocation attempt, sent as X-Timeout-Ms; keep it under the function's exec_timeout (default 10000)"],
  ["--refresh-interval-ms <ms>", "refresh_interval_ms", "how often to re-read /system/functions (default 5000)"],
  ["--async-invoke", "async_invoke", "invoke through /async-function/<name>"],
  ["--callback-url <url>", "callback_url", "X-Callback-Url for async invocations"],
  ["--basic-auth", "basic_auth", "authenticate to /system with the basic-auth-user/-password secrets"],
  ["--secret-mount-path <dir>", "secret_mount_path", "where secrets are mounted (default /var/openfaas/secrets)"],
  ["--content-type <type>", "content_type", "Content-Type of invocations (default application/json)"],
  ["--port <port>", "port", "port of /healthz and /metrics (default 8081)"],
  ["--health-host <address>", "HEALTH_HOST", "address of /healthz and /metrics (default 0.0.0.0)"],
  ["--max-message-bytes <n>", "max_message_bytes", "larger messages are dead-lettered (default 16384)"],
  ["--max-inflight-bytes <n>", "max_inflight_bytes", "bytes of messages (topic and payload) held unacknowledged before it stops reading from the broker (default 8388608)"],
  ["--max-batch-bytes <n>", "max_batch_bytes", "a batch is sent once its payloads reach this size (default 524288)"],
];

export function addConnectorCommand(program: Command, io: Io): void {
  const command = program.command("connector").description("run the MQTT connector: messages on MQTT topics invoke OpenFaaS functions")
    .addHelpText(
      "after",
      [
        "",
        "Nothing is dropped: a message is acknowledged to the broker only after its function answered",
        "2xx, or after it was dead-lettered because the function rejected it (a 4xx other than",
        "401/403/404/408/429). An outage (connection refused, timeout, 429, 5xx) is retried without",
        "limit; after 1 + --retries failures in a row the function's circuit opens and intake pauses",
        "until a probe succeeds. Messages no function has the topic annotation for are held, intake",
        "paused, until one has. /healthz answers 503 and says why.",
        "",
        `Memory: run with NODE_OPTIONS=${CONNECTOR_NODE_OPTIONS} to keep it under 100 MB resident under load (docs/pipeline.md).`,
      ].join("\n"),
    );
  for (const [flag, , help] of FLAGS) command.option(flag, help);
  command.action(async (opts: Record<string, string | boolean | undefined>) => {
    const env = envWithFlags(FLAGS, opts);
    const [{ readConnectorConfig }, { Connector }, { createLogger }] = await Promise.all([import("../connectors/mqtt/config.js"), import("../connectors/mqtt/connector.js"), import("../lib/infra/log.js")]);
    const log = createLogger("mqtt-connector");
    const connector = new Connector(readConnectorConfig(env), log);
    await runUntilSignalled(io, "connector", connector, () => connector.drain(), log);
  });
}
