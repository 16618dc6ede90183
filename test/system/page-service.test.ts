import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { hashPassword } from "../../page/access/password.js";
import { userLine } from "../../page/access/users.js";
import { HealthStandIn } from "../support/health-stand-in.js";
import {
  cookiePair,
  postSignIn,
  signIn,
  startTestPage,
  TEST_USER_SECRET,
  type TestPage,
} from "../support/page-service.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";

const ENGINEER = { name: "erika", role: "engineer", password: "erika's long password" } as const;
const VIEWER = { name: "viktor", role: "viewer", password: "viktor's long password" } as const;
const OTHER = { name: "otto", role: "engineer", password: "otto's long password!" } as const;

const SessionSchema = z.object({
  signIn: z.enum(["off", "local", "proxy"]),
  user: z.object({ name: z.string(), role: z.string() }).nullable(),
  canAct: z.boolean(),
  csrf: z.string(),
});
const ErrorSchema = z.object({ error: z.string(), code: z.string() });

const ACTION = { deviceID: "7", alarmId: "a-1", action: "comment", note: "bearing noise", by: "someone else" };

/** An event stream held open, as a browser tab holds it; `status` is what the page answered. */
async function openStream(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/ui/events`, { headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
    });
    req.on("error", (e) => (req.destroyed ? undefined : reject(e)));
  });
}

async function act(page: TestPage, headers: Record<string, string>, body: unknown = ACTION): Promise<Response> {
  return fetch(`${page.url}/ui/api/health`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** A loopback port whose connections reach `target` from `address` (another machine, as the page sees it). */
async function fromAddress(target: string, address: string): Promise<{ url: string; close(): void }> {
  const { hostname, port } = new URL(target);
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: hostname, port: Number(port), localAddress: address });
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { url, close: () => server.close() };
}

describe("the page service with sign-in local, over HTTP", { timeout: 120_000 }, () => {
  let health: HealthStandIn;
  let healthUrl: string;
  let page: TestPage;

  before(async () => {
    health = new HealthStandIn(TEST_USER_SECRET);
    healthUrl = await health.start();
    page = await startTestPage({ healthUrl, users: [ENGINEER, VIEWER, OTHER] });
  });

  after(async () => {
    await page.stop();
    await health.stop();
  });

  it("signs an engineer in with an HttpOnly, SameSite=Strict session cookie for /ui, and names them", async () => {
    const answer = await postSignIn(page.url, ENGINEER.name, ENGINEER.password);
    assert.equal(answer.status, 303);
    assert.equal(answer.headers.get("location"), "/ui/");
    const set = answer.headers.getSetCookie().find((c) => c.startsWith("fanwatch_session="));
    assert.ok(set !== undefined, "a session cookie");
    const flags = set.split(";").map((f) => f.trim());
    assert.ok(flags.includes("HttpOnly"));
    assert.ok(flags.includes("SameSite=Strict"));
    assert.ok(flags.includes("Path=/ui"));
    assert.ok(!flags.includes("Secure"), "not Secure over plain http");
    const cookie = cookiePair(answer.headers.getSetCookie(), "fanwatch_session") as string;
    const session = SessionSchema.parse(
      await (await fetch(`${page.url}/ui/api/session`, { headers: { cookie } })).json(),
    );
    assert.deepEqual(session.user, { name: ENGINEER.name, role: "engineer" });
    assert.equal(session.signIn, "local");
    assert.equal(session.canAct, true);
    assert.ok(session.csrf.length >= 32);
  });

  it("marks the session cookie Secure with PAGE_COOKIE_SECURE (a TLS proxy in front)", async () => {
    const secure = await startTestPage({ healthUrl, users: [OTHER], env: { PAGE_COOKIE_SECURE: "true" } });
    try {
      const answer = await postSignIn(secure.url, OTHER.name, OTHER.password);
      assert.equal(answer.status, 303);
      const set = answer.headers.getSetCookie().find((c) => c.startsWith("fanwatch_session=")) ?? "";
      assert.ok(
        set
          .split(";")
          .map((f) => f.trim())
          .includes("Secure"),
        set,
      );
    } finally {
      await secure.stop();
    }
  });

  it("serves /metrics on PAGE_METRICS_PORT alone when set, so a policy can keep it from the plant network", async () => {
    const separate = await startTestPage({ healthUrl, users: [OTHER], env: { PAGE_METRICS_PORT: "0" } });
    try {
      assert.notEqual(separate.service.metricsPort, separate.service.port);
      const metrics = await fetch(`http://127.0.0.1:${separate.service.metricsPort}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /fanwatch_page_streams/);
      assert.equal((await fetch(`${separate.url}/metrics`)).status, 404, "not on the page's port");
      assert.equal((await fetch(`http://127.0.0.1:${separate.service.metricsPort}/ui/`)).status, 404);
    } finally {
      await separate.stop();
    }
  });

  it("refuses a wrong password and an unknown user alike, and a form without its token", async () => {
    for (const [name, password] of [
      [OTHER.name, "not the password"],
      ["nobody", "no such user at all"],
    ] as const) {
      const answer = await postSignIn(page.url, name, password);
      assert.equal(answer.status, 401);
      assert.equal(ErrorSchema.parse(await answer.json()).code, "FANWATCH_UNAUTHENTICATED");
      assert.equal(
        answer.headers.getSetCookie().find((c) => c.startsWith("fanwatch_session=")),
        undefined,
      );
    }
    const forged = await fetch(`${page.url}/ui/signin`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ name: OTHER.name, password: OTHER.password }).toString(),
    });
    assert.equal(forged.status, 403);
    assert.equal(ErrorSchema.parse(await forged.json()).code, "FANWATCH_CSRF_REFUSED");
  });

  it("throttles a user after 5 failed sign-ins from one address: 429 with Retry-After, even with the right password", async () => {
    const name = "viktor";
    for (let i = 0; i < 5; i++) assert.equal((await postSignIn(page.url, name, `wrong guess ${i}`)).status, 401);
    const throttled = await postSignIn(page.url, name, VIEWER.password);
    assert.equal(throttled.status, 429);
    assert.equal(ErrorSchema.parse(await throttled.json()).code, "FANWATCH_TOO_MANY_ATTEMPTS");
    assert.ok(Number(throttled.headers.get("retry-after")) >= 1, "Retry-After in seconds");
    // Another user from the same address is not locked out by it.
    await signIn(page.url, ENGINEER.name, ENGINEER.password);
    // Nor is the user from another machine: whoever guessed cannot lock a named engineer out.
    const elsewhere = await fromAddress(page.url, "127.0.0.2");
    try {
      assert.equal((await postSignIn(elsewhere.url, name, VIEWER.password)).status, 303);
    } finally {
      elsewhere.close();
    }
  });

  it("passes an engineer's action to health with their signed name, whatever the body's by", async () => {
    const me = await signIn(page.url, ENGINEER.name, ENGINEER.password);
    const before = health.calls.length;
    const answer = await act(page, { cookie: me.cookie, "x-csrf-token": me.csrf });
    assert.equal(answer.status, 200);
    assert.deepEqual(((await answer.json()) as { transition: unknown }).transition, {
      event: "comment",
      by: ENGINEER.name,
    });
    const call = health.calls.slice(before).find((c) => c.method === "POST");
    assert.ok(call !== undefined, "health was called");
    assert.deepEqual(call.user, { name: ENGINEER.name, role: "engineer" });
    assert.equal((call.body as { by: string }).by, ENGINEER.name);
  });

  it("refuses an action without the CSRF token, with another's token, and from another site's page", async () => {
    const me = await signIn(page.url, ENGINEER.name, ENGINEER.password);
    const other = await signIn(page.url, OTHER.name, OTHER.password);
    const before = health.calls.length;
    const attempts: Array<Record<string, string>> = [
      { cookie: me.cookie },
      { cookie: me.cookie, "x-csrf-token": other.csrf },
      { cookie: me.cookie, "x-csrf-token": me.csrf, origin: "https://evil.example" },
      { cookie: me.cookie, "x-csrf-token": me.csrf, "sec-fetch-site": "cross-site" },
    ];
    for (const headers of attempts) {
      const answer = await act(page, headers);
      assert.equal(answer.status, 403);
      assert.equal(ErrorSchema.parse(await answer.json()).code, "FANWATCH_CSRF_REFUSED");
    }
    assert.equal(health.calls.slice(before).filter((c) => c.method === "POST").length, 0);
  });

  it("lets a viewer see but not act: canAct false, 403 FANWATCH_FORBIDDEN, health never called", async () => {
    // A page of its own: the throttling test has locked this viewer out of the first one.
    const page2 = await startTestPage({ healthUrl, users: [VIEWER] });
    try {
      const viewer = await signIn(page2.url, VIEWER.name, VIEWER.password);
      const session = SessionSchema.parse(
        await (await fetch(`${page2.url}/ui/api/session`, { headers: { cookie: viewer.cookie } })).json(),
      );
      assert.equal(session.canAct, false);
      const before = health.calls.length;
      const answer = await act(page2, { cookie: viewer.cookie, "x-csrf-token": viewer.csrf });
      assert.equal(answer.status, 403);
      assert.equal(ErrorSchema.parse(await answer.json()).code, "FANWATCH_FORBIDDEN");
      assert.equal(health.calls.slice(before).filter((c) => c.method === "POST").length, 0);
      const history = await fetch(`${page2.url}/ui/api/history?deviceID=7`, { headers: { cookie: viewer.cookie } });
      assert.equal(history.status, 200, "a viewer reads the history");
    } finally {
      await page2.stop();
    }
  });

  it("answers a wrong method on its API 405 and goes on serving", async () => {
    for (const [method, path] of [
      ["POST", "/ui/api/session"],
      ["GET", "/ui/api/health"],
      ["DELETE", "/ui/api/history"],
    ] as const) {
      const answer = await fetch(`${page.url}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) });
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.equal(ErrorSchema.parse(await answer.json()).code, "FANWATCH_METHOD_NOT_ALLOWED");
    }
    assert.equal((await fetch(`${page.url}/healthz`)).status, 200);
  });

  it("serves its documents with a content security policy: its own files only, never framed", async () => {
    const me = await signIn(page.url, ENGINEER.name, ENGINEER.password);
    for (const path of ["/ui/", "/ui/fans/7", "/ui/signin"]) {
      const answer = await fetch(`${page.url}${path}`, { headers: { cookie: me.cookie } });
      assert.equal(answer.status, 200, path);
      const csp = answer.headers.get("content-security-policy") ?? "";
      for (const directive of ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"])
        assert.ok(csp.includes(directive), `${path}: ${directive} in ${csp}`);
      assert.equal(answer.headers.get("x-frame-options"), "DENY", path);
    }
  });

  it("asks whoever is not signed in to sign in: the page redirects, the API and the stream answer 401", async () => {
    const index = await fetch(`${page.url}/ui/fans/7`, { redirect: "manual" });
    assert.equal(index.status, 303);
    assert.equal(index.headers.get("location"), `/ui/signin?next=${encodeURIComponent("/ui/fans/7")}`);
    assert.equal((await act(page, {})).status, 401);
    assert.equal((await fetch(`${page.url}/ui/api/history?deviceID=7`)).status, 401);
    const stream = await openStream(page.url);
    stream.close();
    assert.equal(stream.status, 401);
  });

  it("gives one user 4 event streams at most, and another user still gets one", async () => {
    const erika = await signIn(page.url, ENGINEER.name, ENGINEER.password);
    const otto = await signIn(page.url, OTHER.name, OTHER.password);
    const open = [];
    try {
      for (let i = 0; i < 4; i++) open.push(await openStream(page.url, { cookie: erika.cookie }));
      assert.deepEqual(
        open.map((s) => s.status),
        [200, 200, 200, 200],
      );
      const fifth = await openStream(page.url, { cookie: erika.cookie });
      open.push(fifth);
      assert.equal(fifth.status, 503);
      const others = await openStream(page.url, { cookie: otto.cookie });
      open.push(others);
      assert.equal(others.status, 200);
    } finally {
      for (const s of open) s.close();
    }
  });

  it("closes the live view of a user who signed out (checked every 30 frames)", async () => {
    const fast = await startTestPage({ healthUrl, users: [OTHER], frameIntervalMs: 20 });
    try {
      const me = await signIn(fast.url, OTHER.name, OTHER.password);
      const ended = new Promise<void>((resolve, reject) => {
        const req = http.get(`${fast.url}/ui/events`, { headers: { cookie: me.cookie } }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`stream answered ${res.statusCode}`));
          res.resume();
          res.once("close", () => resolve());
          void fetch(`${fast.url}/ui/signout`, {
            method: "POST",
            redirect: "manual",
            headers: { cookie: me.cookie, "x-csrf-token": me.csrf },
          });
        });
        req.on("error", () => resolve());
      });
      await ended;
      const again = await openStream(fast.url, { cookie: me.cookie });
      again.close();
      assert.equal(again.status, 401);
    } finally {
      await fast.stop();
    }
  });

  it("ends the session at sign-out", async () => {
    const me = await signIn(page.url, ENGINEER.name, ENGINEER.password);
    const out = await fetch(`${page.url}/ui/signout`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie: me.cookie, "x-csrf-token": me.csrf },
    });
    assert.equal(out.status, 303);
    const session = SessionSchema.parse(
      await (await fetch(`${page.url}/ui/api/session`, { headers: { cookie: me.cookie } })).json(),
    );
    assert.equal(session.user, null);
    assert.equal((await act(page, { cookie: me.cookie, "x-csrf-token": me.csrf })).status, 401);
  });

  it("takes Alertmanager's notifications only from PAGE_ALERTMANAGER_FROM (unset: nobody)", async () => {
    const answer = await fetch(`${page.url}/ui/alertmanager`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ version: "4", status: "firing", receiver: "forged", alerts: [] }),
    });
    assert.equal(answer.status, 403);
    assert.equal(ErrorSchema.parse(await answer.json()).code, "FANWATCH_FORBIDDEN");
  });

  it("answers only its own names in Host (421 otherwise), and counts sign-ins in /metrics", async () => {
    const refused = await new Promise<number>((resolve, reject) =>
      http
        .get(`${page.url}/ui/`, { headers: { host: "rebound.evil.example" } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on("error", reject),
    );
    assert.equal(refused, 421);
    const metrics = await (await fetch(`${page.url}/metrics`)).text();
    assert.match(metrics, /fanwatch_page_sign_ins_total\{outcome="success"\} [1-9]/);
    assert.match(metrics, /fanwatch_page_sign_ins_total\{outcome="throttled"\} [1-9]/);
    assert.match(metrics, /fanwatch_page_sessions [0-9]/);
  });
});

describe("the page behind an OpenID Connect proxy (a stand-in proxy)", { timeout: 60_000 }, () => {
  let health: HealthStandIn;
  let page: TestPage;
  let proxy: http.Server;
  let proxyUrl: string;

  before(async () => {
    health = new HealthStandIn(TEST_USER_SECRET);
    page = await startTestPage({
      healthUrl: await health.start(),
      env: {
        PAGE_SIGN_IN: "proxy",
        PAGE_TRUSTED_PROXIES: "127.0.0.2",
        PAGE_PROXY_ROLES: "maintenance=engineer",
      },
    });
    // The stand-in proxy: it has "signed in" whoever sends X-Stand-In-User, and forwards to the
    // page from 127.0.0.2, the trusted address, naming them as oauth2-proxy does.
    const target = new URL(page.url);
    proxy = http.createServer((req, res) => {
      const headers = {
        ...req.headers,
        "x-forwarded-user": String(req.headers["x-stand-in-user"] ?? ""),
        "x-forwarded-groups": "maintenance",
      };
      const forward = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: req.url,
          method: req.method,
          headers,
          localAddress: "127.0.0.2",
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  });

  after(async () => {
    proxy.closeAllConnections();
    proxy.close();
    await page.stop();
    await health.stop();
  });

  it("believes the user header from the trusted proxy, and the action reaches health in that name", async () => {
    const session = SessionSchema.parse(
      await (await fetch(`${proxyUrl}/ui/api/session`, { headers: { "x-stand-in-user": "petra" } })).json(),
    );
    assert.equal(session.signIn, "proxy");
    assert.deepEqual(session.user, { name: "petra", role: "engineer" });
    const answer = await fetch(`${proxyUrl}/ui/api/health`, {
      method: "POST",
      headers: { "x-stand-in-user": "petra", "x-csrf-token": session.csrf, "content-type": "application/json" },
      body: JSON.stringify(ACTION),
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(health.calls.at(-1)?.user, { name: "petra", role: "engineer" });
  });

  it("takes an OpenID Connect e-mail address as the name, and nothing that could be markup", async () => {
    const sessionOf = async (user: string) =>
      SessionSchema.parse(
        await (await fetch(`${proxyUrl}/ui/api/session`, { headers: { "x-stand-in-user": user } })).json(),
      ).user;
    const email = "ana.lopez+plant@example.com";
    assert.deepEqual(await sessionOf(email), { name: email, role: "engineer" });
    assert.equal(await sessionOf(`${"a".repeat(120)}@example.com`), null, "over 128 characters");
    assert.equal(await sessionOf("<b>ana</b>"), null);
  });

  it("ignores the same header from any other address", async () => {
    const headers = { "x-forwarded-user": "petra", "x-forwarded-groups": "maintenance" };
    const session = SessionSchema.parse(await (await fetch(`${page.url}/ui/api/session`, { headers })).json());
    assert.equal(session.user, null);
    const answer = await fetch(`${page.url}/ui/api/health`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", "x-csrf-token": "anything" },
      body: JSON.stringify(ACTION),
    });
    assert.equal(answer.status, 401);
  });
});

describe("fanwatch page, as a process", { timeout: 60_000 }, () => {
  it("starts with a users file and answers /healthz; refuses sign-in off on a non-loopback address", async () => {
    const health = new HealthStandIn(TEST_USER_SECRET);
    const healthUrl = await health.start();
    const page = await startTestPage({ healthUrl, users: [ENGINEER] }); // for its users file only
    const port = await freePort();
    const file = `${page.usersFile}-cli`;
    await writeFile(
      file,
      `${userLine(ENGINEER.name, "engineer", await hashPassword(ENGINEER.password, { N: 1024, r: 8, p: 1 }))}\n`,
    );
    const child = spawnCli(["page", "--port", String(port), "--host", "127.0.0.1"], {
      PAGE_USERS_FILE: file,
      HEALTH_URL: healthUrl,
      PAGE_USER_SECRET: TEST_USER_SECRET,
      MQTT_URL: "mqtt://127.0.0.1:1",
      LOG_LEVEL: "warn",
    });
    try {
      await waitForOutput(child, /page running/);
      const answer = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(answer.status, 200);
      assert.equal(((await answer.json()) as { signIn: string }).signIn, "local");
      const me = await signIn(`http://127.0.0.1:${port}`, ENGINEER.name, ENGINEER.password);
      assert.ok(me.csrf.length > 0);
    } finally {
      await terminate(child);
      await page.stop();
      await health.stop();
    }
    const refused = spawnCli(["page", "--sign-in", "off", "--host", "0.0.0.0"], {});
    const code = await new Promise<number | null>((resolve) => refused.once("exit", (c) => resolve(c)));
    assert.equal(code, 2);
  });
});
