import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command, CommanderError } from "commander";
import {
  CONNECTOR_DEFAULTS,
  CONNECTOR_SETTINGS,
  ConnectorSchema,
  parseStaticFunctions,
  readConnectorConfig,
} from "../../connectors/mqtt/config.js";
import { readWriterConfig, WRITER_DEFAULTS, WRITER_SETTINGS, WriterSchema } from "../../connectors/influxdb/config.js";
import { HEALTH_DEFAULTS, readHealthConfig } from "../../functions/health/config.js";
import { PREDICT_DEFAULTS, readPredictConfig } from "../../functions/predict/config.js";
import { DEFAULT_MODEL_DIR, readScoreConfig } from "../../functions/score/config.js";
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS } from "../../functions/score/batcher.js";
import { ConfigError } from "../../lib/errors.js";
import { DEFAULT_TOPICS, readTopics, TOPIC_SETTINGS } from "../../lib/infra/config.js";
import { DEFAULT_HEALTH_HOST } from "../../lib/infra/health-server.js";
import { DEFAULT_SECRET_PATH } from "../../lib/infra/secrets.js";
import { helpLine, type Setting } from "../../lib/infra/settings.js";
import { DEFAULT_MQTT_URL, mqttSettingsFromEnv } from "../../lib/mqtt/settings.js";
import { buildProgram } from "../../cli/main.js";
import { addSettingFlags, type Io } from "../../cli/parse.js";
import { DEFAULT_STORE_DIR } from "../../runtime/system/nats.js";
import { REPO_ROOT } from "../support/paths.js";

const quiet: Io = { out: () => {}, err: () => {}, progress: () => {}, progressDone: () => {}, interactive: false };

/** `fanwatch <name> --help` as one line: commander wraps it to the terminal's width. */
function help(name: string): string {
  const command = buildProgram(quiet).commands.find((c) => c.name() === name);
  assert.ok(command, `no command ${name}`);
  let text = "";
  command.configureOutput({ writeOut: (s) => (text += s) }).outputHelp();
  return text.replace(/\s+/g, " ");
}

/** Parses `args` as a command with the settings' flags would, and returns what they gave. */
function flags<S extends typeof ConnectorSchema | typeof WriterSchema>(
  schema: S,
  settings: Parameters<typeof addSettingFlags<S>>[2],
  args: string[],
) {
  const command = new Command("test").exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const given = addSettingFlags(command, schema, settings);
  command.parse(args, { from: "user" });
  return given(command.opts());
}

/** The message commander refuses `args` with. */
function refusal(
  schema: typeof ConnectorSchema | typeof WriterSchema,
  settings: Record<string, Setting>,
  args: string[],
): string {
  try {
    flags(schema, settings, args);
  } catch (error) {
    assert.ok(error instanceof CommanderError, String(error));
    return error.message;
  }
  assert.fail(`${args.join(" ")} was accepted`);
}

