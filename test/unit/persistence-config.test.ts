import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { readWriterConfig } from "../../connectors/influxdb/config.js";
import { createLineWriter } from "../../connectors/influxdb/influx-client.js";
import { SCHEMA, toLines, type Source } from "../../connectors/influxdb/points.js";
import {
  newHealthRecord,
  AlarmTransitionSchema,
  NOTE_EVENTS,
  transitionFrom,
  type HealthRecord,
} from "../../lib/domain/health.js";
import { REPO_ROOT } from "../support/paths.js";

const read = (path: string) => readFile(join(REPO_ROOT, path), "utf8");
/** A TOML file as the shape the test expects; the assertions check it. */
const toml = async <T>(path: string) => parseToml(await read(path)) as unknown as T;

interface JsonV2 {
  measurement_name: string;
  timestamp_path?: string;
  timestamp_format: string;
  tag: Array<{ path: string; optional?: boolean }>;
  field: Array<{ path: string; type: string; rename?: string; optional?: boolean }>;
}
interface RenameProcessor {
  namepass: string[];
  tagpass: Record<string, string[]>;
  replace: Array<{ field: string; dest: string }>;
}
interface RegexConversion {
  key: string;
  pattern: string;
  replacement: string;
}
interface RegexProcessor {
  namepass: string[];
  tags?: RegexConversion[];
  fields?: RegexConversion[];
}
interface MqttInput {
  servers: string[];
  topics: string[];
  qos: number;
  client_id: string;
  persistent_session: boolean;
  topic_tag: string;
  data_format: string;
  json_v2: JsonV2[];
}

/** Every json_v2 block of every input: one per measurement. */
const blocks = (inputs: MqttInput[]) => inputs.flatMap((input) => input.json_v2);

type Metric = { measurement: string; tags: Record<string, string>; fields: Record<string, unknown>; time: number };

/**
 * What Telegraf makes of one message with an input's json_v2 blocks (plugins/parsers/json_v2 and
 * models/running_input.go, 1.34), for the paths used here (dot paths to values, and GJSON's
 * `|@tostr`, which makes the value found its JSON text): a path that is not there is an error for
 * the whole message unless optional (the message is then acknowledged and nothing is stored); each
 * block is one metric; a metric without fields is dropped.
 */
function telegrafMetrics(input: MqttInput, message: Record<string, unknown>): Metric[] | { error: string } {
  const at = (path: string) => {
    const [dotted = "", modifier] = path.split("|");
    const value = dotted
      .split(".")
      .reduce<unknown>(
        (v, key) => (v !== null && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined),
        message,
      );
    if (modifier === undefined || value === undefined) return value;
    assert.equal(modifier, "@tostr", "the only modifier this model knows");
    return JSON.stringify(value);
  };
  const metrics: Metric[] = [];
  for (const block of input.json_v2) {
    let time = 0;
    if (block.timestamp_path !== undefined) {
      const text = at(block.timestamp_path);
      if (typeof text !== "string") return { error: `the timestamp path ${block.timestamp_path} is not a time` };
      // Go's reference layouts this model reads: the readings' (UTC) and RFC 3339 (health's `at`).
      if (block.timestamp_format === "2006-01-02T15:04:05Z07:00") time = Date.parse(text);
      else {
        assert.equal(block.timestamp_format, "2006-01-02 15:04:05", "the reference formats are all this model reads");
        time = Date.parse(`${text.replace(" ", "T")}Z`);
      }
    }
    const tags: Record<string, string> = {};
    for (const tag of block.tag) {
      const value = at(tag.path);
      if (value === undefined) {
        if (tag.optional === true) continue;
        return { error: `the path ${tag.path} doesn't exist` };
      }
      // json_v2 takes a value for a tag, not an object (the paths here are strings).
      assert.equal(typeof value, "string", `tag ${tag.path}`);
      tags[tag.path] = value as string;
    }
    const fields: Record<string, unknown> = {};
    for (const field of block.field) {
      const value = at(field.path);
      if (value === undefined) {
        if (field.optional === true) continue;
        return { error: `the path ${field.path} doesn't exist` };
      }
      fields[field.rename ?? field.path] = value;
    }
    if (Object.keys(fields).length > 0) metrics.push({ measurement: block.measurement_name, tags, fields, time });
  }
  return metrics;
}

/**
 * What Telegraf's processors.regex (1.34) makes of metrics, for the conversions used here: tag
 * and string field conversions of the measurements in namepass, after Telegraf has put the
 * variables `env` into the configuration; every match is replaced (Go's ReplaceAllString), a value
 * the pattern does not match is left as it is. Go's `(?s)` is JS's flag s; a replacement here is
 * literal (Go would expand `$`).
 */
