import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { bundleFromDirectory } from "../../lib/models/bundle.js";
import { ACTIVE_BUCKET, comparisonKey } from "../../lib/models/names.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import { ShadowComparisonSchema, type ShadowComparison } from "../../lib/models/schemas.js";
import { eventuallyValue } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { MODEL_DIR } from "../support/paths.js";
import { freePort, postJson, spawnCli, terminate, waitUntilReady } from "../support/process.js";

/**
 * A stand-in for score with a shadow loaded: it answers the documented batch answer
 * (docs/score.md, docs/models.md "Shadow"): the active model calls a reading faulty when its
 * vibration is above 200, the shadow only when the fan is also cooler than 60 °C (a model that
 * learnt that this site's hot fans are healthy). Its timing says the shadow costs half the active.
 */
async function scoreStandIn(shadowModel: () => string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const request = JSON.parse(body) as { instances: number[][]; explain?: boolean };
      const active = request.instances.map(([, , vibration]) => ((vibration ?? 0) > 200 ? 1 : 0));
      const answer = request.explain
        ? {
            model: "fan-active",
            predictions: active.map((fault) => ({
              fault,
              probability: fault,
              cause: "vibration",
              contributions: { rotation: 0, temperature: 0, vibration: 0.9, sound: 0 },
              referenceProbability: 0.1,
            })),
          }
        : {
            model: "fan-active",
            predictions: active.map((fault) => ({ fault, probability: fault })),
            shadow: {
              model: shadowModel(),
              predictions: request.instances.map(([, temperature, vibration]) => {
                const fault = (vibration ?? 0) > 200 && (temperature ?? 0) < 60 ? 1 : 0;
                return { fault, probability: fault };
              }),
            },
            timing: { activeMs: 2, shadowMs: 1 },
          };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** Twelve readings a second apart of each of three fans: `faulty` (both models alarm), `hot` (only the active), `fine`. */
function readings(start: number): object[] {
  const out: object[] = [];
  for (let i = 0; i < 12; i++) {
    const timeStamp = new Date(start + i * 1_000).toISOString();
    out.push({ deviceID: "faulty", timeStamp, rotation: 600, temperature: 40, vibration: 250, sound: 50 });
    out.push({ deviceID: "hot", timeStamp, rotation: 600, temperature: 70, vibration: 250, sound: 50 });
    out.push({ deviceID: "fine", timeStamp, rotation: 600, temperature: 40, vibration: 150, sound: 50 });
  }
  return out;
}

async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}_/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("predict compares score's shadow with the active model (real nats-server and Mosquitto, a score stand-in)", () => {
  let nats: TestNats;
  let broker: Broker;
  let nc: NatsConnection;
  let kv: KV;
  let shadow = "fan-shadow";
  let score: { server: Server; url: string };

  before(async () => {
    nats = await startNats();
    broker = await startMosquitto();
    score = await scoreStandIn(() => shadow);
    nc = await connect({ servers: nats.url });
    kv = await new Kvm(jetstream(nc)).create(ACTIVE_BUCKET, { history: 64 });
  });
  after(async () => {
    await nc?.close();
    score?.server.close();
    await broker?.stop();
    await nats?.stop();
  });

  async function startPredict(replica: string, everyMs: number, natsUrl = nats.url) {
    const port = await freePort();
    const child = spawnCli(["function", "predict", "--port", String(port)], {
      MQTT_URL: broker.url,
      SCORE_URL: score.url,
      NATS_URL: natsUrl,
      SITE: "plant-a",
      PREDICT_REPLICA: replica,
      PREDICT_COMPARE_EVERY_MS: String(everyMs),
    });
    const url = `http://127.0.0.1:${port}/`;
    await waitUntilReady(url, child);
    return { child, url };
  }

  async function stored(shadowId: string, replica: string): Promise<ShadowComparison | undefined> {
    const entry = await kv.get(comparisonKey("plant-a", shadowId, replica));
    if (entry === null || entry.operation !== "PUT") return undefined;
    return ShadowComparisonSchema.parse(entry.json());
  }

  it("publishes only the active's predictions, counts agreement, runs the health rules on both, and writes the totals on drain", async () => {
    const predict = await startPredict("predict-a", 600_000); // no periodic write in this test: only the drain's
    try {
      const answer = await postJson(predict.url, readings(Date.parse("2020-10-02T10:00:00Z")));
      assert.equal(answer.status, 200);
      const results = (answer.body as { results: Array<{ deviceID: string; fault: number; model: string }> }).results;
      assert.ok(results.every((r) => r.model === "fan-active"));
      assert.equal(results.filter((r) => r.deviceID === "hot" && r.fault === 1).length, 12);

      assert.equal(await metric(predict.url, "predict_shadow_readings_total", 'shadow="fan-shadow"'), 36);
      assert.equal(await metric(predict.url, "predict_shadow_disagreements_total", 'shadow="fan-shadow"'), 12);
      const seen = (await (await fetch(predict.url)).json()) as { shadow: ShadowComparison };
      assert.equal(seen.shadow.readings, 36);
      assert.equal(await stored("fan-shadow", "predict-a"), undefined);
    } finally {
      await terminate(predict.child);
    }
    const comparison = await stored("fan-shadow", "predict-a");
    assert.ok(comparison, "the drain wrote the comparison");
    assert.equal(comparison.site, "plant-a");
    assert.equal(comparison.active, "fan-active");
    assert.equal(comparison.readings, 36);
    assert.equal(comparison.agreed, 24);
    assert.deepEqual(comparison.alarms, { active: 2, shadow: 1 });
    assert.deepEqual(comparison.fans, { opened: [], closed: ["hot"] });
    assert.deepEqual(comparison.cost, { cpuRatio: 1.5, latencyRatio: 1.5 });
  });

  it("writes the comparison as it goes, and starts a new one when the shadow changes", async () => {
    const predict = await startPredict("predict-b", 100);
    try {
      shadow = "fan-shadow-1";
      await postJson(predict.url, readings(Date.parse("2020-10-02T11:00:00Z")));
      const first = await eventuallyValue(
        "predict-b's comparison of fan-shadow-1 in NATS",
        () => stored("fan-shadow-1", "predict-b"),
        (c) => c?.readings === 36,
      );
      assert.deepEqual(first?.fans.closed, ["hot"]);

      shadow = "fan-shadow-2";
      await postJson(predict.url, readings(Date.parse("2020-10-02T12:00:00Z")).slice(0, 3));
      const second = await eventuallyValue(
        "predict-b's comparison of fan-shadow-2 in NATS",
        () => stored("fan-shadow-2", "predict-b"),
        (c) => c !== undefined,
      );
      assert.equal(second?.readings, 3);
      assert.deepEqual(second?.alarms, { active: 0, shadow: 0 });
      assert.equal((await stored("fan-shadow-1", "predict-b"))?.readings, 36, "the ended comparison keeps its totals");
    } finally {
      await terminate(predict.child);
    }
  });

  it("scores and compares as ever while NATS is unreachable, and drains without waiting for it", async () => {
    const port = await freePort(); // nothing listens here yet
    const predict = await startPredict("predict-c", 100, `nats://127.0.0.1:${port}`);
    try {
      shadow = "fan-shadow-3";
      const answer = await postJson(predict.url, readings(Date.parse("2020-10-02T13:00:00Z")));
      assert.equal(answer.status, 200);
      assert.equal(await metric(predict.url, "predict_shadow_readings_total", 'shadow="fan-shadow-3"'), 36);
      const seen = (await (await fetch(predict.url)).json()) as { shadow: ShadowComparison };
      assert.deepEqual(seen.shadow.fans.closed, ["hot"]);
    } finally {
      await terminate(predict.child);
    }
    assert.equal(await stored("fan-shadow-3", "predict-c"), undefined);
  });

  it("compares readings only once they are published: an invocation answered 503 and retried counts them once", async () => {
    const predict = await startPredict("predict-d", 600_000);
    try {
      shadow = "fan-shadow-4";
      const batch = readings(Date.parse("2020-10-02T14:00:00Z"));
      const pid = broker.pid as number;
      process.kill(pid, "SIGSTOP"); // connected, but acknowledges nothing
      let failed;
      try {
        failed = await postJson(predict.url, batch, { "x-timeout-ms": "1000" });
      } finally {
        process.kill(pid, "SIGCONT");
      }
      assert.equal(failed.status, 503, JSON.stringify(failed.body));
      // The connector's retry of the same readings.
      assert.equal((await postJson(predict.url, batch)).status, 200);
      const seen = (await (await fetch(predict.url)).json()) as { shadow: ShadowComparison };
      assert.equal(seen.shadow.shadow, "fan-shadow-4");
      assert.equal(seen.shadow.readings, 36);
    } finally {
      await terminate(predict.child);
    }
  });
});

