import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import { addBrokerAuthCommand, type RegistryOpener } from "../../cli/broker-auth-command.js";
import type { Io } from "../../cli/parse.js";
import { StoreUnavailableError } from "../../lib/errors.js";
import { mosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";

describe("fanwatch broker-auth (once)", () => {
  let dir: string;
  const lines: string[] = [];
  const io: Io = {
    out: (line) => lines.push(line),
    err: (line) => lines.push(line),
    progress: () => {},
    progressDone: () => {},
    interactive: false,
  };
  const run = async (opener: RegistryOpener) => {
    const program = new Command("fanwatch").exitOverride();
    addBrokerAuthCommand(program, io, opener);
    await program.parseAsync(
      [
        "broker-auth",
        "--nats",
        "nats://127.0.0.1:9",
        "--users",
        join(dir, "users"),
        "--acl",
        join(dir, "acl"),
        "--out",
        join(dir, "out"),
        "--fallback",
        join(dir, "fallback"),
      ],
      { from: "user" },
    );
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-broker-auth-"));
    for (const sub of ["users", "out", "fallback"]) await mkdir(join(dir, sub));
    await writeFile(join(dir, "users", "connector"), "connector-pass\n");
    await writeFile(join(dir, "acl"), "user connector\ntopic read fan/messages/+\n");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const unreachable: RegistryOpener = () => Promise.reject(new StoreUnavailableError("cannot reach NATS"));

  it("fails when the registry is unreachable and no earlier run left its files", async () => {
    await assert.rejects(run(unreachable), /cannot reach NATS/);
  });

  it("writes the files from the registry, and a copy for the next start", async () => {
    const registry = new MemoryFanRegistry();
    await registry.add("a", {}, "test");
    await registry.setPasswordHash("a", mosquittoHash("a password of sixteen"));
    await run(() => Promise.resolve(registry));
    const passwd = await readFile(join(dir, "out", "passwd"), "utf8");
    assert.match(passwd, /^connector:\$7\$/m);
    assert.match(passwd, /^fan-a:\$7\$/m);
    assert.equal(await readFile(join(dir, "fallback", "passwd"), "utf8"), passwd);
    assert.match(lines.at(-1) ?? "", /1 service users, 1 fans/);
  });

  it("with NATS away at the next start, the broker gets the last files instead of none", async () => {
    await rm(join(dir, "out"), { recursive: true });
    await mkdir(join(dir, "out"));
    await run(unreachable);
    assert.match(await readFile(join(dir, "out", "passwd"), "utf8"), /^fan-a:\$7\$/m);
    assert.match(await readFile(join(dir, "out", "acl"), "utf8"), /^topic write fan\/messages\/a$/m);
    assert.match(lines.at(-1) ?? "", /registry is unreachable .* files of the last run/);
  });
});
