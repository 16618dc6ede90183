import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DynamicBatcher, type BatchTimers } from "../../functions/score/batcher.js";

/** Timers that only fire when the test says so. */
function manualTimers(): BatchTimers & { fire(): void; delays: number[] } {
  let callback: (() => void) | undefined;
  const delays: number[] = [];
  return {
    delays,
    schedule: (cb, ms) => {
      callback = cb;
      delays.push(ms);
      return 1;
    },
    cancel: () => (callback = undefined),
    fire: () => callback?.(),
  };
}

describe("DynamicBatcher", () => {
  it("coalesces concurrent submissions into one call and answers each in order", async () => {
    const calls: number[][] = [];
    const timers = manualTimers();
    const batcher = new DynamicBatcher((items: number[]) => (calls.push(items), items.map((x) => x * 10)), {
      maxWaitMs: 3,
      timers,
    });
    const answers = Promise.all([1, 2, 3].map((x) => batcher.submit(x)));
    assert.equal(calls.length, 0, "nothing runs before the wait ends");
    assert.deepEqual(timers.delays, [3]);
    timers.fire();
    assert.deepEqual(await answers, [10, 20, 30]);
    assert.deepEqual(calls, [[1, 2, 3]]);
  });

  it("runs a full batch at once without waiting", async () => {
    const calls: number[][] = [];
    const batcher = new DynamicBatcher((items: number[]) => (calls.push(items), items), {
      maxBatchSize: 2,
      timers: manualTimers(),
    });
    const answers = Promise.all([1, 2, 3, 4].map((x) => batcher.submit(x)));
    assert.deepEqual(calls, [
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(await answers, [1, 2, 3, 4]);
  });

  it("with maxBatchSize 1 makes one call per item (batching off)", async () => {
    let calls = 0;
    const batcher = new DynamicBatcher((items: number[]) => (calls++, items), { maxBatchSize: 1 });
    await Promise.all([1, 2, 3].map((x) => batcher.submit(x)));
    assert.equal(calls, 3);
  });

  it("coalesces with real timers too", async () => {
    const sizes: number[] = [];
    const batcher = new DynamicBatcher((items: number[]) => (sizes.push(items.length), items), { maxWaitMs: 0 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => batcher.submit(i)));
    assert.deepEqual(sizes, [50]);
  });

  it("rejects every item of a failed batch and keeps working", async () => {
    let fail = true;
    const timers = manualTimers();
    const batcher = new DynamicBatcher(
      (items: number[]) => {
        if (fail) throw new Error("boom");
        return items;
      },
      { timers },
    );
    const failed = Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    timers.fire();
    assert.deepEqual(
      (await failed).map((r) => r.status),
      ["rejected", "rejected"],
    );
    fail = false;
    const ok = batcher.submit(3);
    timers.fire();
    assert.equal(await ok, 3);
  });

  it("refuses impossible options", () => {
    assert.throws(() => new DynamicBatcher((x: number[]) => x, { maxBatchSize: 0 }), /maxBatchSize/);
    assert.throws(() => new DynamicBatcher((x: number[]) => x, { maxWaitMs: -1 }), /maxWaitMs/);
  });
});