describe("configuration: defaults written once", () => {
  it("fanwatch connector --help shows the defaults the connector runs with", () => {
    const text = help("connector");
    const config = readConnectorConfig({});
    assert.ok(
      text.includes(
        `--batch-size <n> messages per invocation; 1 sends the raw payload (default ${CONNECTOR_DEFAULTS.batch_size})`,
      ),
      text,
    );
    assert.equal(config.batchSize, CONNECTOR_DEFAULTS.batch_size);
    assert.ok(text.includes(`(default ${CONNECTOR_DEFAULTS.timeout_ms})`));
    assert.equal(config.timeoutMs, CONNECTOR_DEFAULTS.timeout_ms);
    assert.ok(text.includes(`--gateway-url <url> OpenFaaS gateway (default ${CONNECTOR_DEFAULTS.gateway_url})`));
    assert.equal(config.gatewayUrl, CONNECTOR_DEFAULTS.gateway_url);
    assert.ok(
      text.includes(
        `--topic <filters> comma-separated topic filters to subscribe to (default $TELEMETRY_TOPIC or ${DEFAULT_TOPICS.telemetry})`,
      ),
    );
    assert.deepEqual(config.topics, [DEFAULT_TOPICS.telemetry]);
    assert.ok(text.includes(`(default $MQTT_URL or ${DEFAULT_MQTT_URL})`));
    assert.equal(config.mqtt.url, DEFAULT_MQTT_URL);
    assert.ok(
      text.includes(`--health-host <address> address of /healthz and /metrics (default ${DEFAULT_HEALTH_HOST})`),
    );
    assert.equal(config.healthHost, DEFAULT_HEALTH_HOST);
    assert.ok(text.includes(`--secret-mount-path <dir> where secrets are mounted (default ${DEFAULT_SECRET_PATH})`));
    assert.ok(
      text.includes(
        "--autoscale ask the gateway's /system/scale-function for replicas from the backlog, within the scale labels, see docs/deploy.md (default off)",
      ),
    );
    assert.equal(config.autoscale, undefined);
    assert.ok(text.includes("invocations open at once over all functions (default 5 x --max-inflight)"));
    assert.equal(config.maxInFlightTotal, 5 * CONNECTOR_DEFAULTS.max_inflight);
  });

  it("fanwatch influx-writer --help shows the defaults the writer runs with", () => {
    const text = help("influx-writer");
    const config = readWriterConfig({ INFLUX_URL: "http://influx:8086" });
    assert.ok(text.includes(`--batch-size <n> points per write (default ${WRITER_DEFAULTS.INFLUX_BATCH_SIZE})`), text);
    assert.equal(config.batchSize, WRITER_DEFAULTS.INFLUX_BATCH_SIZE);
    assert.ok(
      text.includes(`--port <port> port of /healthz and /metrics (default ${WRITER_DEFAULTS.INFLUX_WRITER_PORT})`),
    );
    assert.equal(config.port, WRITER_DEFAULTS.INFLUX_WRITER_PORT);
    assert.ok(text.includes(`--influx-db <name> 1.x database, or 2.x bucket (default ${WRITER_DEFAULTS.INFLUX_DB})`));
    assert.deepEqual(config.influx, { api: "v1", url: "http://influx:8086", database: WRITER_DEFAULTS.INFLUX_DB });
    assert.ok(
      text.includes(
        `--client-id <id> the persistent session's client id (default ${WRITER_DEFAULTS.INFLUX_CLIENT_ID})`,
      ),
    );
    assert.equal(config.clientId, WRITER_DEFAULTS.INFLUX_CLIENT_ID);
  });

  it("every flag of connector and influx-writer is listed with its setting's help and default", () => {
    for (const [name, settings] of [
      ["connector", CONNECTOR_SETTINGS],
      ["influx-writer", WRITER_SETTINGS],
    ] as const) {
      const text = help(name);
      for (const setting of Object.values<Setting>(settings)) {
        if (setting.flag === undefined) continue;
        assert.ok(
          text.includes(`${setting.flag} ${helpLine(setting)}`),
          `${name} ${setting.flag}: ${helpLine(setting)}`,
        );
      }
    }
  });

  it("simulate and gateway show the broker and topic the code falls back to", () => {
    assert.ok(help("simulate").includes(`(default $MQTT_URL or ${DEFAULT_MQTT_URL};`));
    assert.ok(help("simulate").includes(`(default $TELEMETRY_TOPIC or ${DEFAULT_TOPICS.telemetry})`));
    assert.ok(help("gateway").includes(`MQTT_URL (default ${DEFAULT_MQTT_URL},`));
    assert.equal(mqttSettingsFromEnv({}).url, DEFAULT_MQTT_URL);
    assert.equal(readTopics({}).telemetry, DEFAULT_TOPICS.telemetry);
  });

  it("the functions run with their exported defaults", () => {
    const health = readHealthConfig({});
    assert.deepEqual(
      {
        bucket: health.bucket,
        budgetMs: health.budgetMs,
        casAttempts: health.casAttempts,
        natsTimeoutMs: health.natsTimeoutMs,
      },
      {
        bucket: HEALTH_DEFAULTS.HEALTH_BUCKET,
        budgetMs: HEALTH_DEFAULTS.HEALTH_BUDGET_MS,
        casAttempts: HEALTH_DEFAULTS.HEALTH_CAS_ATTEMPTS,
        natsTimeoutMs: HEALTH_DEFAULTS.NATS_TIMEOUT_MS,
      },
    );
    const predict = readPredictConfig({});
    assert.equal(predict.scoreUrl, PREDICT_DEFAULTS.SCORE_URL);
    assert.equal(predict.budgetMs, PREDICT_DEFAULTS.PREDICT_BUDGET_MS);
    const score = readScoreConfig({});
    assert.equal(score.modelDir, DEFAULT_MODEL_DIR);
    assert.equal(score.maxBatchSize, DEFAULT_MAX_BATCH_SIZE);
  });

  it("the settings tables in docs/ show the exported defaults", () => {
    let checked = 0;
    const check = (doc: string, name: string, shown: string | undefined) => {
      if (!DOCUMENTED_DEFAULTS.has(name) || shown === undefined) return;
      assert.equal(shown, String(DOCUMENTED_DEFAULTS.get(name)), `${doc}: ${name}`);
      checked++;
    };
    for (const doc of ["docs/pipeline.md", "docs/persistence.md", "docs/score.md"]) {
      // Rows such as | `retry_base_ms`, `retry_max_ms` | 100, 5000 | … |: the names, then their defaults.
      for (const row of readDoc(doc)
        .split("\n")
        .filter((line) => line.startsWith("| `"))) {
        const [, namesCell = "", valuesCell = ""] = row.split("|");
        const names = [...namesCell.matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1] ?? "");
        const values = valuesCell.split(",").map(shownValue);
        names.forEach((name, i) => check(doc, name, values.length === names.length ? values[i] : values[0]));
      }
    }
    // docs/architecture.md lists them as `name` (`alias`) = default.
    for (const m of readDoc("docs/architecture.md").matchAll(/`([A-Za-z_]+)`(?: \([^)]*\))? = ([^,;|]+)/g))
      check("docs/architecture.md", m[1] ?? "", shownValue(m[2] ?? ""));
    assert.ok(checked >= 80, `only ${checked} defaults found in the docs`);
  });
});

