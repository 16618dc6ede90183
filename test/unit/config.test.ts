import assert from "node:assert/strict";
import { parseDuration } from "../../lib/infra/duration.js";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command, CommanderError } from "commander";
import {
  CONNECTOR_DEFAULTS,
  CONNECTOR_SETTINGS,
  parseStaticFunctions,
  readConnectorConfig,
} from "../../connectors/mqtt/config.js";
import { readWriterConfig, WRITER_DEFAULTS, WRITER_SETTINGS } from "../../connectors/influxdb/config.js";
import { HEALTH_DEFAULTS, HEALTH_SETTINGS, readHealthConfig } from "../../functions/health/config.js";
import { HEALTH_POLICY_SETTINGS, readHealthPolicy } from "../../functions/health/policy.js";
import { PREDICT_DEFAULTS, PREDICT_SETTINGS, readPredictConfig } from "../../functions/predict/config.js";
import { DEFAULT_MODEL_DIR, readScoreConfig, SCORE_SETTINGS } from "../../functions/score/config.js";
import { DEFAULT_MAX_BATCH_SIZE } from "../../functions/score/batcher.js";
import { ConfigError } from "../../lib/errors.js";
import { DEFAULT_TOPICS, readTopics, SITE_SETTINGS, TOPIC_SETTINGS } from "../../lib/infra/config.js";
import { DEFAULT_HEALTH_HOST } from "../../lib/infra/health-server.js";
import { DEFAULT_SECRET_PATH, helpLine, readSettings, type Setting, type Settings } from "../../lib/infra/settings.js";
import { LOG_SETTINGS } from "../../lib/infra/log-level.js";
import { DEFAULT_MQTT_URL, MQTT_SETTINGS, mqttSettingsFromEnv } from "../../lib/mqtt/settings.js";
import { buildProgram } from "../../cli/main.js";
import { addSettingFlags, type Io } from "../../cli/parse.js";
import {
  groupIds,
  renderSettingsRegions,
  SETTING_GROUPS,
  settingsDocuments,
  settingsRegions,
} from "../../cli/settings-registry.js";
import { SCALE_SETTINGS } from "../../runtime/gateway/autoscaler.js";
import { GATEWAY_SETTINGS } from "../../runtime/gateway/credentials.js";
import { LIMIT_SETTINGS } from "../../runtime/gateway/guards.js";
import { NATS_SETTINGS } from "../../runtime/system/nats.js";
import { ALERTING_SETTINGS } from "../../runtime/system/alerting.js";
import { NOTIFIER_SETTINGS } from "../../notifier/config.js";
import { PAGE_SETTINGS } from "../../page/config.js";
import { REPO_ROOT } from "../support/paths.js";

/** A config without where its broker came from. */
function withoutSource<C extends { mqtt: { from?: string } }>(config: C): C {
  const { from: _from, ...mqtt } = config.mqtt;
  return { ...config, mqtt };
}

/** A setting's value as its documented default writes it: a list comma-separated, a word, number or flag as text. */
function asWritten(value: unknown): string {
  if (Array.isArray(value)) return value.join(",");
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

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
function flags<S extends Settings>(settings: S, args: string[]) {
  const command = new Command("test").exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const given = addSettingFlags(command, settings);
  command.parse(args, { from: "user" });
  return given(command.opts());
}

/** The message commander refuses `args` with. */
function refusal(settings: Settings, args: string[]): string {
  try {
    flags(settings, args);
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
    assert.ok(help("gateway").includes(`(default ${DEFAULT_MQTT_URL})`));
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
    // Named as score names its replicas: two predict processes on one machine write two comparisons.
    assert.equal(predict.replica, `${hostname()}-${process.pid}`);
    assert.equal(predict.replica, readScoreConfig({}).replica);
    const score = readScoreConfig({});
    assert.equal(score.modelDir, DEFAULT_MODEL_DIR);
    assert.equal(score.maxBatchSize, DEFAULT_MAX_BATCH_SIZE);
  });
});

