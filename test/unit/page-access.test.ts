import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/errors.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../lib/infra/log.js";
import { LocalAccess } from "../../page/access/local.js";
import { hashPassword, parseHash, passwordFingerprint, verifyPassword } from "../../page/access/password.js";
import { TrustedProxies } from "../../page/access/peers.js";
import { Sessions } from "../../page/access/sessions.js";
import { safeNext } from "../../page/access/signin-form.js";
import { parseUsers, userLine, UsersFile } from "../../page/access/users.js";
import { isLoopback } from "../../lib/infra/net.js";
import { readPageConfig } from "../../page/config.js";

const LOW_COST = { N: 1024, r: 8, p: 1 };

/** A request as the page sees it: its peer's address and its headers. */
function request(peer: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

describe("the page's sign-in parts", () => {
  it("hashes a password into a self-describing scrypt string that verifies it and no other", async () => {
    const text = await hashPassword("a long enough password", LOW_COST);
    assert.match(text, /^scrypt\$1024\$8\$1\$[\w-]+\$[\w-]+$/);
    const hash = parseHash(text);
    assert.ok(!("error" in hash));
    assert.equal(await verifyPassword("a long enough password", hash), true);
    assert.equal(await verifyPassword("a long enough passworD", hash), false);
    assert.notEqual(await hashPassword("a long enough password", LOW_COST), text, "a fresh salt each time");
  });

  it("refuses hash strings that are not scrypt or would cost too much", () => {
    for (const bad of [
      "bcrypt$2b$10$x",
      "scrypt$1000$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
      "scrypt$4194304$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
    ])
      assert.ok("error" in parseHash(bad), bad);
  });

  it("reads a users file, naming the line of a bad entry and never its hash", async () => {
    const hash = await hashPassword("a long enough password", LOW_COST);
    const users = parseUsers(
      `# the plant's users\n\n${userLine("erika", "engineer", hash)}\nviktor:viewer:${hash}\n`,
      "users",
    );
    assert.deepEqual(
      [...users.values()].map((u) => `${u.name}:${u.role}`),
      ["erika:engineer", "viktor:viewer"],
    );
    assert.throws(
      () => parseUsers(`erika:boss:${hash}`, "users"),
      (e: unknown) => e instanceof ConfigError && /line 1/.test(e.message) && !e.message.includes(hash),
    );
    assert.throws(
      () => parseUsers(`erika:engineer:${hash}\nerika:viewer:${hash}`, "users"),
      /line 2: erika is listed twice/,
    );
    assert.throws(() => parseUsers(`bad name:viewer:${hash}`, "users"), /line 1/);
  });

  it("ends a session after its idle time or its maximum age, and at sign-out", () => {
    let now = 0;
    const sessions = new Sessions({ idleMs: 1_000, maxAgeMs: 5_000, now: () => now });
    const a = sessions.create("erika", "f");
    now = 900;
    assert.equal(sessions.touch(a.id)?.name, "erika");
    now = 1_800;
    assert.equal(sessions.touch(a.id)?.name, "erika", "each request restarts the idle clock");
    now = 2_900;
    assert.equal(sessions.touch(a.id), undefined, "idle too long");
    const b = sessions.create("erika", "f");
    for (now = 3_000; now < 8_000; now += 900) sessions.touch(b.id);
    assert.equal(sessions.touch(b.id), undefined, "past its maximum age however active");
    const c = sessions.create("otto", "f");
    sessions.end(c.id);
    assert.equal(sessions.touch(c.id), undefined);
    assert.notEqual(a.csrf, b.csrf);
  });

  it("caps one user's sessions, ending that user's oldest first, never another's", () => {
    const sessions = new Sessions({ idleMs: 60_000, maxAgeMs: 60_000, maxPerUser: 3, maxSessions: 5 });
    const otto = sessions.create("otto", "f");
    const erikas = Array.from({ length: 10 }, () => sessions.create("erika", "f"));
    assert.equal(sessions.touch(otto.id)?.name, "otto", "erika signing in again and again ends none of otto's");
    assert.deepEqual(
      erikas.map((s) => sessions.touch(s.id) !== undefined),
      [false, false, false, false, false, false, false, true, true, true],
      "erika keeps her newest 3",
    );
    assert.equal(sessions.size, 4);
  });

  it("ends a user's sessions once their password in the users file changed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fanwatch-users-"));
    try {
      const file = join(dir, "users");
      await writeFile(
        file,
        `${userLine("erika", "engineer", await hashPassword("the old long password", LOW_COST))}\n`,
      );
      const users = new UsersFile(file, () => {}, 0);
      const sessions = new Sessions({ idleMs: 60_000, maxAgeMs: 60_000 });
      const access = new LocalAccess({
        users,
        sessions,
        proxies: new TrustedProxies([]),
        cookieSecure: false,
        log: createLogger("test", "silent"),
      });
      const erika = users.get("erika");
      assert.ok(erika !== undefined);
      const session = sessions.create("erika", passwordFingerprint(erika.hash));
      const browser = request("127.0.0.1", { cookie: `fanwatch_session=${session.id}` });
      assert.equal(access.visitor(browser)?.user?.name, "erika");
      // The same role, a new password: whoever knew the old one is signed out.
      await writeFile(
        file,
        `${userLine("erika", "engineer", await hashPassword("the new long password", LOW_COST))}\n`,
      );
      assert.equal(access.visitor(browser), undefined);
      assert.equal(sessions.touch(session.id), undefined, "the session is ended, not only refused");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("believes forwarded headers only from a trusted proxy", () => {
    const proxies = new TrustedProxies(["10.0.0.5", "192.168.10.0/24"]);
    const forwarded = { "x-forwarded-for": "203.0.113.9, 192.168.10.7", "x-forwarded-proto": "https" };
    assert.equal(proxies.clientAddress(request("10.0.0.5", forwarded)), "203.0.113.9", "the nearest untrusted address");
    assert.equal(proxies.https(request("::ffff:10.0.0.5", forwarded)), true);
    assert.equal(
      proxies.clientAddress(request("198.51.100.1", forwarded)),
      "198.51.100.1",
      "from anyone else: the peer",
    );
    assert.equal(proxies.https(request("198.51.100.1", forwarded)), false);
    assert.equal(new TrustedProxies([]).trusts(request("10.0.0.5")), false);
  });

  it("sends a signed-in browser only to the page's own paths", () => {
    assert.equal(safeNext("/ui/fans/7"), "/ui/fans/7");
    assert.equal(safeNext("/ui/?fan=7&x=%0d%0a"), "/ui/?fan=7&x=%0d%0a", "encoded, as a browser sends it");
    for (const bad of [
      undefined,
      "https://evil.example/",
      "//evil.example/ui/",
      "/ui/\\\\evil.example",
      "/other",
      "/ui/\r\nset-cookie: x=1",
      "/ui/\u0000",
      "/ui/a b",
      "/ui/fän",
      `/ui/${"x".repeat(2048)}`,
    ])
      assert.equal(safeNext(bad), "/ui/", String(bad));
  });

  it("refuses a configuration that cannot be safe", () => {
    const base = { PAGE_USER_SECRET: "x".repeat(32), PAGE_USERS_FILE: "users" };
    assert.throws(() => readPageConfig({ ...base, PAGE_SIGN_IN: "off", PAGE_HOST: "0.0.0.0" }), /loopback/);
    assert.equal(readPageConfig({ ...base, PAGE_SIGN_IN: "off", PAGE_HOST: "127.0.0.1" }).signIn, "off");
    assert.throws(() => readPageConfig({ PAGE_USER_SECRET: "x".repeat(32) }), /PAGE_USERS_FILE/);
    assert.throws(
      () => readPageConfig({ PAGE_USERS_FILE: "users", SECRET_MOUNT_PATH: "/nonexistent" }),
      /PAGE_USER_SECRET/,
    );
    assert.throws(() => readPageConfig({ ...base, PAGE_SIGN_IN: "proxy" }), /PAGE_TRUSTED_PROXIES/);
    assert.throws(() => readPageConfig({ ...base, PAGE_PROXY_ROLES: "maintenance=boss" }), /PAGE_PROXY_ROLES/);
    assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && !isLoopback("0.0.0.0"));
    // The registry's copies, should the page be the one to create `fan_registry`.
    assert.equal(readPageConfig({ ...base, PAGE_SIGN_IN: "off", PAGE_HOST: "127.0.0.1" }).kvReplicas, 1);
    assert.equal(
      readPageConfig({ ...base, PAGE_SIGN_IN: "off", PAGE_HOST: "127.0.0.1", NATS_KV_REPLICAS: "3" }).kvReplicas,
      3,
    );
  });

  it("refuses sign-in local on the network over plain http, unless https is there or allowed", () => {
    const base = { PAGE_USER_SECRET: "x".repeat(32), PAGE_USERS_FILE: "users", PAGE_HOST: "0.0.0.0" };
    assert.throws(
      () => readPageConfig(base),
      /in clear.*PAGE_TLS_CERT_FILE.*PAGE_COOKIE_SECURE.*PAGE_ALLOW_PLAIN_HTTP/,
    );
    const tls = { PAGE_TLS_CERT_FILE: "tls.crt", PAGE_TLS_KEY_FILE: "tls.key" };
    assert.deepEqual(readPageConfig({ ...base, ...tls }).tls, { certFile: "tls.crt", keyFile: "tls.key" });
    assert.equal(readPageConfig({ ...base, PAGE_COOKIE_SECURE: "true" }).cookieSecure, true);
    assert.equal(readPageConfig({ ...base, PAGE_ALLOW_PLAIN_HTTP: "true" }).host, "0.0.0.0");
    assert.equal(readPageConfig({ ...base, PAGE_HOST: "127.0.0.1" }).host, "127.0.0.1");
  });
});
