import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay } from "../lib/backoff.js";

describe("backoffDelay", () => {
  it("doubles per retry within ±50% jitter, up to the cap", () => {
    for (let i = 0; i < 200; i++) {
      const first = backoffDelay(100, 1);
      const third = backoffDelay(100, 3);
      const capped = backoffDelay(100, 20, 1_000);
      assert.ok(first >= 50 && first < 150, `first ${first}`);
      assert.ok(third >= 200 && third < 600, `third ${third}`);
      assert.ok(capped >= 500 && capped < 1_500, `capped ${capped}`);
    }
  });
});
