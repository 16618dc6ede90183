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
import { SCHEMA, toLine } from "../../connectors/influxdb/points.js";
import { AlarmTransitionSchema, NOTE_EVENTS } from "../../lib/domain/health.js";
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

describe("Telegraf configuration (Telegraf cannot run here: its files are checked against the schema)", () => {
  it("consumes readings, predictions, dead letters and health transitions at QoS 1 with persistent sessions and fixed client ids", async () => {
    const config = await toml<{ agent: { omit_hostname: boolean }; inputs: { mqtt_consumer: MqttInput[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const inputs = config.inputs.mqtt_consumer;
    assert.deepEqual(
      inputs.map((i) => i.topics),
      [["${TELEMETRY_TOPIC}"], ["${ANOMALY_TOPIC}"], ["${DEADLETTER_TOPIC}"], ["${ALARM_TOPIC}"]],
    );
    for (const input of inputs) {
      assert.equal(input.qos, 1);
      assert.equal(input.persistent_session, true);
      assert.match(input.client_id, /^fanwatch-telegraf-/);
      assert.equal(input.topic_tag, "", "no topic tag on the points");
      assert.equal(input.data_format, "json_v2");
    }
    assert.equal(new Set(inputs.map((i) => i.client_id)).size, 4, "one session per input");
    assert.equal(config.agent.omit_hostname, true, "no host tag on the points");
  });

  it("declares exactly the documented schema: measurements, tags and field types", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] }; processors?: { rename?: RenameProcessor[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const telegrafTypes: Record<string, string> = { float: "float", int: "integer", string: "string", bool: "boolean" };
    const declared = Object.fromEntries(
      config.inputs.mqtt_consumer.map((input) => {
        const [parser] = input.json_v2;
        assert.ok(parser, `${input.topics.join(", ")}: a json_v2 parser`);
        return [
          parser.measurement_name,
          {
            tags: parser.tag.map((t) => t.path),
            fields: Object.fromEntries(parser.field.map((f) => [f.rename ?? f.path, telegrafTypes[f.type] ?? f.type])),
          },
        ];
      }),
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
    const health = config.inputs.mqtt_consumer.find((i) => i.json_v2[0]?.measurement_name === "health")?.json_v2[0];
    const shape = AlarmTransitionSchema.shape as Record<string, { isOptional(): boolean }>;
    for (const field of health?.field ?? []) {
      const [key = "", nested] = field.path.split(".");
      assert.ok(key in shape, `${field.path} is a field of the transition`);
      // A nested path is missing when its object is null (contributions on an ok); a null value itself is left out without error.
      const mayLack = nested !== undefined || shape[key]?.isOptional() === true;
      assert.equal(field.optional === true, mayLack, `${field.path}: optional = ${mayLack}`);
    }
    for (const tag of health?.tag ?? [])
      assert.equal(shape[tag.path]?.isOptional(), false, `tag ${tag.path} is always there`);
  });

  it("times readings and predictions by the reading, health transitions by their own time, dead letters by their receipt, in nanoseconds", async () => {
    const config = await toml<{ agent: { precision?: string }; inputs: { mqtt_consumer: MqttInput[] } }>(
      "deploy/telegraf/telegraf.conf",
    );
    const timestamps = Object.fromEntries(
      config.inputs.mqtt_consumer.map((input) => {
        const [parser] = input.json_v2;
        assert.ok(parser, `${input.topics.join(", ")}: a json_v2 parser`);
        return [parser.measurement_name, parser.timestamp_path];
      }),
    );
    assert.deepEqual(timestamps, {
      telemetry: "timeStamp",
      prediction: "timeStamp",
      deadletter: undefined,
      health: "at",
    });
    const health = config.inputs.mqtt_consumer.find((i) => i.json_v2[0]?.measurement_name === "health")?.json_v2[0];
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

describe("the writer's points and InfluxDB APIs", () => {
  it("turns a reading and a prediction into points of the schema, at the reading's time", () => {
    const reading = toLine(
      "telemetry",
      Buffer.from(
        JSON.stringify({
          deviceID: "fan 1",
          timeStamp: "2020-10-02 10:00:00",
          rotation: 612.3,
          temperature: 40,
          vibration: 151.7,
          sound: 48.9,
        }),
      ),
      0,
    );
    assert.deepEqual(reading, {
      ok: true,
      line: "telemetry,deviceID=fan\\ 1 rotation=612.3,sound=48.9,temperature=40,vibration=151.7 1601632800000000000",
    });
    const prediction = toLine(
      "prediction",
      Buffer.from(JSON.stringify({ deviceID: "1", fault: 1, probability: 0.97, model: "m1" })),
      1234,
    );
    assert.deepEqual(prediction, {
      ok: true,
      line: "prediction,deviceID=1,model=m1 fault=1i,probability=0.97 1234000000",
    });
    assert.deepEqual(toLine("telemetry", Buffer.from('{"__proto__":{}}'), 0).ok, false);
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
      (toLine("health", Buffer.from(JSON.stringify({ ...transition, event: "panic" })), 0) as { error: string }).error,
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
