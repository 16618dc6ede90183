import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { added, approved, pendingRecord, retired, withPasswordHash } from "../../lib/registry/changes.js";
import { DeviceUnknownError } from "../../lib/registry/errors.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";

// One clock for the registry and for the expected records: each write's time is this instant.
const AT = new Date("2026-12-07T10:00:00.000Z");
const at = AT.toISOString();

describe("MemoryFanRegistry follows the change rules of changes.ts", () => {
  it("makes of each write the record changes.ts makes of the record before it", async () => {
    const registry = new MemoryFanRegistry(() => AT);
    assert.equal(await registry.markPending("f1", 10), "pending");
    assert.deepEqual(await registry.get("f1"), pendingRecord("f1", at));

    const pending = await registry.get("f1");
    assert.deepEqual(await registry.approve("f1", "ops"), approved(pending, "f1", "ops", at));

    const active = await registry.get("f1");
    const details = { name: "Hall 3", limits: { temperature: { min: -20, max: 90 } } };
    // Updating an active fan keeps who let it in.
    const updated = await registry.add("f1", details, "someone-else");
    assert.deepEqual(updated, added(active, "f1", details, "someone-else", at));
    assert.equal(updated.approvedBy, "ops");

    assert.deepEqual(await registry.setPasswordHash("f1", "$7$x"), withPasswordHash(updated, "f1", "$7$x"));
    const hashed = await registry.get("f1");
    assert.deepEqual(await registry.retire("f1", "ops"), retired(hashed, "f1", "ops", at));
  });

  it("refuses what changes.ts refuses, with its errors", async () => {
    const registry = new MemoryFanRegistry(() => AT);
    await assert.rejects(registry.approve("nobody", "ops"), DeviceUnknownError);
    await assert.rejects(registry.retire("nobody", "ops"), DeviceUnknownError);
    await assert.rejects(registry.setPasswordHash("nobody", "h"), DeviceUnknownError);
    await registry.add("f2", {}, "ops");
    await assert.rejects(registry.approve("f2", "ops"), /fan "f2" is active, not pending/);
  });
});
