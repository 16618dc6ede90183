// Runs in the repository (npm test) and inside the image build (templates/node22-ts/build.mjs).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { HandlerContext } from "../../templates/node22-ts/context.js";
import type { FunctionEvent } from "../../templates/node22-ts/types.js";
import { close, handler, init, metrics } from "./handler.js";

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
    const answer = (await call("POST", { instances: [[620, 40, 150, 48], [420, 53, 240, 58]] })) as { predictions: Array<{ fault: number }> };
    assert.deepEqual(answer.predictions.map((p) => p.fault), [0, 1]);
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

  it("describes its model on GET", async () => {
    const meta = (await call("GET")) as { id: string; features: string[]; threshold: number; backend: string; metrics: { accuracy: number } };
    assert.match(meta.id, /^fan-dense-/);
    assert.deepEqual(meta.features, ["rotation", "temperature", "vibration", "sound"]);
    assert.equal(meta.threshold, 0.5);
    assert.ok(["tensorflow", "wasm", "cpu"].includes(meta.backend));
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
    ["null in a batch", { instances: [[600, 40, 150, 48], [600, null, 150, 48]] }, "instances[1][1]", /finite number/],
    ["an empty batch", { instances: [] }, "instances", /at least one/],
    ["a batch over the limit", { instances: Array.from({ length: 10_001 }, () => [600, 40, 150, 48]) }, "instances", /at most 10000/],
  ];
  for (const [what, body, field, message] of bad) {
    it(`rejects ${what} with a 400 naming ${field}`, async () => {
      await assert.rejects(call("POST", body), (error: unknown) => {
        const e = error as { status: number; field: string; message: string };
        return e.status === 400 && e.field === field && message.test(e.message);
      });
    });
  }

  it("answers 405 to other methods", async () => {
    const context = new HandlerContext();
    const answer = (await handler(event("DELETE"), context)) as { error: string };
    assert.equal(context.status(), 405);
    assert.match(answer.error, /not allowed/);
  });
});
