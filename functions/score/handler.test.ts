// Runs in the repository (npm test) and inside the image build (templates/node22-ts/build.mjs).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { HandlerContext } from "../../templates/node22-ts/context.js";
import { startFunctionServer, type FunctionServer } from "../../templates/node22-ts/server.js";
import type { FunctionEvent } from "../../templates/node22-ts/types.js";
import { close, errorAnswer, handler, init, metrics } from "./handler.js";
import type { InputError } from "../../lib/errors.js";

const SENSORS = ["rotation", "temperature", "vibration", "sound"] as const;
type Sensor = (typeof SENSORS)[number];
interface Explained {
  fault: number;
  probability: number;
  contributions: Record<Sensor, number>;
  cause: Sensor;
  referenceProbability: number;
}

/** What a user checks of an explanation: one number per sensor, adding up to probability − referenceProbability (to six-decimal rounding). */
function assertExplained(p: Explained): void {
  assert.deepEqual(Object.keys(p.contributions), [...SENSORS]);
  const sum = SENSORS.reduce((s, f) => s + p.contributions[f], 0);
  assert.ok(
    Math.abs(sum - (p.probability - p.referenceProbability)) <= 3e-6,
    `contributions sum to ${sum}, probability − reference is ${p.probability - p.referenceProbability}`,
  );
  assert.ok(
    SENSORS.every((f) => p.contributions[p.cause] >= p.contributions[f] - 1e-6),
    `cause ${p.cause} has the largest contribution`,
  );
}

function event(method: string, body?: unknown): FunctionEvent {
  return { method, body, headers: {}, query: {}, path: "/" };
}

async function call(method: string, body?: unknown): Promise<unknown> {
  return handler(event(method, body), new HandlerContext());
}

async function tensorCalls(): Promise<number> {
  return Number(/^score_tensor_batch_size_count (\d+)$/m.exec(await metrics())?.[1]);
}

