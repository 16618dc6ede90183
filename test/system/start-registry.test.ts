import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { openFanRegistry } from "../../lib/registry/nats-registry.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import { RegistryService, START_APPROVER } from "../../runtime/system/registry.js";
import { startFanwatch } from "../support/fanwatch-start.js";
import { startNats, type TestNats } from "../support/nats.js";
import { runCli } from "../support/process.js";

const fleet = (fans: number) => ({
  fans,
  intervalMs: 1_000,
  seed: 1,
  faulty: 0,
  degrading: 0,
  onsetMs: 60_000,
  degradeMs: 60_000,
});

describe("fanwatch start's device registry", () => {
  let nats: TestNats;

  before(async () => {
    nats = await startNats();
  });

  after(async () => {
    await nats.stop();
  });

  function service(fans: number, natsUrl: string | undefined, lines: string[]): RegistryService {
    return new RegistryService({
      natsUrl,
      fleet: fleet(fans),
      env: {},
      say: (line) => void lines.push(line),
      log: pino({ level: "silent" }),
    });
  }

  it("registers the simulated fleet as active in NATS, again at each start without undoing a person's decisions", async () => {
    const lines: string[] = [];
    const first = service(3, nats.url, lines);
    await first.start();
    assert.deepEqual(
      (await first.registry.list()).map((r) => [r.id, r.state, r.approvedBy]),
      [
        ["1", "active", START_APPROVER],
        ["2", "active", START_APPROVER],
        ["3", "active", START_APPROVER],
      ],
    );
    assert.match(
      lines.join("\n"),
      /device registry in NATS at .*bucket fan_registry: 3 fans \(3 active, 0 pending, 0 retired\)/,
    );
    await first.drain();

    // Meanwhile a person retires fan 2 and renames fan 1; a fan 4 turned up pending.
    const person = await openFanRegistry({ url: nats.url });
    await person.retire("2", "alice");
    await person.add("1", { name: "Hall A" }, "alice");
    await person.markPending("4", 10);
    await person.close();

    lines.length = 0;
    const second = service(4, nats.url, lines);
    await second.start();
    const byId = new Map((await second.registry.list()).map((r) => [r.id, r] as [string, FanRecord]));
    assert.equal(byId.get("1")?.name, "Hall A", "an active fan is left as it is");
    assert.equal(byId.get("2")?.state, "retired", "a retired fan stays retired");
    assert.deepEqual([byId.get("4")?.state, byId.get("4")?.approvedBy], ["active", START_APPROVER]);
    assert.match(lines.join("\n"), /simulated fans 2 stay retired/);
    await second.drain();
  });

  it("keeps the registry in memory without NATS", async () => {
    const lines: string[] = [];
    const s = service(2, undefined, lines);
    await s.start();
    assert.deepEqual(
      (await s.registry.list("active")).map((r) => r.id),
      ["1", "2"],
    );
    assert.match(lines.join("\n"), /device registry in memory/);
    await s.drain();
  });

  it("fanwatch start's simulated fans are in the registry fanwatch fans lists", async () => {
    const system = await startFanwatch(["--fans", "3", "--faulty", "0", "--degrading", "0", "--interval", "1000"]);
    try {
      const url = /device registry in NATS at (nats:\/\/\S+), bucket fan_registry/.exec(system.output())?.[1];
      assert.ok(url !== undefined, system.output());
      const listed = await runCli(["fans", "list", "--json"], { NATS_URL: url });
      assert.equal(listed.code, 0, listed.stderr);
      const records = listed.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as FanRecord);
      assert.deepEqual(
        records.map((r) => [r.id, r.state, r.approvedBy]),
        [
          ["1", "active", START_APPROVER],
          ["2", "active", START_APPROVER],
          ["3", "active", START_APPROVER],
        ],
      );
    } finally {
      const exit = await system.interrupt();
      assert.equal(exit.code, 0, system.output());
    }
  });
});