describe("predict against a real score replica serving a shadow from the registry (real nats-server and Mosquitto)", () => {
  let nats: TestNats;
  let broker: Broker;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats();
    broker = await startMosquitto();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await nc?.close();
    await broker?.stop();
    await nats?.stop();
  });

  async function start(name: string, env: NodeJS.ProcessEnv) {
    const port = await freePort();
    const child = spawnCli(["function", name, "--port", String(port)], env);
    const url = `http://127.0.0.1:${port}/`;
    await waitUntilReady(url, child);
    return { child, url };
  }

  it("compares score's shadow answer: the same weights under another id agree on every reading, and score's timing gives the cost", async () => {
    const registry = await ModelRegistry.open(jetstream(nc));
    const shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
    const active = (await registry.push(shipped, "test")).id;
    const candidate = (await registry.push({ ...shipped, parent: active }, "test")).id;
    const at = new Date().toISOString();
    const pointer = {
      active,
      previous: null,
      shadow: candidate,
      reason: "shadow",
      by: "test",
      at,
      forced: false,
      note: null,
    };
    await registry.setPointer("plant-b", { ...pointer, reason: "shadow" }, 0);
    const score = await start("score", { NATS_URL: nats.url, SITE: "plant-b", SCORE_REPLICA: "score-1" });
    const predict = await start("predict", {
      MQTT_URL: broker.url,
      SCORE_URL: score.url,
      NATS_URL: nats.url,
      SITE: "plant-b",
      PREDICT_REPLICA: "predict-1",
    });
    try {
      await eventuallyValue(
        "score serving the shadow",
        async () => ((await (await fetch(score.url)).json()) as { shadow: { id: string } | null }).shadow?.id,
        (id) => id === candidate,
      );
      const answer = await postJson(predict.url, readings(Date.parse("2020-10-02T10:00:00Z")));
      assert.equal(answer.status, 200);
      const results = (answer.body as { results: Array<{ model: string }> }).results;
      assert.ok(
        results.every((r) => r.model === active),
        "only the active model's predictions are published",
      );
    } finally {
      await terminate(predict.child);
      await terminate(score.child);
    }
    const [comparison] = await registry.comparisons("plant-b", candidate);
    assert.ok(comparison, "predict wrote its comparison on drain");
    assert.equal(comparison.active, active);
    assert.equal(comparison.readings, 36);
    assert.equal(comparison.agreed, 36);
    assert.deepEqual(comparison.fans, { opened: [], closed: [] });
    assert.equal(comparison.alarms.active, comparison.alarms.shadow);
    assert.notEqual(comparison.cost.cpuRatio, null, "score's timing of both models reached the comparison");
  });
});