function telegrafRegex(
  processors: RegexProcessor[],
  metrics: Metric[],
  env: Map<string, string | undefined>,
): Metric[] {
  const substitute = (text: string) => text.replace(/\$\{(\w+)\}/g, (_, name: string) => env.get(name) ?? "");
  const convert = (values: Record<string, unknown>, conversion: RegexConversion) => {
    const value = values[conversion.key];
    const pattern = substitute(conversion.pattern);
    const replacement = substitute(conversion.replacement);
    assert.ok(!replacement.includes("$"), "a literal replacement");
    const regex = new RegExp(
      pattern.startsWith("(?s)") ? pattern.slice(4) : pattern,
      pattern.startsWith("(?s)") ? "gs" : "g",
    );
    if (typeof value === "string") values[conversion.key] = value.replace(regex, replacement);
  };
  for (const processor of processors)
    for (const metric of metrics.filter((m) => processor.namepass.includes(m.measurement))) {
      for (const conversion of processor.tags ?? []) convert(metric.tags, conversion);
      for (const conversion of processor.fields ?? []) convert(metric.fields, conversion);
    }
  return metrics;
}

/** A line of line protocol as the same shape (the writer's points, to compare with Telegraf's). */
function fromLine(line: string): Metric {
  const [head = "", fieldText = "", time = "0"] = line.split(" ");
  const [measurement = "", ...tagParts] = head.split(",");
  const tags = Object.fromEntries(tagParts.map((t) => t.split("=") as [string, string]));
  const fields = Object.fromEntries(
    fieldText.split(",").map((f) => {
      const [key = "", value = ""] = f.split("=");
      return [key, Number(value.replace(/i$/, ""))];
    }),
  );
  return { measurement, tags, fields, time: Number(BigInt(time) / 1_000_000n) };
}

/** A warning as health publishes it, with its eta interval, basis and drifting sensors. */
function warningTransition() {
  const record: HealthRecord = {
    ...newHealthRecord("3", "2026-01-01T00:00:00.000Z"),
    state: "warning",
    alarmId: "3@2026-01-01T00:00:00.000Z",
    severity: "minor",
    cause: "vibration",
    probability: 0.41,
    eta: "2026-01-01T03:00:00.000Z",
    etaInterval: { from: "2026-01-01T02:00:00.000Z", to: "2026-01-01T05:00:00.000Z", coverage: 0.8 },
    basis: "baseline",
    sensors: ["vibration", "temperature"],
  };

  return transitionFrom(record, { event: "warning", at: "2026-01-01T00:00:00.000Z", id: "3:1767225600000:1" });
}

