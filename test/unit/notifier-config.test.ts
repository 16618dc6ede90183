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

  it("names a bad URL by its place and its scheme and host, never its user, password, path or query", () => {
    const scheme = refusal({ ALERTMANAGER_URL: "http://am:9093,ftp://us3r:pa55@files.example:2121/tok3n?key=k3y" });
    assert.match(
      scheme.message,
      /ALERTMANAGER_URL: entry 2 of 2 \(ftp:\/\/files\.example:2121\) is not an http\(s\) URL/,
    );
    const garbled = refusal({
      NOTIFY_WEBHOOK_URL: "https//hooks.example/s3cret-token",
      NOTIFY_WEBHOOK_SECRET: "x".repeat(16),
    });
    assert.match(garbled.message, /NOTIFY_WEBHOOK_URL: entry 1 is not a URL/);
    for (const secret of ["us3r", "pa55", "tok3n", "k3y", "s3cret"])
      assert.ok(!scheme.message.includes(secret) && !garbled.message.includes(secret), secret);
  });
});
