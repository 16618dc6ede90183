import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../support/paths.js";

describe("dependencies the code relies on beyond their public API", () => {
  it("pins mqtt and mqtt-packet exactly while lib/mqtt/acks.ts writes PUBACKs on MQTT.js's own stream", () => {
    const acks = readFileSync(join(REPO_ROOT, "lib/mqtt/acks.ts"), "utf8");
    if (!acks.includes('from "mqtt-packet"') || !acks.includes("client.stream")) return; // the dependency on internals is gone
    const { dependencies } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const name of ["mqtt", "mqtt-packet"])
      assert.match(dependencies[name] ?? "(missing)", /^\d+\.\d+\.\d+$/, `${name} must be an exact version`);
  });
});
