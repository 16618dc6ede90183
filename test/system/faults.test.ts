import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runScenario, SHORT, summaryLine, type RunOptions } from "../../bench/faults/run.js";
import { SCENARIOS } from "../../bench/faults/scenarios.js";

// The fault suite's short version (docs/reliability.md): every scenario of `npm run bench:faults`
// at 200 messages/s with 5 s faults (NATS down 15 s), each on a fresh system of real processes
// (Mosquitto from the shipped config, InfluxDB, score, predict, the connector, the writer; for the
// NATS scenarios also nats-server and health). It asserts counts, never times: every valid reading
// predicted and stored with its prediction, every invalid message the broker took dead-lettered
// with a reason and stored as such, the services healthy at the end; with health, every fan's
// record caught up, every faulty fan's alarm announced, and no transition lost.
describe("fault suite (short): nothing lost under faults", { timeout: 15 * 60_000 }, () => {
  let options: RunOptions;
  let failed = false;

  before(async () => {
    options = { ...SHORT, logDir: await mkdtemp(join(tmpdir(), "fanwatch-faults-test-")), progress: () => {} };
  });
  after(async () => {
    // The process logs stay for a failure to be read; a pass leaves nothing behind.
    if (!failed) await rm(options.logDir, { recursive: true, force: true });
  });

  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: ${scenario.fault}`, async (t) => {
      const result = await runScenario(scenario, options);
      t.diagnostic(summaryLine(result));
      if (result.missed.length > 0) failed = true;
      assert.deepEqual(
        result.missed,
        [],
        `${scenario.name} missed targets (process logs in ${result.logDir}):\n${JSON.stringify(result, null, 1)}`,
      );
      // The load itself: the counts above are over real traffic.
      assert.ok(result.sent.valid > 0 && result.sent.invalid > 0);
    });
  }
});
