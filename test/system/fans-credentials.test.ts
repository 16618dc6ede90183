import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import mqtt from "mqtt";
import { addFansCredentialsCommand } from "../../cli/fans-credentials-command.js";
import type { Io } from "../../cli/parse.js";
import type { RegistryAccess } from "../../cli/registry-access.js";
import { buildBrokerAuth } from "../../lib/mqtt/broker-auth-files.js";
import { verifyMosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { startMosquitto } from "../support/mosquitto.js";

/** `fans credentials` on a memory registry (the `fans` command gives it the NATS one). */
async function credentials(registry: MemoryFanRegistry, args: string[]): Promise<{ out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const program = new Command("fanwatch").exitOverride();
  const fans = program.command("fans");
  const access: RegistryAccess = { flags: () => () => ({}), with: (_given, work) => work(registry) };
  const io: Io = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    progress: () => {},
    progressDone: () => {},
    interactive: false,
  };
  addFansCredentialsCommand(fans, io, access);
  await program.parseAsync(["fans", "credentials", ...args], { from: "user" });
  return { out, err };
}

describe("fanwatch fans credentials", { timeout: 60_000 }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  let dir: string;
  const registry = new MemoryFanRegistry();

  before(async () => {
    broker = await startMosquitto({ shipped: { users: { connector: "connector-pass" }, fans: {} } });
    dir = await mkdtemp(join(tmpdir(), "fanwatch-credentials-"));
    await registry.add("hall-a.7", {}, "test");
  });
  after(async () => {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("prints a generated password once, stores only its hash, and the device logs in with what it printed", async () => {
    const { out } = await credentials(registry, ["hall-a.7"]);
    const field = (name: string) =>
      out
        .find((l) => l.trim().startsWith(name))
        ?.trim()
        .split(/\s+/)[name.split(" ").length];
    const password = field("password") ?? "";
    assert.ok(password.length >= 32, `a long password: ${password}`);
    assert.equal(field("username"), "fan-hall-a.7");
    assert.equal(field("client id"), "fan-hall-a.7");
    assert.equal(field("topic"), "fan/messages/hall-a.7");
    assert.match(out.join("\n"), /port 30883/);
    const record = await registry.get("hall-a.7");
    assert.ok(record?.mqttPasswordHash !== undefined && verifyMosquittoHash(password, record.mqttPasswordHash));
    assert.doesNotMatch(JSON.stringify(record), new RegExp(password));

    // broker-auth's files from that registry, then the device's settings as printed.
    await buildBrokerAuth(
      {
        usersDir: join(broker.authDir ?? "", "users"),
        aclFile: new URL("../../../deploy/mosquitto/acl", import.meta.url).pathname,
        outDir: broker.authDir ?? "",
        topic: "fan/messages",
        allowUnboundFans: false,
      },
      await registry.list(),
    );
    await broker.restart();
    const device = await mqtt.connectAsync(broker.fansUrl ?? "", {
      ca: await readFile(broker.caFile ?? ""),
      username: "fan-hall-a.7",
      password,
      clientId: "fan-hall-a.7",
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    const ack = await device.publishAsync("fan/messages/hall-a.7", "{}", { qos: 1 });
    assert.equal((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0, 0);
    await device.endAsync();
  });

  it("takes a person's password from a file, and refuses a short one", async () => {
    const file = join(dir, "password");
    await writeFile(file, "short\n");
    await assert.rejects(credentials(registry, ["hall-a.7", "--password-file", file]), /at least 16/);
    await writeFile(file, "a-long-enough-password-of-mine\n");
    const { out } = await credentials(registry, ["hall-a.7", "--password-file", file]);
    assert.match(out.join("\n"), /password +a-long-enough-password-of-mine$/m);
    const record = await registry.get("hall-a.7");
    assert.equal(verifyMosquittoHash("a-long-enough-password-of-mine", record?.mqttPasswordHash ?? ""), true);
  });

  it("refuses a fan the registry does not know", async () => {
    await assert.rejects(credentials(registry, ["nobody"]), /no fan "nobody"/);
  });
});