describe("score handler", () => {
  before(init);
  after(close);

  it("scores one reading: a healthy one low, a clearly faulty one high", async () => {
    const healthy = (await call("POST", { params: [620, 40, 150, 48] })) as { fault: number; probability: number };
    const faulty = (await call("POST", { params: [420, 53, 240, 58] })) as { fault: number; probability: number };
    assert.equal(healthy.fault, 0);
    assert.equal(faulty.fault, 1);
    assert.ok(healthy.probability < 0.5 && faulty.probability > 0.5);
  });

  it("scores a batch in order", async () => {
    const answer = (await call("POST", {
      instances: [
        [620, 40, 150, 48],
        [420, 53, 240, 58],
      ],
    })) as { predictions: Array<{ fault: number }> };
    assert.deepEqual(
      answer.predictions.map((p) => p.fault),
      [0, 1],
    );
  });

  it("accepts a JSON body sent as text, as faas-cli invoke does", async () => {
    const answer = (await call("POST", '{"params":[620,40,150,48]}')) as { fault: number };
    assert.equal(answer.fault, 0);
  });

  it("coalesces concurrent single readings into few tensor calls", async () => {
    const before = await tensorCalls();
    const answers = await Promise.all(Array.from({ length: 100 }, () => call("POST", { params: [620, 40, 150, 48] })));
    assert.equal(answers.length, 100);
    const calls = (await tensorCalls()) - before;
    assert.ok(calls >= 1 && calls <= 2, `${calls} tensor calls for 100 concurrent readings`);
  });

  it("describes its model on GET, with the reference reading explanations start from", async () => {
    const meta = (await call("GET")) as {
      id: string;
      features: string[];
      threshold: number;
      backend: string;
      reference: Record<Sensor, number>;
      referenceProbability: number;
      shadow: unknown;
      registry: unknown;
    };
    assert.match(meta.id, /^fan-dense-/);
    assert.deepEqual(meta.features, ["rotation", "temperature", "vibration", "sound"]);
    assert.equal(meta.threshold, 0.5);
    assert.ok(["tensorflow", "wasm", "cpu"].includes(meta.backend));
    assert.deepEqual(meta.reference, { rotation: 600, temperature: 40, vibration: 150, sound: 48.5 });
    assert.ok(meta.referenceProbability < 0.5, `the reference reading is healthy: ${meta.referenceProbability}`);
    assert.deepEqual([meta.shadow, meta.registry], [null, null], "without NATS_URL: no shadow, no registry");
  });

  it("answers a batch without a shadow's fields when there is no registry", async () => {
    const answer = (await call("POST", { instances: [[620, 40, 150, 48]] })) as Record<string, unknown>;
    assert.deepEqual(Object.keys(answer), ["model", "predictions"]);
  });

  it("explains one reading: a change in vibration alone is all vibration's", async () => {
    const meta = (await call("GET")) as { referenceProbability: number };
    const p = (await call("POST", { params: [600, 40, 240, 48.5], explain: true })) as Explained;
    assertExplained(p);
    assert.equal(p.fault, 1);
    assert.equal(p.cause, "vibration");
    assert.equal(p.referenceProbability, Math.round(meta.referenceProbability * 1e6) / 1e6);
    assert.deepEqual({ ...p.contributions, vibration: 0 }, { rotation: 0, temperature: 0, vibration: 0, sound: 0 });
    assert.ok(Math.abs(p.contributions.vibration - (p.probability - p.referenceProbability)) <= 1e-6);
  });

  it("explains a batch in order, each prediction with its cause", async () => {
    const before = Number(/^score_readings_explained_total (\d+)$/m.exec(await metrics())?.[1]);
    const answer = (await call("POST", {
      instances: [
        [620, 40, 150, 48],
        [420, 40, 150, 48.5],
        [600, 40, 150, 57],
      ],
      explain: true,
    })) as { model: string; predictions: Explained[] };
    assert.match(answer.model, /^fan-dense-/);
    assert.deepEqual(
      answer.predictions.map((p) => p.fault),
      [0, 1, 1],
    );
    assert.deepEqual(
      answer.predictions.slice(1).map((p) => p.cause),
      ["rotation", "sound"],
    );
    answer.predictions.forEach(assertExplained);
    assert.equal(Number(/^score_readings_explained_total (\d+)$/m.exec(await metrics())?.[1]), before + 3);
  });

  it("answers plain predictions with explain false or absent", async () => {
    for (const body of [
      { params: [620, 40, 150, 48], explain: false },
      { instances: [[620, 40, 150, 48]], explain: false },
    ]) {
      const answer = (await call("POST", body)) as Record<string, unknown> & {
        predictions?: Array<Record<string, unknown>>;
      };
      assert.deepEqual(Object.keys(answer.predictions?.[0] ?? answer), ["fault", "probability"]);
    }
  });

  const bad: Array<[string, unknown, string, RegExp]> = [
    ["no body", undefined, "body", /empty/],
    ["invalid JSON text", "{params: [1,", "body", /not valid JSON/],
    ["an array body", [1, 2, 3, 4], "body", /JSON object/],
    ["neither params nor instances", { param: [1, 2, 3, 4] }, "params", /exactly one of/],
    ["both params and instances", { params: [1, 2, 3, 4], instances: [] }, "instances", /exactly one of/],
    ["three numbers", { params: [1, 2, 3] }, "params", /exactly 4 numbers/],
    ["a string for a number", { params: [600, "40", 150, 48] }, "params[1]", /finite number/],
    ["NaN", { params: [600, Number.NaN, 150, 48] }, "params[1]", /finite number/],
    [
      "null in a batch",
      {
        instances: [
          [600, 40, 150, 48],
          [600, null, 150, 48],
        ],
      },
      "instances[1][1]",
      /finite number/,
    ],
    ["an empty batch", { instances: [] }, "instances", /at least one/],
    [
      "a batch over the limit",
      { instances: Array.from({ length: 10_001 }, () => [600, 40, 150, 48]) },
      "instances",
      /at most 10000/,
    ],
    [
      "explain as a string",
      { params: [600, 40, 150, 48], explain: "yes" },
      "explain",
      /explain: must be true or false, not "yes"/,
    ],
    ["explain as a number", { instances: [[600, 40, 150, 48]], explain: 1 }, "explain", /must be true or false, not 1/],
    [
      "explain as null",
      { instances: [[600, 40, 150, 48]], explain: null },
      "explain",
      /must be true or false, not null/,
    ],
  ];
  for (const [what, body, field, message] of bad) {
    it(`rejects ${what} with a 400 naming ${field}`, async () => {
      await assert.rejects(call("POST", body), (error: unknown) => {
        const e = error as { status: number; field: string; message: string };
        return e.status === 400 && e.field === field && message.test(e.message);
      });
    });
  }

  it("answers 405 to other methods, saying which it answers", async () => {
    const context = new HandlerContext();
    await assert.rejects(
      handler(event("DELETE"), context),
      (e: InputError) => e.status === 405 && e.code === "FANWATCH_METHOD_NOT_ALLOWED" && /not allowed/.test(e.message),
    );
    assert.equal(context.headers()["allow"], "GET, POST");
  });
});