describe("configuration: one registry, its help and its docs", () => {
  it("every settings table in README.md and docs/ is what npm run docs:config writes", () => {
    const stale: string[] = [];
    const rendered = new Set<string>();
    for (const doc of settingsDocuments(root)) {
      const text = readDoc(doc);
      for (const ids of settingsRegions(text)) for (const id of ids.split(",")) rendered.add(id);
      if (renderSettingsRegions(text) !== text) stale.push(doc);
    }
    assert.deepEqual(stale, [], `stale settings tables in ${stale.join(", ")}: run npm run docs:config`);
    assert.ok(rendered.has("index"), "docs/architecture.md has the index of every setting");
    // Every group has a table of its own somewhere, besides its row in the index.
    assert.deepEqual(
      groupIds().filter((id) => !rendered.has(id)),
      [],
    );
  });

  it("a regenerated table changes when a default does", () => {
    const text = "x\n<!-- settings:score -->\nold\n<!-- /settings:score -->\ny";
    const rendered = renderSettingsRegions(text);
    assert.ok(
      rendered.includes(`| \`SCORE_MAX_BATCH\` | ${DEFAULT_MAX_BATCH_SIZE} | largest coalesced batch |`),
      rendered,
    );
    assert.ok(
      rendered.startsWith("x\n<!-- settings:score -->\n| variable |") &&
        rendered.endsWith("<!-- /settings:score -->\ny"),
    );
  });

  it("a default shown as a value is the one the schema gives", () => {
    for (const group of SETTING_GROUPS)
      for (const [key, setting] of Object.entries<Setting>(group.settings)) {
        const parsed = setting.schema.safeParse(undefined);
        assert.ok(parsed.success, `${group.id}.${key}: unset is refused`);
        const value: unknown = parsed.data;
        // Words ("best available", "$MQTT_URL or …") say what the code works out; they are not a value.
        if (value === undefined || setting.default === undefined || /\s/.test(String(setting.default))) continue;
        // A duration is shown as written (24h) and read as milliseconds.
        if (typeof setting.default === "string" && typeof value === "number") {
          assert.equal(parseDuration(setting.default), value, `${group.id}.${key}`);
          continue;
        }
        const code = asWritten(value);
        assert.equal(String(setting.default), code, `${group.id}.${key}`);
      }
  });

  it("every command's --help lists every setting it reads, with its default", () => {
    const all = (...settings: Settings[]) => settings.flatMap((s) => Object.values<Setting>(s));
    const expected: Record<string, Setting[]> = {
      function: all(
        SCORE_SETTINGS,
        PREDICT_SETTINGS,
        HEALTH_SETTINGS,
        HEALTH_POLICY_SETTINGS,
        SITE_SETTINGS,
        MQTT_SETTINGS,
        TOPIC_SETTINGS,
        LOG_SETTINGS,
      ),
      gateway: all(MQTT_SETTINGS, GATEWAY_SETTINGS, LIMIT_SETTINGS, SCALE_SETTINGS, LOG_SETTINGS, {
        NATS_URL: HEALTH_SETTINGS.NATS_URL,
      }),
      start: all(
        MQTT_SETTINGS,
        TOPIC_SETTINGS,
        NATS_SETTINGS,
        ALERTING_SETTINGS,
        // What start gives the notifier itself is not listed for it.
        Object.fromEntries(
          Object.entries(NOTIFIER_SETTINGS).filter(
            ([key]) =>
              !["NATS_URL", "ALERTMANAGER_URL", "NOTIFIER_PORT", "HEALTH_HOST", "SECRET_MOUNT_PATH"].includes(key),
          ),
        ),
        GATEWAY_SETTINGS,
        LIMIT_SETTINGS,
        SCALE_SETTINGS,
        LOG_SETTINGS,
        { PAGE_USERS_FILE: PAGE_SETTINGS.PAGE_USERS_FILE },
      ),
      connector: all(CONNECTOR_SETTINGS, MQTT_SETTINGS, TOPIC_SETTINGS, LOG_SETTINGS),
      page: all(PAGE_SETTINGS, MQTT_SETTINGS, TOPIC_SETTINGS, LOG_SETTINGS),
      "influx-writer": all(WRITER_SETTINGS, MQTT_SETTINGS, TOPIC_SETTINGS, LOG_SETTINGS),
      simulate: all(MQTT_SETTINGS, TOPIC_SETTINGS),
      deadletters: all(MQTT_SETTINGS, TOPIC_SETTINGS, {
        INFLUX_URL: WRITER_SETTINGS.INFLUX_URL,
        INFLUX_TOKEN: WRITER_SETTINGS.INFLUX_TOKEN,
        INFLUX_PASSWORD: WRITER_SETTINGS.INFLUX_PASSWORD,
      }),
      train: all({ TFJS_BACKEND: SCORE_SETTINGS.TFJS_BACKEND }),
      evaluate: all({ TFJS_BACKEND: SCORE_SETTINGS.TFJS_BACKEND }),
    };
    for (const [name, settings] of Object.entries(expected)) {
      const text = help(name);
      for (const setting of settings) {
        const [variable] = setting.env;
        if (variable !== undefined) assert.ok(text.includes(variable), `fanwatch ${name} --help: ${variable}`);
        // Its default, on its own line or on its flag's.
        if (setting.default !== undefined)
          assert.ok(
            text.includes(helpLine(setting).replace(/\s+/g, " ")),
            `fanwatch ${name} --help: ${helpLine(setting)}`,
          );
      }
    }
    // The ones start gives its connector itself are not read, so not listed.
    assert.ok(help("start").includes("batch_size or BATCH_SIZE"));
    assert.ok(!help("start").includes("client_id or CLIENT_ID"));
  });

  it("only lib/infra/settings.ts reads process.env (besides stack.yml's substitution and the template)", () => {
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
        const path = `${dir}/${entry.name}`;
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith(".ts"))
          readDoc(path)
            .split("\n")
            .forEach((line) => {
              if (/process\.env\b/.test(line) && !/^\s*(\/\/|\*|\/\*\*)/.test(line))
                found.push(`${path}:${line.trim()}`);
            });
      }
    };
    for (const dir of ["cli", "lib", "functions", "connectors", "runtime", "page", "simulation", "model"]) walk(dir);
    assert.deepEqual(found.sort(), [
      // The environment handed on to the processes they start (the functions), read through readSettings.
      "cli/gateway-command.ts:env: process.env,",
      "cli/start-command.ts:env: process.env,",
      "lib/infra/settings.ts:env: NodeJS.ProcessEnv = process.env,",
      // faas-cli's ${VAR:-default} in stack.yml.
      "runtime/gateway/stack.ts:export async function readStack(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Stack> {",
      "runtime/gateway/stack.ts:export function parseStack(text: string, env: NodeJS.ProcessEnv = process.env): Stack {",
      "runtime/gateway/stack.ts:export function substituteEnv(text: string, env: NodeJS.ProcessEnv = process.env): string {",
    ]);
  });
});

