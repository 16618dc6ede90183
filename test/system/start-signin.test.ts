import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { hashPassword } from "../../page/access/password.js";
import { userLine } from "../../page/access/users.js";
import { eventuallyValue } from "../support/eventually.js";
import { startFanwatch, type StartedSystem } from "../support/fanwatch-start.js";
import { signIn } from "../support/page-service.js";
import { postJson } from "../support/process.js";

const ENGINEER = { name: "erika", password: "erika's long password" };

describe("fanwatch start with PAGE_USERS_FILE: only the page's signed-in users act", { timeout: 180_000 }, () => {
  let system: StartedSystem;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "fanwatch-start-users-"));
    const usersFile = join(dir, "users");
    const hash = await hashPassword(ENGINEER.password, { N: 1024, r: 8, p: 1 });
    await writeFile(usersFile, `${userLine(ENGINEER.name, "engineer", hash)}\n`, { mode: 0o600 });
    system = await startFanwatch(["--fans", "2", "--faulty", "0", "--degrading", "0", "--interval", "500"], {
      PAGE_USERS_FILE: usersFile,
      // One set outside is not passed on: the run makes its own.
      PAGE_USER_SECRET: "a-secret-someone-set-outside-of-at-least-32-chars",
    });
  });

  after(async () => {
    await system.interrupt();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses an action sent straight to the gateway (401), and takes it through the page in the signed name", async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const action = { deviceIDs: ["1"], action: "maintenance", until, by: "boss" };
    const direct = await postJson(`${system.gatewayUrl}/function/health`, action);
    assert.equal(direct.status, 401, JSON.stringify(direct.body));
    assert.equal((direct.body as { code: string }).code, "FANWATCH_UNAUTHENTICATED");

    const me = await signIn(system.gatewayUrl, ENGINEER.name, ENGINEER.password);
    // Fan 1 is known to health once its first prediction arrived: until then 404.
    const answer = await eventuallyValue(
      "the page's maintenance action accepted",
      () => postJson(`${system.gatewayUrl}/ui/api/health`, action, { cookie: me.cookie, "x-csrf-token": me.csrf }),
      (a) => a.status !== 404,
      { timeoutMs: 60_000, paceMs: 500 },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const text = JSON.stringify(answer.body);
    assert.ok(text.includes('"by":"erika"'), text);
    assert.ok(!text.includes("boss"), "the body's by is not believed");
  });
});