describe("Telegraf configuration (Telegraf cannot run here: its files are checked against the schema)", () => {
  it("consumes predictions, dead letters and health transitions at QoS 1 with persistent sessions and fixed client ids, never the readings' topic", async () => {
    const config = await toml<{ agent: { omit_hostname: boolean }; inputs: { mqtt_consumer: MqttInput[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const inputs = config.inputs.mqtt_consumer;
    // Readings come from the predictions: fan/messages also carries readings of fans not let in.
    assert.deepEqual(
      inputs.map((i) => i.topics),
      [["${ANOMALY_TOPIC}"], ["${DEADLETTER_TOPIC}"], ["${ALARM_TOPIC}"]],
    );
    // The telemetry topic names only the dead letters' topic tag (processors.regex), no input.
    assert.doesNotMatch(JSON.stringify(config.inputs), /TELEMETRY_TOPIC/);
    for (const input of inputs) {
      assert.equal(input.qos, 1);
      assert.equal(input.persistent_session, true);
      assert.match(input.client_id, /^fanwatch-telegraf-/);
      assert.equal(input.topic_tag, "", "no topic tag on the points");
      assert.equal(input.data_format, "json_v2");
    }
    assert.deepEqual(
      inputs.map((i) => i.client_id),
      ["fanwatch-telegraf-prediction", "fanwatch-telegraf-deadletter", "fanwatch-telegraf-health"],
      "the sessions kept from before",
    );
    assert.equal(config.agent.omit_hostname, true, "no host tag on the points");
  });

  it("declares exactly the documented schema: measurements, tags and field types", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] }; processors?: { rename?: RenameProcessor[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const telegrafTypes: Record<string, string> = { float: "float", int: "integer", string: "string", bool: "boolean" };
    const declared = Object.fromEntries(
      blocks(config.inputs.mqtt_consumer).map((parser) => [
        parser.measurement_name,
        {
          tags: parser.tag.map((t) => t.path),
          fields: Object.fromEntries(parser.field.map((f) => [f.rename ?? f.path, telegrafTypes[f.type] ?? f.type])),
        },
      ]),
    );
    // A field renamed for some points (a note's author) is a field of its own with the same type.
    for (const rename of config.processors?.rename ?? [])
      for (const measurement of rename.namepass)
        for (const { field, dest } of rename.replace) {
          const fields = (declared[measurement] as { fields: Record<string, string> } | undefined)?.fields;
          assert.ok(fields?.[field] !== undefined, `processors.rename: ${measurement} has a field ${field}`);
          fields[dest] = fields[field];
        }
    assert.deepEqual(declared, JSON.parse(JSON.stringify(SCHEMA)));
  });

  it("stores from a prediction the points the writer stores, its reading included, and nothing of a sensor notice", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const anomaly = config.inputs.mqtt_consumer.find((i) => i.topics[0] === "${ANOMALY_TOPIC}");
    assert.ok(anomaly, "an input on the anomaly topic");
    const reading = { rotation: 612.5, temperature: 40.25, vibration: 151.75, sound: 48.5 };
    const prediction = { deviceID: "7", timeStamp: "2026-11-27 10:00:00", fault: 1, probability: 0.875, model: "m1" };
    const messages: Array<Record<string, unknown>> = [
      { ...prediction, reading, cause: "vibration", contributions: { ...reading } },
      prediction,
      {
        deviceID: "7",
        timeStamp: "2026-11-27 10:00:01",
        implausible: { sensor: "rotation", value: 25000, code: "FANWATCH_READING_IMPLAUSIBLE" },
      },
    ];
    const writer = (message: Record<string, unknown>) => {
      const points = toLines("prediction", Buffer.from(JSON.stringify(message)), 0, "fan/messages");
      assert.ok(points.ok, JSON.stringify(points));
      return points.lines.map(fromLine);
    };
    const [withReading, withoutReading, notice] = messages.map((m) => telegrafMetrics(anomaly, m));
    const sorted = (metrics: Metric[]) => [...metrics].sort((a, b) => a.measurement.localeCompare(b.measurement));
    assert.deepEqual(sorted(withReading as Metric[]), sorted(writer(messages[0] ?? {})));
    assert.deepEqual(
      (withReading as Metric[]).find((m) => m.measurement === "telemetry"),
      { measurement: "telemetry", tags: { deviceID: "7" }, fields: reading, time: Date.UTC(2026, 10, 27, 10) },
      "the reading at the reading's time",
    );
    assert.deepEqual(withoutReading, writer(messages[1] ?? {}));
    assert.ok(Array.isArray(withoutReading));
    assert.deepEqual(
      withoutReading.map((m) => m.measurement),
      ["prediction"],
    );
    assert.deepEqual(notice, [], "a sensor notice: no point, and no parse error (Telegraf would log one per notice)");
    assert.deepEqual(writer(messages[2] ?? {}), []);
  });

  it("names a note's writer `author` and who acted `acknowledgedBy`, as the writer does", async () => {
    const config = await toml<{ processors: { rename: RenameProcessor[] } }>("deploy/telegraf/telegraf.conf");
    assert.deepEqual(JSON.parse(JSON.stringify(config.processors.rename)), [
      {
        namepass: ["health"],
        tagpass: { event: [...NOTE_EVENTS] },
        replace: [{ field: "acknowledgedBy", dest: "author" }],
      },
    ]);
  });

  it("marks optional exactly the health fields a transition may lack (json_v2 drops the whole message on a missing path otherwise)", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const health = blocks(config.inputs.mqtt_consumer).find((b) => b.measurement_name === "health");
    const shape = AlarmTransitionSchema.shape as Record<string, { isOptional(): boolean }>;
    for (const field of health?.field ?? []) {
      // A GJSON modifier (`sensors|@tostr`) changes how the value is taken, not whether it is there.
      const [key = "", nested] = (field.path.split("|")[0] ?? "").split(".");
      assert.ok(key in shape, `${field.path} is a field of the transition`);
      // A nested path is missing when its object is null (contributions on an ok); a null value itself is left out without error.
      const mayLack = nested !== undefined || shape[key]?.isOptional() === true;
      assert.equal(field.optional === true, mayLack, `${field.path}: optional = ${mayLack}`);
    }
    for (const tag of health?.tag ?? [])
      assert.equal(shape[tag.path]?.isOptional(), false, `tag ${tag.path} is always there`);
  });

  it("stores a warning's eta interval, basis and drifting sensors (comma-joined) as the writer does", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] }; processors: { regex?: RegexProcessor[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const input = config.inputs.mqtt_consumer.find((i) => i.topics[0] === "${ALARM_TOPIC}");
    assert.ok(input);
    const warning = warningTransition();
    const metrics = telegrafMetrics(input, JSON.parse(JSON.stringify(warning)) as Record<string, unknown>);
    const [stored] = telegrafRegex(config.processors.regex ?? [], metrics as Metric[], new Map());
    const warned = { eta_from: "2026-01-01T02:00:00.000Z", eta_to: "2026-01-01T05:00:00.000Z", eta_coverage: 0.8 };
    const expected = { ...warned, basis: "baseline", sensors: "vibration,temperature" };
    const picked = (fields: Record<string, unknown>) =>
      Object.fromEntries(Object.keys(expected).map((key) => [key, fields[key]]));
    assert.deepEqual(picked(stored?.fields ?? {}), expected);
    const written = toLines("health", Buffer.from(JSON.stringify(warning)), 0, "fan/messages");
    assert.ok(written.ok);
    assert.equal(
      written.lines[0],
      'health,deviceID=3,event=warning,state=warning acknowledged=F,alarmId="3@2026-01-01T00:00:00.000Z",basis="baseline",cause="vibration",eta="2026-01-01T03:00:00.000Z",eta_coverage=0.8,eta_from="2026-01-01T02:00:00.000Z",eta_to="2026-01-01T05:00:00.000Z",probability=0.41,sensors="vibration,temperature",severity="minor" 1767225600000000000',
    );
    // A transition without them (an alarm, an older health function's) has none of these fields, and is no error.
    const { etaInterval: _i, basis: _b, sensors: _s, ...older } = warning;
    const plain = telegrafMetrics(input, JSON.parse(JSON.stringify(older)) as Record<string, unknown>);
    assert.ok(Array.isArray(plain), JSON.stringify(plain));
    assert.deepEqual(
      picked(plain[0]?.fields ?? {}),
      Object.fromEntries(Object.keys(expected).map((k) => [k, undefined])),
    );
  });

  it("stores the model behind a health transition as a field, as the writer does, and a transition without one as before", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const input = config.inputs.mqtt_consumer.find((i) => i.topics[0] === "${ALARM_TOPIC}");
    assert.ok(input);
    const model = "fan-0123456789abcdef";
    const traced = { ...warningTransition(), model };
    const metrics = telegrafMetrics(input, JSON.parse(JSON.stringify(traced)) as Record<string, unknown>);
    assert.ok(Array.isArray(metrics), JSON.stringify(metrics));
    assert.equal(metrics[0]?.fields.model, model);
    assert.equal(metrics[0]?.tags.model, undefined, "a field: a promotion does not split the fan's series");
    const written = toLines("health", Buffer.from(JSON.stringify(traced)), 0, "fan/messages");
    assert.ok(written.ok);
    assert.match(
      written.lines[0] ?? "",
      /^health,deviceID=3,event=warning,state=warning [^ ]*,model="fan-0123456789abcdef",/,
    );
    const untraced = telegrafMetrics(input, JSON.parse(JSON.stringify(warningTransition())) as Record<string, unknown>);
    assert.ok(Array.isArray(untraced));
    assert.equal(untraced[0]?.fields.model, undefined);
  });

  it("tags a dead letter with its error code when it has one, and stores it without one", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const input = config.inputs.mqtt_consumer.find((i) => i.topics[0] === "${DEADLETTER_TOPIC}");
    assert.ok(input);
    const letter = {
      error: "connector: device 9 is unknown",
      topic: "fan/messages/9",
      payload: "{}",
      at: "2026-11-27T10:00:00.000Z",
    };
    const coded = telegrafMetrics(input, { ...letter, code: "FANWATCH_DEVICE_UNKNOWN" });
    assert.deepEqual(
      (coded as Metric[]).map((m) => m.tags),
      [{ topic: "fan/messages/9", code: "FANWATCH_DEVICE_UNKNOWN" }],
    );
    assert.deepEqual(
      (telegrafMetrics(input, letter) as Metric[]).map((m) => m.tags),
      [{ topic: "fan/messages/9" }],
    );
  });

  it("tags a dead letter with its topic normalised, as the writer does, and keeps the full topic as sourceTopic", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] }; processors: { regex?: RegexProcessor[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const input = config.inputs.mqtt_consumer.find((i) => i.topics[0] === "${DEADLETTER_TOPIC}");
    assert.ok(input);
    const k3s = parseYaml(await read("deploy/k3s/base/telegraf.yaml")) as {
      spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } };
    };
    const env = new Map(k3s.spec.template.spec.containers[0]?.env.map((e) => [e.name, e.value]));
    const telemetry = env.get("TELEMETRY_TOPIC") ?? "";
    for (const topic of [`${telemetry}/9`, `${telemetry}/forged\nid`, telemetry, `${telemetry}X/9`, "fan/anomaly"]) {
      const letter = { error: "e", topic, payload: "{}", at: "2026-11-27T10:00:00.000Z" };
      const stored = telegrafRegex(config.processors.regex ?? [], telegrafMetrics(input, letter) as Metric[], env);
      const line = toLines("deadletter", Buffer.from(JSON.stringify(letter)), 0, telemetry);
      const writer = /^deadletter,topic=(\S+) /.exec(line.ok ? (line.lines[0] ?? "") : "")?.[1];
      assert.deepEqual(
        stored.map((m) => [m.tags.topic, m.fields.sourceTopic]),
        [[writer, topic]],
        topic,
      );
    }
    assert.equal(
      telegrafRegex(
        config.processors.regex ?? [],
        telegrafMetrics(input, { error: "e", topic: `${telemetry}/9`, payload: "{}", at: "" }) as Metric[],
        env,
      )[0]?.tags.topic,
      `${telemetry}/+`,
    );
  });

  it("times readings and predictions by the reading, health transitions by their own time, dead letters by their receipt, in nanoseconds", async () => {
    const config = await toml<{ agent: { precision?: string }; inputs: { mqtt_consumer: MqttInput[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const timestamps = Object.fromEntries(
      blocks(config.inputs.mqtt_consumer).map((parser) => [parser.measurement_name, parser.timestamp_path]),
    );
    assert.deepEqual(timestamps, {
      telemetry: "timeStamp",
      prediction: "timeStamp",
      deadletter: undefined,
      health: "at",
    });
    const health = blocks(config.inputs.mqtt_consumer).find((b) => b.measurement_name === "health");
    // Go's RFC 3339 layout: it reads the fractions of a second the health function writes too.
    assert.equal(health?.timestamp_format, "2006-01-02T15:04:05Z07:00");
    // Unset, Telegraf rounds every time to its 10 s interval's order (whole seconds): two dead
    // letters of one source topic within a second would be one point, the later overwriting the earlier.
    assert.equal(config.agent.precision, "1ns");
  });

  it("gets every variable its configuration names from the K3s and faasd deployments", async () => {
    const files = ["deploy/telegraf/telegraf.conf", "deploy/telegraf/outputs/influxdb-v1.conf"];
    const used = new Set(
      (await Promise.all(files.map(read))).flatMap((text) =>
        [...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1] as string),
      ),
    );
    assert.ok(used.has("DEADLETTER_TOPIC"));
    assert.ok(used.has("ALARM_TOPIC"));
    const k3s = parseYaml(await read("deploy/k3s/base/telegraf.yaml")) as {
      spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } };
    };
    const k3sEnv = new Map(k3s.spec.template.spec.containers[0]?.env.map((e) => [e.name, e.value]));
    const faasd = parseYaml(await read("deploy/faasd/docker-compose.fanwatch.yaml")) as {
      services: { telegraf: { environment: string[] } };
    };
    const faasdEnv = new Map(
      faasd.services.telegraf.environment.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    );
    for (const name of used) {
      assert.ok(k3sEnv.has(name), `deploy/k3s/base/telegraf.yaml sets ${name}`);
      assert.ok(faasdEnv.has(name), `deploy/faasd sets ${name} for Telegraf`);
    }
    assert.equal(k3sEnv.get("DEADLETTER_TOPIC"), "fan/deadletter");
    assert.equal(faasdEnv.get("DEADLETTER_TOPIC"), "fan/deadletter");
    assert.equal(k3sEnv.get("ALARM_TOPIC"), "fan/alarm");
    assert.equal(faasdEnv.get("ALARM_TOPIC"), "fan/alarm");
  });

  it("has one output file per InfluxDB API, each with exactly one output", async () => {
    const v1 = await toml<{ outputs: Record<string, Array<Record<string, unknown>>> }>(
      "deploy/telegraf/outputs/influxdb-v1.conf",
    );
    const v2 = await toml<{ outputs: Record<string, Array<Record<string, unknown>>> }>(
      "deploy/telegraf/outputs/influxdb-v2.conf",
    );
    assert.deepEqual(Object.keys(v1.outputs), ["influxdb"]);
    assert.equal(v1.outputs.influxdb?.[0]?.database, "${INFLUX_DB}");
    assert.deepEqual(Object.keys(v2.outputs), ["influxdb_v2"]);
    assert.equal(v2.outputs.influxdb_v2?.[0]?.bucket, "${INFLUX_BUCKET}");
  });
});

