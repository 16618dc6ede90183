import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../../lib/infra/net.js";
import { eventually } from "../support/eventually.js";
import { findNatsServer, NatsServerProcess } from "../../runtime/system/nats.js";

/** The pids in process group `group` (the shell, the server and its watcher), none once all are gone. */
function processGroup(group: number): number[] {
  const out = execFileSync("ps", ["-e", "-o", "pid=,pgid="]).toString();
  return out
    .split("\n")
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter(([pid, pgid]) => pgid === group && pid !== undefined)
    .map(([pid]) => pid as number);
}

// A server fanwatch runs as a child (runtime/system/server-process.ts), with a real nats-server.
describe("a server run as a child (real nats-server)", { timeout: 60_000 }, () => {
  let storeDir: string;

  before(async () => {
    storeDir = await mkdtemp(join(tmpdir(), "fanwatch-server-process-"));
  });

  after(async () => {
    await rm(storeDir, { recursive: true, force: true });
  });

  it("that dies by itself ends the service saying so, and leaves nothing of its group behind", async () => {
    const binary = findNatsServer();
    assert.ok(binary !== undefined, "nats-server is installed");
    const server = new NatsServerProcess({ binary, port: await freePort(), storeDir });
    await server.start();
    const group = server.pid as number;
    assert.equal(processGroup(group).length, 3, "the shell, nats-server and the watcher of fanwatch's pipe");
    const natsPid = Number(
      execFileSync("pgrep", ["-P", String(group), "nats-server"])
        .toString()
        .trim(),
    );
    process.kill(natsPid, "SIGKILL");
    const why = await server.closed;
    assert.match(String(why?.message), /exited \(code 137\)/);
    // A watcher left behind would, once fanwatch's pipe closed, signal a pid another process may have by then.
    await eventually("nothing left of its process group", () => processGroup(group).length === 0, 5_000);
    await server.close();
  });
});