describe("score handler over HTTP", () => {
  let server: FunctionServer;
  before(async () => {
    server = await startFunctionServer(
      { init, handler, close, metrics, errorAnswer },
      { port: 0, host: "127.0.0.1", name: "score", logger: pino({ level: "silent" }) },
    );
  });
  after(() => server?.close());

  async function post(body: unknown): Promise<{ status: number; body: unknown }> {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  it("explains in both request forms", async () => {
    const single = await post({ params: [420, 40, 150, 48.5], explain: true });
    assert.equal(single.status, 200);
    assertExplained(single.body as Explained);
    assert.equal((single.body as Explained).cause, "rotation");
    const batch = await post({
      instances: [
        [600, 53, 150, 48.5],
        [620, 40, 150, 48],
      ],
      explain: true,
    });
    assert.equal(batch.status, 200);
    const predictions = (batch.body as { predictions: Explained[] }).predictions;
    predictions.forEach(assertExplained);
    assert.equal(predictions[0]?.cause, "temperature");
    assert.equal(predictions[1]?.fault, 0);
  });

  it("answers a bad explain with a 400 naming the field, and keeps serving", async () => {
    const bad = await post({ instances: [[600, 40, 150, 48]], explain: "true" });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { field: string }).field, "explain");
    assert.match((bad.body as { error: string }).error, /explain: must be true or false/);
    assert.equal((await post({ params: [600, 40, 150, 48], explain: true })).status, 200);
  });

  it("refuses a reading no sensor can give with FANWATCH_READING_IMPLAUSIBLE, naming the sensor and the value, and keeps scoring", async () => {
    const huge = await post({ params: [1e308, 40, 150, 48] });
    assert.equal(huge.status, 400);
    assert.deepEqual(huge.body, {
      error:
        "params: rotation: 1e+308 rpm is outside its physical limits (0 to 20000 rpm): a sensor fault, not a fan fault",
      code: "FANWATCH_READING_IMPLAUSIBLE",
      field: "params[0]",
    });
    const negative = await post({ params: [-600, 40, 150, 48], explain: true });
    assert.equal(negative.status, 400);
    assert.equal((negative.body as { code: string }).code, "FANWATCH_READING_IMPLAUSIBLE");
    assert.match((negative.body as { error: string }).error, /rotation: -600 rpm is outside its physical limits/);
    const batch = await post({
      instances: [
        [600, 40, 150, 48],
        [600, 40, 150, 48],
        [600, 40, 150, 300],
      ],
    });
    assert.equal(batch.status, 400);
    assert.equal((batch.body as { field: string }).field, "instances[2][3]");
    assert.match((batch.body as { error: string }).error, /^instances\[2\]: sound: 300 dB is outside/);
    // The limits themselves are possible readings; a fault reading within them is still the model's to judge.
    const edges = await post({
      instances: [
        [0, -60, 0, 0],
        [20_000, 250, 10_000, 200],
        [420, 53, 240, 58],
      ],
    });
    assert.equal(edges.status, 200);
    assert.equal((edges.body as { predictions: Array<{ fault: number }> }).predictions[2]?.fault, 1);
  });

  it("keeps a non-finite number an input error, not an implausible reading", async () => {
    const answer = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"params":[600,40,"Infinity",48]}',
    });
    const body = (await answer.json()) as { code: string; field: string };
    assert.equal(answer.status, 400);
    assert.equal(body.code, "FANWATCH_INPUT_INVALID");
    assert.equal(body.field, "params[2]");
  });

  it("shows the reference reading on GET", async () => {
    const meta = (await (await fetch(server.url)).json()) as { reference: Record<Sensor, number> };
    assert.deepEqual(meta.reference, { rotation: 600, temperature: 40, vibration: 150, sound: 48.5 });
  });
});
