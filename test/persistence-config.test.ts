import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { readWriterConfig } from "../connectors/influxdb/config.js";
import { createLineWriter } from "../connectors/influxdb/influx-client.js";
import { SCHEMA, toLine } from "../connectors/influxdb/points.js";
import { REPO_ROOT } from "./support/paths.js";

const read = (path: string) => readFile(join(REPO_ROOT, path), "utf8");
/** A TOML file as the shape the test expects; the assertions check it. */
const toml = async <T>(path: string) => parseToml(await read(path)) as unknown as T;

interface JsonV2 {
  measurement_name: string;
  timestamp_path?: string;
  timestamp_format: string;
  tag: Array<{ path: string; optional?: boolean }>;
  field: Array<{ path: string; type: string }>;
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
  it("consumes readings, predictions and dead letters at QoS 1 with persistent sessions and fixed client ids", async () => {
    const config = await toml<{ agent: { omit_hostname: boolean }; inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const inputs = config.inputs.mqtt_consumer;
    assert.deepEqual(inputs.map((i) => i.topics), [["${TELEMETRY_TOPIC}"], ["${ANOMALY_TOPIC}"], ["${DEADLETTER_TOPIC}"]]);
    for (const input of inputs) {
      assert.equal(input.qos, 1);
      assert.equal(input.persistent_session, true);
      assert.match(input.client_id, /^fanwatch-telegraf-/);
      assert.equal(input.topic_tag, "", "no topic tag on the points");
      assert.equal(input.data_format, "json_v2");
    }
    assert.equal(new Set(inputs.map((i) => i.client_id)).size, 3, "one session per input");
    assert.equal(config.agent.omit_hostname, true, "no host tag on the points");
  });

  it("declares exactly the documented schema: measurements, tags and field types", async () => {
    const config = await toml<{ inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const telegrafTypes: Record<string, string> = { float: "float", int: "integer", string: "string" };
    const declared = Object.fromEntries(
      config.inputs.mqtt_consumer.map((input) => {
        const [parser] = input.json_v2;
        return [parser?.measurement_name, { tags: parser?.tag.map((t) => t.path), fields: Object.fromEntries(parser?.field.map((f) => [f.path, telegrafTypes[f.type] ?? f.type]) ?? []) }];
      }),
    );
    assert.deepEqual(declared, JSON.parse(JSON.stringify(SCHEMA)));
  });

  it("times readings and predictions by the reading, dead letters by their receipt, in nanoseconds", async () => {
    const config = await toml<{ agent: { precision?: string }; inputs: { mqtt_consumer: MqttInput[] } }>("deploy/telegraf/telegraf.conf");
    const timestamps = Object.fromEntries(config.inputs.mqtt_consumer.map((input) => [input.json_v2[0]?.measurement_name, input.json_v2[0]?.timestamp_path]));
    assert.deepEqual(timestamps, { telemetry: "timeStamp", prediction: "timeStamp", deadletter: undefined });
    // Unset, Telegraf rounds every time to its 10 s interval's order (whole seconds): two dead
    // letters of one source topic within a second would be one point, the later overwriting the earlier.
    assert.equal(config.agent.precision, "1ns");
  });

  it("gets every variable its configuration names from the K3s and faasd deployments", async () => {
    const files = ["deploy/telegraf/telegraf.conf", "deploy/telegraf/outputs/influxdb-v1.conf"];
    const used = new Set((await Promise.all(files.map(read))).flatMap((text) => [...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1] as string)));
    assert.ok(used.has("DEADLETTER_TOPIC"));
    const k3s = parseYaml(await read("deploy/k3s/telegraf.yaml")) as { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } } };
    const k3sEnv = new Map(k3s.spec.template.spec.containers[0]?.env.map((e) => [e.name, e.value]));
    const faasd = parseYaml(await read("deploy/faasd/docker-compose.fanwatch.yaml")) as { services: { telegraf: { environment: string[] } } };
    const faasdEnv = new Map(faasd.services.telegraf.environment.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    for (const name of used) {
      assert.ok(k3sEnv.has(name), `deploy/k3s/telegraf.yaml sets ${name}`);
      assert.ok(faasdEnv.has(name), `deploy/faasd sets ${name} for Telegraf`);
    }
    assert.equal(k3sEnv.get("DEADLETTER_TOPIC"), "fan/deadletter");
    assert.equal(faasdEnv.get("DEADLETTER_TOPIC"), "fan/deadletter");
  });