const root = REPO_ROOT;
const readDoc = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

describe("configuration: flags and the environment", () => {
  it("a connector flag gives the same typed value as its variable, in either case", () => {
    const fromFlags = readConnectorConfig(
      {},
      flags(CONNECTOR_SETTINGS, [
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
    // The same values; only where the broker came from differs, for the messages that name it.
    assert.equal(fromFlags.mqtt.from, "--broker");
    assert.equal(fromEnv.mqtt.from, "broker");
    assert.deepEqual(withoutSource(fromFlags), withoutSource(fromEnv));
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
    const given = flags(CONNECTOR_SETTINGS, [
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
      flags(WRITER_SETTINGS, ["--influx-url", "http://flag:8086/", "--batch-size", "20"]),
    );
    assert.equal(writer.influx.url, "http://flag:8086");
    assert.equal(writer.batchSize, 20);
  });

  it("a given setting's variable is not read at all: fanwatch start's port 0 whatever PORT says", () => {
    assert.throws(() => readConnectorConfig({ PORT: "http" }), /invalid configuration: PORT/);
    assert.equal(readConnectorConfig({ PORT: "http" }, { port: 0 }).port, 0);
  });

  it("the writer's flags give what its variables give", () => {
    const secrets = { INFLUX_TOKEN: "t" }; // never a flag
    const fromFlags = readWriterConfig(
      secrets,
      flags(WRITER_SETTINGS, [
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
    assert.equal(fromFlags.mqtt.from, "--broker");
    assert.equal(fromEnv.mqtt.from, "MQTT_URL");
    assert.deepEqual(withoutSource(fromFlags), withoutSource(fromEnv));
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
    assert.match(refusal(CONNECTOR_SETTINGS, ["--qos", "2"]), /--qos/);
    assert.match(refusal(CONNECTOR_SETTINGS, ["--batch-size", "many"]), /--batch-size/);
    assert.match(refusal(CONNECTOR_SETTINGS, ["--topic", " , "]), /--topic.*give at least one topic filter/);
    assert.match(refusal(WRITER_SETTINGS, ["--influx-api", "3"]), /--influx-api.*1 or 2, not "3"/);
    assert.match(refusal(WRITER_SETTINGS, ["--port", "70000"]), /--port/);
    assert.throws(
      () => readConnectorConfig({ QOS: "2" }),
      (e: unknown) => e instanceof ConfigError && /^invalid configuration: QOS: /.test(e.message),
    );
    assert.throws(
      () => readConnectorConfig({ TOPIC: " , " }),
      (e: unknown) =>
        e instanceof ConfigError && e.message === "invalid configuration: TOPIC: give at least one topic filter",
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

  it("MQTT_URL takes a URL MQTT.js connects with; MQTT_HOST, broker and --broker a host name too", () => {
    const refused = (env: NodeJS.ProcessEnv, message: RegExp) =>
      assert.throws(
        () => mqttSettingsFromEnv(env),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    refused({ MQTT_URL: "not-a-url" }, /^invalid configuration: MQTT_URL: "not-a-url" is not a URL/);
    refused({ MQTT_URL: "htp://127.0.0.1:1883" }, /^invalid configuration: MQTT_URL: unsupported scheme "htp"/);
    refused({ MQTT_HOST: "foo://x" }, /^invalid configuration: MQTT_HOST: unsupported scheme "foo"/);
    for (const url of [
      "mqtt://h:1883",
      "mqtts://h:8883",
      "tcp://h",
      "ssl://h",
      "tls://h",
      "ws://h/mqtt",
      "wss://h/mqtt",
    ])
      assert.equal(mqttSettingsFromEnv({ MQTT_URL: url }).url, url);
    assert.deepEqual(mqttSettingsFromEnv({ MQTT_HOST: "mosquitto:1884" }), {
      url: "mqtt://mosquitto:1884",
      from: "MQTT_HOST",
    });
    assert.deepEqual(mqttSettingsFromEnv({}), { url: DEFAULT_MQTT_URL });
    assert.match(refusal(CONNECTOR_SETTINGS, ["--broker", "foo://x"]), /--broker.*unsupported scheme "foo"/);
    // A flag beats the variables, which are then not read at all.
    assert.equal(
      readConnectorConfig({ MQTT_URL: "not-a-url" }, { broker: "mqtt://flag:1883" }).mqtt.url,
      "mqtt://flag:1883",
    );
  });

  it("reads a secret from its variable, else the file NAME_FILE names, else the OpenFaaS secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "fanwatch-secrets-"));
    try {
      writeFileSync(join(dir, "mqtt-password"), "from-the-mount\n");
      writeFileSync(join(dir, "file"), "from-the-file\n");
      const password = (env: NodeJS.ProcessEnv) => mqttSettingsFromEnv({ SECRET_MOUNT_PATH: dir, ...env }).password;
      assert.equal(
        password({ MQTT_PASSWORD: "from-the-variable", MQTT_PASSWORD_FILE: join(dir, "file") }),
        "from-the-variable",
      );
      assert.equal(password({ MQTT_PASSWORD_FILE: join(dir, "file") }), "from-the-file");
      assert.equal(password({}), "from-the-mount");
      // A file that is not there counts as unset, as a secret not mounted does.
      assert.equal(password({ MQTT_PASSWORD_FILE: join(dir, "missing") }), undefined);
      assert.equal(
        readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_TOKEN_FILE: join(dir, "file"), INFLUX_ORG: "o" }).influx
          .api,
        "v2",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the variable that held a bad value, aliases included", () => {
    const named = (env: NodeJS.ProcessEnv, name: string) =>
      assert.throws(
        () => readSettings(PREDICT_SETTINGS, env),
        (e: unknown) => e instanceof ConfigError && e.message.startsWith(`invalid configuration: ${name}: `),
      );
    named({ PREDICT_BUDGET_MS: "soon" }, "PREDICT_BUDGET_MS");
    assert.equal(readSettings(PREDICT_SETTINGS, { SCORE_URL: "", SCORING_URL: "http://s" }).SCORE_URL, "http://s");
    assert.throws(
      () => readHealthPolicy({ HEALTH_ALARM_COUNT: "9" }),
      /HEALTH_ALARM_COUNT \(9\) is more than HEALTH_ALARM_WINDOW/,
    );
    assert.throws(() => readSettings(LOG_SETTINGS, { LOG_LEVEL: "loud" }), /LOG_LEVEL: must be one of fatal/);
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
    // `from` names the setting that gave the broker, for the messages about it.
    assert.deepEqual(config.mqtt, { url: "mqtt://broker:1883", username: "u", password: "p", from: "broker" });
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
