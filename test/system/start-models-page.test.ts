import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ModelsPanel } from "../../page/models-view.js";
import { eventuallyValue } from "../support/eventually.js";
import { startFanwatch } from "../support/fanwatch-start.js";

// `fanwatch start` (npm start) end to end: score follows the model registry on the health state's
// nats-server, and the page at the gateway's /ui/ shows the model it bootstrapped and the replica
// serving it in the Models panel's API.

describe("fanwatch start's page shows the site's models", { timeout: 180_000 }, () => {
  it("names the active model score bootstrapped and the score replica serving it", async () => {
    const system = await startFanwatch(["--fans", "2", "--faulty", "0", "--degrading", "0", "--interval", "1000"], {
      SITE: "plant-start",
    });
    try {
      const panel = await eventuallyValue(
        "the Models panel naming a replica serving the active model",
        async () => {
          const res = await fetch(`${system.gatewayUrl}/ui/api/models`);
          return res.ok ? ((await res.json()) as ModelsPanel) : undefined;
        },
        (p) => p !== undefined && p.active !== null && p.replicas.some((r) => r.active === p.active?.id),
        { timeoutMs: 120_000 },
      );
      assert.equal(panel?.site, "plant-start");
      assert.match(panel?.active?.id ?? "", /^fan-[0-9a-f]{16}$/);
      assert.equal(
        panel?.pointer?.reason,
        "first",
        "the first replica made the shipped model the site's first version",
      );
      assert.equal(panel?.active?.goldenAccuracy, 0.94);
      assert.deepEqual(panel?.refusals, []);
    } finally {
      await system.interrupt();
    }
  });
});
