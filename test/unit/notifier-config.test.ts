import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/errors.js";
import { readNotifierConfig } from "../../notifier/config.js";

const base = { NATS_URL: "nats://127.0.0.1:4222", SECRET_MOUNT_PATH: "/nonexistent" };

/** The ConfigError readNotifierConfig throws for `env`. */
function refusal(env: Record<string, string>): ConfigError {
  try {
    readNotifierConfig({ ...base, ...env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("accepted");
}

describe("the notifier's configuration", () => {
  it("NATS_KV_REPLICAS: 1 by default, 1 to 5 copies, as health's", () => {
    assert.equal(readNotifierConfig(base).replicas, 1);
    assert.equal(readNotifierConfig({ ...base, NATS_KV_REPLICAS: "3" }).replicas, 3);
    for (const bad of ["0", "6", "two"]) assert.match(refusal({ NATS_KV_REPLICAS: bad }).message, /NATS_KV_REPLICAS/);
  });
});
