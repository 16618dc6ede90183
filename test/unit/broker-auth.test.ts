import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderBrokerAuth } from "../../lib/mqtt/broker-auth.js";
import { mosquittoHash, parseMosquittoHash } from "../../lib/mqtt/mosquitto-passwd.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";

const hash = mosquittoHash("a password of sixteen+");
const fan = (id: string, state: FanRecord["state"], withHash = true): FanRecord => ({
  id,
  name: "",
  site: "",
  location: "",
  type: "",
  tags: [],
  state,
  created: "2026-01-01T00:00:00.000Z",
  ...(withHash ? { mqttPasswordHash: hash } : {}),
});
const input = (allowUnboundFans: boolean) => ({
  services: [{ name: "connector", hash }],
  fans: [fan("b", "active"), fan("a", "active"), fan("p", "pending"), fan("r", "retired"), fan("n", "active", false)],
  servicesAcl: "user connector\ntopic read fan/messages/+\n",
  topic: "fan/messages",
  allowUnboundFans,
});

describe("broker-auth's files", () => {
  it("lets in active fans with credentials only, each writing its own topic", () => {
    const files = renderBrokerAuth(input(false));
    assert.deepEqual(files.fanUsers, ["fan-a", "fan-b"]);
    assert.deepEqual(files.withoutCredentials, ["n"]);
    assert.deepEqual(
      files.passwd
        .trim()
        .split("\n")
        .map((l) => l.split(":")[0]),
      ["connector", "fan-a", "fan-b"],
    );
    assert.ok(files.passwd.split("\n").every((l) => l === "" || parseMosquittoHash(l.slice(l.indexOf(":") + 1))));
    assert.match(files.acl, /^user connector\ntopic read fan\/messages\/\+\n/);
    assert.match(
      files.acl,
      /\nuser fan-a\ntopic write fan\/messages\/a\n\nuser fan-b\ntopic write fan\/messages\/b\n$/,
    );
    assert.doesNotMatch(files.acl, /topic write fan\/messages\n/);
    assert.doesNotMatch(files.acl, /fan-[pnr]\b/);
  });

  it("adds the reference topic to each fan only with ALLOW_UNBOUND_FANS", () => {
    const files = renderBrokerAuth(input(true));
    assert.match(files.acl, /\nuser fan-a\ntopic write fan\/messages\/a\ntopic write fan\/messages\n/);
  });

  it("binds each fan's client id to its username in the plugin, and gives broker-auth only the control topic", () => {
    const config = JSON.parse(renderBrokerAuth(input(false)).dynsec) as {
      clients: Array<{ username: string; clientid?: string; password?: string; roles: unknown[] }>;
      roles: Array<{ rolename: string; acls: Array<{ topic: string }> }>;
    };
    assert.deepEqual(
      config.clients.filter((c) => c.username.startsWith("fan-")),
      [
        { username: "fan-a", clientid: "fan-a", roles: [] },
        { username: "fan-b", clientid: "fan-b", roles: [] },
      ],
    );
    assert.ok(
      config.clients.every((c) => c.password === undefined),
      "passwords stay in the password file",
    );
    assert.ok(config.roles.every((r) => r.acls.every((a) => a.topic.startsWith("$CONTROL/dynamic-security/v1"))));
  });

  it("refuses a service user named like a fan", () => {
    assert.throws(() => renderBrokerAuth({ ...input(false), services: [{ name: "fan-x", hash }] }), /for fans/);
  });
});
