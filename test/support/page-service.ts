import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_TOPICS } from "../../lib/infra/config.js";
import { createLogger } from "../../lib/infra/log.js";
import type { Role } from "../../lib/infra/signed-user.js";
import type { MqttSettings } from "../../lib/mqtt/settings.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import { hashPassword } from "../../page/access/password.js";
import { userLine } from "../../page/access/users.js";
import { readPageConfig } from "../../page/config.js";
import type { OpenedModels } from "../../page/models-link.js";
import { PageService } from "../../page/page-service.js";

/** The secret the test page and its health share. */
export const TEST_USER_SECRET = "a-test-secret-shared-by-page-and-health-0123456789";

export interface TestUser {
  name: string;
  role: Role;
  password: string;
}

export interface TestPageOptions {
  /** The health function the page calls: a HealthStandIn's URL, or a real gateway's `/function/health`. */
  healthUrl: string;
  users?: TestUser[];
  /** More page variables (PAGE_SIGN_IN, PAGE_TRUSTED_PROXIES, …); the test's win over the defaults here. */
  env?: NodeJS.ProcessEnv;
  /** The broker the fleet view reads; none by default. */
  mqtt?: MqttSettings;
  /** Between two frames of the event streams. @default 1000 */
  frameIntervalMs?: number;
  /** The fan registry the page counts from and its admins manage; none by default. */
  registry?: FanRegistry;
  /** Opens the model registry the Models panel reads; none by default (the panel says there is none). */
  openModels?: () => Promise<OpenedModels>;
}

export interface TestPage {
  url: string;
  service: PageService;
  usersFile: string;
  stop(): Promise<void>;
}

/**
 * The page service in this process, as `fanwatch page` runs it: sign-in local with `users` (their
 * hashes at a low scrypt cost, so that tests do not wait on it), on 127.0.0.1 at a free port,
 * calling `healthUrl` with the user signed with TEST_USER_SECRET.
 */
export async function startTestPage(options: TestPageOptions): Promise<TestPage> {
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-page-"));
  const usersFile = join(dir, "users");
  const lines = await Promise.all(
    (options.users ?? []).map(async (u) =>
      userLine(u.name, u.role, await hashPassword(u.password, { N: 1024, r: 8, p: 1 })),
    ),
  );
  await writeFile(usersFile, lines.join("\n") + "\n", { mode: 0o600 });
  const config = readPageConfig({
    PAGE_SIGN_IN: "local",
    PAGE_USERS_FILE: usersFile,
    PAGE_HOST: "127.0.0.1",
    PAGE_PORT: "0",
    HEALTH_URL: options.healthUrl,
    PAGE_USER_SECRET: TEST_USER_SECRET,
    SECRET_MOUNT_PATH: dir,
    ...options.env,
  });
  const service = new PageService({
    config,
    topics: DEFAULT_TOPICS,
    mqtt: options.mqtt,
    log: createLogger("page-test", "silent"),
    ...(options.frameIntervalMs === undefined ? {} : { frameIntervalMs: options.frameIntervalMs }),
    registry: options.registry,
    openModels: options.openModels,
  });
  await service.start();
  return {
    url: `http://127.0.0.1:${service.port}`,
    service,
    usersFile,
    stop: async () => {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A signed-in browser's state: its session cookie and CSRF token. */
export interface SignedIn {
  cookie: string;
  csrf: string;
}

/** Signs in through the form as a browser does: GET the form (its token and cookie), POST it, read the session. */
export async function signIn(pageUrl: string, name: string, password: string): Promise<SignedIn> {
  const answer = await postSignIn(pageUrl, name, password);
  if (answer.status !== 303) throw new Error(`sign-in as ${name} answered ${answer.status}: ${await answer.text()}`);
  const cookie = cookiePair(answer.headers.getSetCookie(), "fanwatch_session");
  if (cookie === undefined) throw new Error("sign-in set no session cookie");
  const session = (await (await fetch(`${pageUrl}/ui/api/session`, { headers: { cookie } })).json()) as {
    csrf: string;
  };
  return { cookie, csrf: session.csrf };
}

/** POSTs the sign-in form with a fresh form token, as a browser on the page does; the answer as it is. */
export async function postSignIn(
  pageUrl: string,
  name: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const form = await fetch(`${pageUrl}/ui/signin`);
  const html = await form.text();
  const token = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? "";
  const formCookie = cookiePair(form.headers.getSetCookie(), "fanwatch_signin") ?? "";
  return fetch(`${pageUrl}/ui/signin`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: formCookie, ...headers },
    body: new URLSearchParams({ name, password, csrf: token, next: "/ui/" }).toString(),
  });
}

/** `name=value` of the Set-Cookie of that name. */
export function cookiePair(setCookies: string[], name: string): string | undefined {
  return setCookies.map((c) => c.split(";")[0] ?? "").find((pair) => pair.startsWith(`${name}=`));
}