describe("Grafana provisioning", () => {
  it("provisions the InfluxDB datasource the dashboard uses, and a provider for the dashboard folder", async () => {
    const datasources = parseYaml(await read("deploy/grafana/provisioning/datasources/influxdb.yaml")) as {
      datasources: Array<{ uid: string; type: string; jsonData: { dbName: string } }>;
    };
    const providers = parseYaml(await read("deploy/grafana/provisioning/dashboards/fanwatch.yaml")) as {
      providers: Array<{ type: string; options: { path: string } }>;
    };
    const dashboard = JSON.parse(await read("deploy/grafana/dashboards/fanwatch.json")) as {
      panels: Array<{ datasource: { uid: string } }>;
    };
    assert.equal(datasources.datasources[0]?.type, "influxdb");
    assert.equal(datasources.datasources[0]?.jsonData.dbName, "$INFLUX_DB");
    assert.equal(providers.providers[0]?.type, "file");
    const uid = datasources.datasources[0]?.uid;
    assert.ok(
      dashboard.panels.every((p) => p.datasource.uid === uid),
      "every panel uses the provisioned datasource",
    );
  });
});

/** A message's points as one text, the lines joined (a health transition or a dead letter has one). */
function toLine(source: Source, payload: Buffer, arrivedAt: number) {
  const points = toLines(source, payload, arrivedAt, "fan/messages");
  return points.ok ? { ok: true, line: points.lines.join("\n") } : points;
}