/** Every default the docs show, by variable (or the connector's setting name). */
const DOCUMENTED_DEFAULTS = new Map<string, unknown>([
  ...Object.entries(CONNECTOR_DEFAULTS),
  ...Object.entries(WRITER_DEFAULTS),
  ...Object.entries(HEALTH_DEFAULTS),
  ...Object.entries(PREDICT_DEFAULTS),
  ...Object.entries(TOPIC_SETTINGS).map(
    ([name, setting]) => [setting.env[0] ?? "", DEFAULT_TOPICS[name as keyof typeof DEFAULT_TOPICS]] as const,
  ),
  ["MODEL_DIR", DEFAULT_MODEL_DIR],
  ["SCORE_MAX_BATCH", DEFAULT_MAX_BATCH_SIZE],
  ["SCORE_BATCH_WAIT_MS", DEFAULT_MAX_WAIT_MS],
  ["HEALTH_HOST", DEFAULT_HEALTH_HOST],
  ["MQTT_URL", DEFAULT_MQTT_URL],
  ["SECRET_MOUNT_PATH", DEFAULT_SECRET_PATH],
  ["NATS_STORE_DIR", DEFAULT_STORE_DIR],
]);

const readDoc = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

/** A default as a document shows it: `code`, a number or a boolean; words ("as predict") are not checked. */
function shownValue(text: string): string | undefined {
  return /^\s*`([^`]*)`/.exec(text)?.[1] ?? /^\s*(\d+|true|false)\b/.exec(text)?.[1];
}

describe("configuration: flags and the environment", () => {
  it("a connector flag gives the same typed value as its variable, in either case", () => {
    const fromFlags = readConnectorConfig(
      {},
      flags(ConnectorSchema, CONNECTOR_SETTINGS, [
        "--batch-size",
        "50",
        "--qos",
        "0",
        "--topic",
        "a, b/+",
        "--autoscale",
        "--gateway-url",
        "http://gw:8080/",
        "--broker",
        "broker.local",
      ]),
    );
    const fromEnv = readConnectorConfig({
      BATCH_SIZE: "50",
      qos: "0",
      topic: "a, b/+",
      AUTOSCALE: "true",
      gateway_url: "http://gw:8080/",
      broker: "broker.local",
    });
    assert.deepEqual(fromFlags, fromEnv);
    assert.equal(fromFlags.batchSize, 50);
    assert.equal(fromFlags.qos, 0);
    assert.deepEqual(fromFlags.topics, ["a", "b/+"]);
    assert.deepEqual(fromFlags.autoscale, {
      intervalMs: CONNECTOR_DEFAULTS.autoscale_interval_ms,
      windowMs: CONNECTOR_DEFAULTS.autoscale_window_ms,
      targetInFlight: CONNECTOR_DEFAULTS.max_inflight,
    });
    assert.equal(fromFlags.gatewayUrl, "http://gw:8080");
    assert.equal(fromFlags.mqtt.url, "mqtt://broker.local:1883");
  });

  it("a flag beats the environment, aliases included", () => {
    const given = flags(ConnectorSchema, CONNECTOR_SETTINGS, [
      "--batch-size",
      "50",
      "--broker",
      "mqtt://flag:1883",
      "--topic",
      "from/flag",
    ]);
    const config = readConnectorConfig(
      { batch_size: "7", MQTT_URL: "mqtt://env:1883", TELEMETRY_TOPIC: "from/env" },
      given,
    );
    assert.equal(config.batchSize, 50);
    assert.equal(config.mqtt.url, "mqtt://flag:1883");
    assert.deepEqual(config.topics, ["from/flag"]);
    const writer = readWriterConfig(
      { INFLUX_URL: "http://env:8086", INFLUX_BATCH_SIZE: "7" },
      flags(WriterSchema, WRITER_SETTINGS, ["--influx-url", "http://flag:8086/", "--batch-size", "20"]),
    );
    assert.equal(writer.influx.url, "http://flag:8086");
    assert.equal(writer.batchSize, 20);
  });

  it("a given setting's variable is not read at all: fanwatch start's port 0 whatever PORT says", () => {
    assert.throws(() => readConnectorConfig({ PORT: "http" }), /invalid configuration: port/);
    assert.equal(readConnectorConfig({ PORT: "http" }, { port: 0 }).port, 0);
  });

  it("the writer's flags give what its variables give", () => {
    const secrets = { INFLUX_TOKEN: "t" }; // never a flag
    const fromFlags = readWriterConfig(
      secrets,
      flags(WriterSchema, WRITER_SETTINGS, [
        "--influx-url",
        "http://i:8086",
        "--influx-api",
        "2",
        "--influx-org",
        "acme",
        "--flush-ms",
        "200",
        "--health-host",
        "127.0.0.1",
        "--broker",
        "mqtt://b:1883",
      ]),
    );
    const fromEnv = readWriterConfig({
      ...secrets,
      INFLUX_URL: "http://i:8086",
      INFLUX_API: "2",
      INFLUX_ORG: "acme",
      INFLUX_FLUSH_MS: "200",
      HEALTH_HOST: "127.0.0.1",
      MQTT_URL: "mqtt://b:1883",
    });
    assert.deepEqual(fromFlags, fromEnv);
    assert.equal(fromFlags.flushMs, 200);
    assert.deepEqual(fromFlags.influx, {
      api: "v2",
      url: "http://i:8086",
      bucket: WRITER_DEFAULTS.INFLUX_DB,
      org: "acme",
      token: "t",
    });
  });

  it("refuses an invalid flag naming the flag, and an invalid variable naming the variable", () => {
    assert.match(refusal(ConnectorSchema, CONNECTOR_SETTINGS, ["--qos", "2"]), /--qos/);
    assert.match(refusal(ConnectorSchema, CONNECTOR_SETTINGS, ["--batch-size", "many"]), /--batch-size/);
    assert.match(
      refusal(ConnectorSchema, CONNECTOR_SETTINGS, ["--topic", " , "]),
      /--topic.*give at least one topic filter/,
    );
    assert.match(refusal(WriterSchema, WRITER_SETTINGS, ["--influx-api", "3"]), /--influx-api.*1 or 2, not "3"/);
    assert.match(refusal(WriterSchema, WRITER_SETTINGS, ["--port", "70000"]), /--port/);
    assert.throws(
      () => readConnectorConfig({ QOS: "2" }),
      (e: unknown) => e instanceof ConfigError && /^invalid configuration: qos: /.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ TOPIC: " , " }),
      (e: unknown) =>
        e instanceof ConfigError && e.message === "invalid configuration: topic: give at least one topic filter",
    );
    assert.throws(
      () => readConnectorConfig({ autoscale: "yes" }),
      (e: unknown) =>
        e instanceof ConfigError && e.message === 'invalid configuration: autoscale: "yes" is not true or false',
    );
    assert.throws(
      () => readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_FLUSH_MS: "0" }),
      (e: unknown) => e instanceof ConfigError && /^invalid configuration: INFLUX_FLUSH_MS: /.test(e.message),
    );
  });

  it("keeps the reference system's names as aliases", () => {
    const connector = readConnectorConfig({ MQTT_HOST: "mosquitto", MQTT_DEV_TOPIC: "dev/topic" });
    assert.equal(connector.mqtt.url, "mqtt://mosquitto:1883");
    assert.deepEqual(connector.topics, ["dev/topic"]);
    assert.deepEqual(readTopics({ MQTT_DEV_TOPIC: "d", MQTT_PREDICT_TOPIC: "p" }), {
      ...DEFAULT_TOPICS,
      telemetry: "d",
      anomaly: "p",
    });
    assert.equal(readPredictConfig({ SCORING_URL: "http://s/function/score" }).scoreUrl, "http://s/function/score");
    assert.equal(readConnectorConfig({ GATEWAY_URL: "http://upper:8080" }).gatewayUrl, "http://upper:8080");
  });
});

describe("connector configuration", () => {
  it("reads the official connector's names in lower or upper case", () => {
    const config = readConnectorConfig({
      gateway_url: "http://gw:8080/",
      TOPIC: "a,b/+",
      qos: "0",
      BATCH_SIZE: "50",
      broker: "mqtt://broker:1883",
      MQTT_USERNAME: "u",
      MQTT_PASSWORD: "p",
    });
    assert.equal(config.gatewayUrl, "http://gw:8080");
    assert.deepEqual(config.topics, ["a", "b/+"]);
    assert.equal(config.qos, 0);
    assert.equal(config.batchSize, 50);
    assert.deepEqual(config.mqtt, { url: "mqtt://broker:1883", username: "u", password: "p" });
    assert.equal(config.staticFunctions, undefined);
  });

  it("bounds memory and time by default: 16 KiB messages, 8 MiB held, 10 s per attempt", () => {
    const config = readConnectorConfig({});
    assert.deepEqual(
      [config.maxMessageBytes, config.maxInflightBytes, config.timeoutMs, config.retries, config.retryMaxMs],
      [16 * 1024, 8 * 1024 * 1024, 10_000, 5, 5_000],
    );
    assert.equal(readConnectorConfig({ MAX_INFLIGHT_BYTES: "1048576" }).maxInflightBytes, 1024 * 1024);
  });

  it("parses static routes", () => {
    assert.deepEqual(
      [...parseStaticFunctions("fan/messages=predict, audit; x/+=y")],
      [
        ["fan/messages", ["predict", "audit"]],
        ["x/+", ["y"]],
      ],
    );
    assert.throws(() => parseStaticFunctions("fan/messages"), ConfigError);
  });

  it("names the setting that is wrong", () => {
    assert.throws(
      () => readConnectorConfig({ qos: "2" }),
      (e: unknown) => e instanceof ConfigError && /qos/.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ batch_size: "many" }),
      (e: unknown) => e instanceof ConfigError && /batch_size/.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ basic_auth: "true", secret_mount_path: "/nonexistent" }),
      /basic-auth-user/,
    );
  });
});
