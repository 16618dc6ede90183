import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runScenario, SHORT, summaryLine, type RunOptions } from "../../bench/faults/run.js";
import { SCENARIOS } from "../../bench/faults/scenarios.js";

// The fault suite's short version (docs/reliability.md): every scenario of `npm run bench:faults`
// at 200 messages/s with 5 s faults (NATS down 15 s), each on a fresh system of real processes
// (Mosquitto from the shipped config, InfluxDB, nats-server holding the device registry, score,
// predict, the connector checking every reading against the registry, the writer; for the NATS
// scenarios also the health path). It asserts counts, never times: every valid reading of a
// registered fan predicted and stored with its prediction, every invalid message the broker took
// dead-lettered with a reason and stored as such, no device ID in InfluxDB that the registry did
// not let in, every process's memory under its bound, the services healthy at the end; in the
// poison, each of 1,000 forged device IDs refused (FANWATCH_REGISTRY_FULL, FANWATCH_DEVICE_UNKNOWN)
// or quarantined, none predicted or stored; with health, every fan's record caught up, every
// faulty fan's alarm announced, and no transition lost.
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
      // The forged IDs outnumber REGISTRY_MAX_PENDING (100 in the short run): both of the registry's
      // answers to an unknown ID occur, the quarantine up to its bound and the refusal past it.
      if (result.forged !== undefined) {
        assert.equal(result.forged.sent, options.distinctDevices);
        assert.ok(result.forged.quarantined > 0 && result.forged.quarantined <= options.registryMaxPending);
        assert.ok((result.forged.refusedByCode.FANWATCH_REGISTRY_FULL ?? 0) > 0);
      }
    });
  }
});