  it("has one output file per InfluxDB API, each with exactly one output", async () => {
    const v1 = await toml<{ outputs: Record<string, Array<Record<string, unknown>>> }>("deploy/telegraf/outputs/influxdb-v1.conf");
    const v2 = await toml<{ outputs: Record<string, Array<Record<string, unknown>>> }>("deploy/telegraf/outputs/influxdb-v2.conf");
    assert.deepEqual(Object.keys(v1.outputs), ["influxdb"]);
    assert.equal(v1.outputs.influxdb?.[0]?.database, "${INFLUX_DB}");
    assert.deepEqual(Object.keys(v2.outputs), ["influxdb_v2"]);
    assert.equal(v2.outputs.influxdb_v2?.[0]?.bucket, "${INFLUX_BUCKET}");
  });
});

describe("Grafana provisioning", () => {
  it("provisions the InfluxDB datasource the dashboard uses, and a provider for the dashboard folder", async () => {
    const datasources = parseYaml(await read("deploy/grafana/provisioning/datasources/influxdb.yaml")) as { datasources: Array<{ uid: string; type: string; jsonData: { dbName: string } }> };
    const providers = parseYaml(await read("deploy/grafana/provisioning/dashboards/fanwatch.yaml")) as { providers: Array<{ type: string; options: { path: string } }> };
    const dashboard = JSON.parse(await read("deploy/grafana/dashboards/fanwatch.json")) as { panels: Array<{ datasource: { uid: string } }> };
    assert.equal(datasources.datasources[0]?.type, "influxdb");
    assert.equal(datasources.datasources[0]?.jsonData.dbName, "$INFLUX_DB");
    assert.equal(providers.providers[0]?.type, "file");
    const uid = datasources.datasources[0]?.uid;
    assert.ok(dashboard.panels.every((p) => p.datasource.uid === uid), "every panel uses the provisioned datasource");
  });
});

describe("the writer's points and InfluxDB APIs", () => {
  it("turns a reading and a prediction into points of the schema, at the reading's time", () => {
    const reading = toLine("telemetry", Buffer.from(JSON.stringify({ deviceID: "fan 1", timeStamp: "2020-10-02 10:00:00", rotation: 612.3, temperature: 40, vibration: 151.7, sound: 48.9 })), 0);
    assert.deepEqual(reading, { ok: true, line: "telemetry,deviceID=fan\\ 1 rotation=612.3,sound=48.9,temperature=40,vibration=151.7 1601632800000000000" });
    const prediction = toLine("prediction", Buffer.from(JSON.stringify({ deviceID: "1", fault: 1, probability: 0.97, model: "m1" })), 1234);
    assert.deepEqual(prediction, { ok: true, line: "prediction,deviceID=1,model=m1 fault=1i,probability=0.97 1234000000" });
    assert.deepEqual(toLine("telemetry", Buffer.from('{"__proto__":{}}'), 0).ok, false);
  });

  it("chooses the API from the configuration", () => {
    assert.equal(readWriterConfig({ INFLUX_URL: "http://i:8086/" }).influx.api, "v1");
    assert.deepEqual(readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_TOKEN: "t", INFLUX_ORG: "acme" }).influx, { api: "v2", url: "http://i:8086", bucket: "fan", org: "acme", token: "t" });
    assert.throws(() => readWriterConfig({ INFLUX_URL: "http://i:8086", INFLUX_API: "2" }), /INFLUX_TOKEN .* and INFLUX_ORG/);
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
        res.writeHead(status, { "content-type": "application/json" }).end(status === 204 ? undefined : JSON.stringify({ code: "unavailable", message: "down" }));
      });
    }).listen(0, "127.0.0.1");
    await once(standIn, "listening");
    try {
      const writer = createLineWriter({ api: "v2", url: `http://127.0.0.1:${(standIn.address() as { port: number }).port}`, bucket: "fan", org: "acme", token: "s3cret" });
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