describe("the writer's points and InfluxDB APIs", () => {
  it("turns a prediction into its point and its reading's point, both at the reading's time", () => {
    const reading = { rotation: 612.3, temperature: 40, vibration: 151.7, sound: 48.9 };
    const scored = { deviceID: "fan 1", timeStamp: "2020-10-02 10:00:00", fault: 0, probability: 0.02, reading };
    assert.deepEqual(toLines("prediction", Buffer.from(JSON.stringify(scored)), 0, "fan/messages"), {
      ok: true,
      lines: [
        "prediction,deviceID=fan\\ 1 fault=0i,probability=0.02 1601632800000000000",
        "telemetry,deviceID=fan\\ 1 rotation=612.3,sound=48.9,temperature=40,vibration=151.7 1601632800000000000",
      ],
    });
    // Without the reading it scored (an older predict): the prediction alone, at its arrival without a timeStamp.
    const prediction = toLine(
      "prediction",
      Buffer.from(JSON.stringify({ deviceID: "1", fault: 1, probability: 0.97, model: "m1" })),
      1234,
    );
    assert.deepEqual(prediction, {
      ok: true,
      line: "prediction,deviceID=1,model=m1 fault=1i,probability=0.97 1234000000",
    });
    assert.deepEqual(toLine("prediction", Buffer.from('{"__proto__":{}}'), 0).ok, false);
    // A reading that is not one is no point: the whole prediction is refused (dead-lettered).
    const bad = toLines(
      "prediction",
      Buffer.from(JSON.stringify({ ...scored, reading: { ...reading, sound: "loud" } })),
      0,
      "fan/messages",
    );
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? "" : bad.error, /^prediction reading\.sound: /);
  });

  it("stores nothing of a sensor notice on the anomaly topic, and does not refuse it", () => {
    const notice = {
      deviceID: "7",
      timeStamp: "2026-11-27 10:00:00",
      implausible: { sensor: "rotation", value: 25000, code: "FANWATCH_READING_IMPLAUSIBLE" },
    };
    assert.deepEqual(toLines("prediction", Buffer.from(JSON.stringify(notice)), 0, "fan/messages"), {
      ok: true,
      lines: [],
      skipped: "sensor notice",
    });
  });

  it("tags a dead letter with its FANWATCH_ error code, and leaves out a code that is not one", () => {
    const letter = {
      error: "connector: device 9 is unknown",
      topic: "fan/messages/9",
      payload: "{}",
      at: "2026-11-27T10:00:00.000Z",
    };
    const coded = toLine("deadletter", Buffer.from(JSON.stringify({ ...letter, code: "FANWATCH_DEVICE_UNKNOWN" })), 1);
    assert.match(
      coded.ok ? coded.line : "",
      /^deadletter,code=FANWATCH_DEVICE_UNKNOWN,topic=fan\/messages\/\+ error="connector: device 9 is unknown",payload="\{\}",sourceTopic="fan\/messages\/9" 1000\d{3}$/,
    );
    for (const code of ["anything at all", 42, "FANWATCH_", `FANWATCH_${"X".repeat(65)}`]) {
      const point = toLine("deadletter", Buffer.from(JSON.stringify({ ...letter, code })), 1);
      assert.match(
        point.ok ? point.line : "",
        /^deadletter,topic=fan\/messages\/\+ error="connector: device 9 is unknown"/,
        String(code),
      );
    }
  });

  it("tags a dead letter with its topic normalised: every per-fan topic is one tag value, the full topic a field", () => {
    const tagsAndTopic = (topic: string) => {
      const line = toLine("deadletter", Buffer.from(JSON.stringify({ error: "e", topic, payload: "{}", at: "" })), 1);
      const match = /^deadletter,topic=(\S+) .*,sourceTopic="(.*)" \d+$/.exec(line.ok ? line.line : "");
      return [match?.[1], match?.[2]];
    };
    assert.deepEqual(tagsAndTopic("fan/messages/9"), ["fan/messages/+", "fan/messages/9"]);
    assert.deepEqual(tagsAndTopic("fan/messages/forged/x"), ["fan/messages/+", "fan/messages/forged/x"]);
    assert.deepEqual(tagsAndTopic("fan/messages"), ["fan/messages", "fan/messages"]);
    assert.deepEqual(tagsAndTopic("fan/messagesX/9"), ["fan/messagesX/9", "fan/messagesX/9"]);
    assert.deepEqual(tagsAndTopic("fan/anomaly"), ["fan/anomaly", "fan/anomaly"]);
  });

  it("stores a health event it does not know yet (a newer health function's) like the others", () => {
    const transition = {
      deviceID: "3",
      alarmId: null,
      state: "ok",
      severity: "none",
      cause: null,
      contributions: null,
      probability: 0.02,
      eta: null,
      since: "2026-11-27T10:00:00.000Z",
      acknowledged: false,
      event: "recalibrated",
      at: "2026-11-27T10:05:00Z",
      id: "3-9",
      sensor: "rotation",
    };
    assert.deepEqual(toLine("health", Buffer.from(JSON.stringify(transition)), 0), {
      ok: true,
      line: 'health,deviceID=3,event=recalibrated,state=ok acknowledged=F,probability=0.02,sensor="rotation",severity="none" 1795773900000000000',
    });
    // Still a tag: bounded, never free text.
    for (const event of ["Sensor Cleared", "x".repeat(33), ""])
      assert.match(
        (toLine("health", Buffer.from(JSON.stringify({ ...transition, event })), 0) as { error: string }).error,
        /^health transition event: must be an event name/,
      );
  });

  it("turns a health transition into a point at its own time, leaving out what is null", () => {
    const transition = {
      deviceID: "3",
      alarmId: "3-1",
      state: "alarm",
      severity: "major",
      cause: "vibration",
      contributions: { rotation: 0.01, temperature: 0.02, vibration: 0.6, sound: 0.03 },
      probability: 0.93,
      eta: null,
      since: "2026-11-27T10:00:00.000Z",
      acknowledged: true,
      event: "acknowledged",
      at: "2026-11-27T10:05:00.5+01:00",
      id: "3-1-4",
      by: "ann",
      note: "on it",
    };
    assert.deepEqual(toLine("health", Buffer.from(JSON.stringify(transition)), 0), {
      ok: true,
      line: 'health,deviceID=3,event=acknowledged,state=alarm acknowledged=T,acknowledgedBy="ann",alarmId="3-1",cause="vibration",contribution_rotation=0.01,contribution_sound=0.03,contribution_temperature=0.02,contribution_vibration=0.6,note="on it",probability=0.93,severity="major" 1795770300500000000',
    });
    const ok = {
      ...transition,
      state: "ok",
      event: "ok",
      alarmId: null,
      cause: null,
      contributions: null,
      acknowledged: false,
      at: "2026-11-27T10:06:00Z",
      by: undefined,
      note: undefined,
    };
    assert.deepEqual(toLine("health", Buffer.from(JSON.stringify(ok)), 0), {
      ok: true,
      line: 'health,deviceID=3,event=ok,state=ok acknowledged=F,probability=0.93,severity="major" 1795773960000000000',
    });
    assert.match(
      (
        toLine("health", Buffer.from(JSON.stringify({ ...transition, at: "2026-11-27 10:05:00" })), 0) as {
          error: string;
        }
      ).error,
      /at: .* is not an RFC 3339 time/,
    );
    assert.match(
      (
        toLine("health", Buffer.from(JSON.stringify({ ...transition, at: "1969-12-31T23:59:59Z" })), 0) as {
          error: string;
        }
      ).error,
      /outside 1970-01-01 to 2262-04-11/,
    );
    assert.match(
      (toLine("health", Buffer.from(JSON.stringify({ ...transition, event: "Panic!" })), 0) as { error: string }).error,
      /health transition event/,
    );
  });

  it("stores an engineer's notes on an episode (assignee, finding) as string fields of the health point", () => {
    const base = {
      deviceID: "3",
      alarmId: "3@2026-11-27T09:00:00.000Z",
      state: "ok",
      severity: "none",
      cause: null,
      contributions: null,
      probability: 0.02,
      eta: null,
      since: "2026-11-27T09:30:00.000Z",
      acknowledged: false,
      at: "2026-11-27T10:05:00Z",
      by: "ann",
    };
    assert.deepEqual(
      toLine("health", Buffer.from(JSON.stringify({ ...base, event: "assigned", id: "3:1", to: "bo" })), 0),
      {
        ok: true,
        line: 'health,deviceID=3,event=assigned,state=ok acknowledged=F,alarmId="3@2026-11-27T09:00:00.000Z",assignedTo="bo",author="ann",probability=0.02,severity="none" 1795773900000000000',
      },
    );
    const finding = {
      ...base,
      event: "finding",
      id: "3:2",
      result: "confirmed",
      part: "bearing",
      sensor: "vibration",
      note: "worn",
    };
    assert.deepEqual(toLine("health", Buffer.from(JSON.stringify(finding)), 0), {
      ok: true,
      line: 'health,deviceID=3,event=finding,state=ok acknowledged=F,alarmId="3@2026-11-27T09:00:00.000Z",author="ann",note="worn",part="bearing",probability=0.02,result="confirmed",sensor="vibration",severity="none" 1795773900000000000',
    });
  });

  it("chooses the API from the configuration", () => {
    assert.equal(readWriterConfig({ INFLUX_URL: "http://i:8086/" }).influx.api, "v1");
    assert.deepEqual(readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_TOKEN: "t", INFLUX_ORG: "acme" }).influx, {
      api: "v2",
      url: "http://i:8086",
      bucket: "fan",
      org: "acme",
      token: "t",
    });
    assert.throws(
      () => readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_API: "2" }),
      /INFLUX_TOKEN .* and INFLUX_ORG/,
    );
    assert.throws(() => readWriterConfig({}), /INFLUX_URL is not set/);
  });

  it("writes to /api/v2/write with the token (against a stand-in: Debian has no InfluxDB 2.x server)", async () => {
    const requests: Array<{ url: string; headers: IncomingHttpHeaders; body: string }> = [];
    let status = 204;
    const standIn = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        requests.push({ url: req.url ?? "", headers: req.headers, body });
        res
          .writeHead(status, { "content-type": "application/json" })
          .end(status === 204 ? undefined : JSON.stringify({ code: "unavailable", message: "down" }));
      });
    }).listen(0, "127.0.0.1");
    await once(standIn, "listening");
    try {
      const writer = createLineWriter({
        api: "v2",
        url: `http://127.0.0.1:${(standIn.address() as { port: number }).port}`,
        bucket: "fan",
        org: "acme",
        token: "s3cret",
      });
      await writer.write(["telemetry,deviceID=1 rotation=1 1", "telemetry,deviceID=2 rotation=2 2"]);
      assert.equal(requests[0]?.url, "/api/v2/write?org=acme&bucket=fan&precision=ns");
      assert.equal(requests[0]?.headers.authorization, "Token s3cret");
      assert.equal(requests[0]?.body, "telemetry,deviceID=1 rotation=1 1\ntelemetry,deviceID=2 rotation=2 2");
      status = 503;
      await assert.rejects(writer.write(["telemetry,deviceID=1 rotation=1 3"]), /503|down|unavailable/i);
      assert.equal(requests.length, 2, "the client does not retry on its own: the writer does");
    } finally {
      standIn.close();
    }
  });
});
