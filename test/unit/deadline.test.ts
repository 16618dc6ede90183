import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Deadline } from "../../lib/infra/deadline.js";

describe("predict's budget", () => {
  it("takes the caller's X-Timeout-Ms less a margin when it is shorter than PREDICT_BUDGET_MS", () => {
    assert.equal(Deadline.forCall("1000", 9_000).budgetMs, 900);
    assert.equal(Deadline.forCall("9000", 9_000).budgetMs, 8_500);
    assert.equal(Deadline.forCall("10000", 9_000).budgetMs, 9_000);
    for (const header of [undefined, "", "abc", "-5", "0", "1e3", "20000", ["1000", "2000"]]) {
      assert.equal(
        Deadline.forCall(header, 9_000).budgetMs,
        9_000,
        `X-Timeout-Ms ${String(header)} uses predict's own budget`,
      );
    }
  });

  it("names what it was waiting for when it runs out", async () => {
    const deadline = new Deadline(0, "PREDICT_BUDGET_MS 0 ms", "predict");
    await assert.rejects(
      deadline.wait(new Promise(() => {}), "the score function"),
      /predict's time ran out \(PREDICT_BUDGET_MS 0 ms\) waiting for the score function/,
    );
  });
});
