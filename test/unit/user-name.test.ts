import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { userName } from "../../cli/user-name.js";

const helper = fileURLToPath(new URL("../../cli/user-name.js", import.meta.url));

describe("who runs a command", () => {
  it("is the user's name", () => {
    assert.equal(userName(), userInfo().username);
  });

  it("is 'unknown user' under a uid with no passwd entry (a container's arbitrary uid), not a crash", (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root to run a child under another uid");
    const run = spawnSync(
      process.execPath,
      ["--input-type=module", "-e", `import(${JSON.stringify(helper)}).then((m) => console.log(m.userName()))`],
      { uid: 4_242_424, gid: 4_242_424, encoding: "utf8" },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "unknown user");
  });
});
