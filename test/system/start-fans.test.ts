import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openFanRegistry, type NatsFanRegistry } from "../../lib/registry/nats-registry.js";
import { eventuallyValue } from "../support/eventually.js";
import { startFanwatch, type StartedSystem } from "../support/fanwatch-start.js";
import { startNats, type TestNats } from "../support/nats.js";
import { postJson } from "../support/process.js";

// `fanwatch start` with the registry in a real nats-server: the console's status line counts the
// registry's active fans, a retired one no longer, a pending one beside, and its numbers add up.

/** The last status line's fans part, as numbers. */
const FANS =
  /(\d+) fans: (\d+) ok, (\d+) warning, (\d+) alarm, (\d+) cleared, (\d+) silent(?:, (\d+) not reported)?; (\d+) pending/g;

function lastFans(output: string): { fans: number; counted: number; pending: number; line: string } | undefined {
  const all = [...output.matchAll(FANS)];
  const m = all[all.length - 1];
  if (m === undefined) return undefined;
  const n = m.slice(1).map((v) => Number(v ?? 0));
  const [fans = 0, ok = 0, warning = 0, alarm = 0, cleared = 0, silent = 0, unreported = 0, pending = 0] = n;
  return { fans, counted: ok + warning + alarm + cleared + silent + unreported, pending, line: m[0] };
}

describe("fanwatch start's status line counts fans from the registry", { timeout: 180_000 }, () => {
  let nats: TestNats;
  let registry: NatsFanRegistry;
  let system: StartedSystem;

  before(async () => {
    nats = await startNats();
    registry = await openFanRegistry({ url: nats.url });
    // A fan nobody has decided on yet: pending, beside the fans.
    assert.equal(await registry.markPending("stranger-1", 10), "pending");
    system = await startFanwatch(["--fans", "3", "--faulty", "0", "--degrading", "0", "--interval", "500"], {
      NATS_URL: nats.url,
    });
  });

  after(async () => {
    await system?.interrupt();
    await registry?.close();
    await nats?.stop();
  });

  it("leaves a retired fan out and shows the pending one beside, every number adding up", async () => {
    const first = await eventuallyValue(
      "a status line with the 3 simulated fans",
      () => lastFans(system.output()),
      (f) => f !== undefined && f.fans === 3,
      { timeoutMs: 60_000, paceMs: 500 },
    );
    assert.equal(first?.pending, 1, first?.line);
    assert.equal(first?.counted, 3, first?.line);

    // Retired on the page (no sign-in on loopback: whoever uses the machine, in the name typed).
    const session = (await (await fetch(`${system.gatewayUrl}/ui/api/session`)).json()) as { csrf: string };
    const answer = await postJson(
      `${system.gatewayUrl}/ui/api/fans`,
      { action: "retire", id: "2", by: "tester" },
      { "x-csrf-token": session.csrf },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal((await registry.get("2"))?.retiredBy, "tester");

    const after = await eventuallyValue(
      "a status line without the retired fan",
      () => lastFans(system.output()),
      (f) => f !== undefined && f.fans === 2,
      { timeoutMs: 60_000, paceMs: 500 },
    );
    assert.equal(after?.counted, 2, after?.line);
    assert.equal(after?.pending, 1, after?.line);
  });
});
