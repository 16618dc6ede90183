import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { freePort } from "../../lib/infra/net.js";
import { findAlertmanager } from "../../notifier/alertmanager/config.js";
import { AlertmanagerProcess } from "../../runtime/system/alerting.js";
import { REPO_ROOT } from "./paths.js";

/** An alert as GET /api/v2/alerts lists it. */
export interface ListedAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: "active" | "suppressed" | "unprocessed"; silencedBy: string[]; inhibitedBy: string[] };
}

/** A silence as GET /api/v2/silences lists it. */
export interface ListedSilence {
  id: string;
  status: { state: "active" | "pending" | "expired" };
  comment: string;
  createdBy: string;
  startsAt: string;
  endsAt: string;
  matchers: Array<{ name: string; value: string; isRegex: boolean; isEqual?: boolean }>;
}

export interface TestAlertmanager {
  url: string;
  port: number;
  /** Its storage (silences, notification log), kept across halt() and restart(). */
  storageDir: string;
  readonly pid: number | undefined;
  alerts(): Promise<ListedAlert[]>;
  silences(): Promise<ListedSilence[]>;
  /** The sum of a metric's samples on /metrics whose labels include `labels` (0 when there are none). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** What it printed lately (its log, the last 5,000 lines of the instance running now). */
  output(): string;
  /** Stops it (SIGTERM: it writes its notification log and silences to storage) and keeps the storage. */
  halt(): Promise<void>;
  /** Starts it again on the same port with the same storage (halting it first if it runs). */
  restart(): Promise<void>;
  /** Stops it and deletes its folder. */
  stop(): Promise<void>;
}

/**
 * Debian's prometheus-alertmanager on a free loopback port with `config` (YAML text), a temporary
 * storage folder and clustering off (runtime/system/alerting.ts's AlertmanagerProcess, as
 * `fanwatch start` runs it).
 */
export async function startAlertmanager(config: string): Promise<TestAlertmanager> {
  const binary = findAlertmanager();
  if (binary === undefined)
    throw new Error(
      "Alertmanager is missing: apt-get install -y prometheus-alertmanager (or set ALERTMANAGER_BINARY to its path)",
    );
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-alertmanager-"));
  const port = await freePort();
  const configFile = join(dir, "alertmanager.yml");
  const storageDir = join(dir, "data");
  await writeFile(configFile, config);
  const url = `http://127.0.0.1:${port}`;
  const launch = async (): Promise<AlertmanagerProcess> => {
    const server = new AlertmanagerProcess({
      binary,
      port,
      host: "127.0.0.1",
      configFile,
      storageDir,
      keepLines: 5_000,
    });
    await server.start();
    return server;
  };
  let server: AlertmanagerProcess | undefined = await launch().catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  const get = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`);
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
    return (await response.json()) as T;
  };
  return {
    url,
    port,
    storageDir,
    get pid() {
      return server?.pid;
    },
    alerts: () => get<ListedAlert[]>("/api/v2/alerts"),
    silences: () => get<ListedSilence[]>("/api/v2/silences"),
    async metric(name, labels = {}) {
      const text = await (await fetch(`${url}/metrics`)).text();
      let sum = 0;
      for (const line of text.split("\n")) {
        const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
        if (match?.[1] !== name) continue;
        const set = match[2] ?? "";
        if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(match[3]);
      }
      return sum;
    },
    output: () => server?.output() ?? "",
    async halt() {
      await server?.drain();
      server = undefined;
    },
    async restart() {
      await server?.drain();
      server = undefined;
      server = await launch();
    },
    async stop() {
      await server?.drain();
      server = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestTiming {
  groupWait: string;
  groupInterval: string;
  repeatInterval: string;
  /** The paging route's own repeat_interval. */
  pagingRepeatInterval: string;
}

export interface TestReceivers {
  /** Each receiver's webhook goes to `${webhookBase}/${receiver name}`. */
  webhookBase: string;
  /** Sent as the webhooks' Bearer token (the shipped credentials_file). */
  tokenFile: string;
  smtp: { smarthost: string; username: string; passwordFile: string };
}

const SHIPPED = join(REPO_ROOT, "deploy/alertmanager/alertmanager.yml");

interface ShippedConfig {
  global: Record<string, unknown>;
  route: Record<string, unknown> & { routes?: Array<Record<string, unknown>> };
  receivers: Array<{
    name: string;
    email_configs?: Array<Record<string, unknown>>;
    webhook_configs?: Array<{ url: string; http_config?: { authorization?: { credentials_file?: string } } }>;
  }>;
}

/**
 * deploy/alertmanager/alertmanager.yml as shipped, its routes, receivers, templates and inhibition
 * kept, with the mail server, the webhooks' URLs, the secrets' files and the intervals swapped for
 * the test's. Throws when a setting it swaps is missing or a cluster path is left, so that a change
 * to the shipped file cannot silently stop being exercised.
 */
export async function shippedConfigForTest(receivers: TestReceivers, timing: TestTiming): Promise<string> {
  const config = parse(await readFile(SHIPPED, "utf8")) as ShippedConfig;
  const need = (ok: boolean, what: string) => {
    if (!ok)
      throw new Error(
        `deploy/alertmanager/alertmanager.yml no longer has ${what}: update test/support/alertmanager.ts`,
      );
  };
  for (const key of ["smtp_smarthost", "smtp_auth_username", "smtp_auth_password_file", "smtp_require_tls"])
    need(key in config.global, `global.${key}`);
  Object.assign(config.global, {
    smtp_smarthost: receivers.smtp.smarthost,
    smtp_auth_username: receivers.smtp.username,
    smtp_auth_password_file: receivers.smtp.passwordFile,
    // The test's server offers no STARTTLS; Go's client still sends PLAIN credentials to 127.0.0.1 only.
    smtp_require_tls: false,
  });
  need(
    ["group_wait", "group_interval", "repeat_interval"].every((k) => k in config.route),
    "the route's intervals",
  );
  Object.assign(config.route, {
    group_wait: timing.groupWait,
    group_interval: timing.groupInterval,
    repeat_interval: timing.repeatInterval,
  });
  for (const route of config.route.routes ?? []) {
    if ("repeat_interval" in route) route.repeat_interval = timing.pagingRepeatInterval;
    // A route's own waits (the platform's) as the root's.
    if ("group_wait" in route) route.group_wait = timing.groupWait;
    if ("group_interval" in route) route.group_interval = timing.groupInterval;
  }
  need(
    config.receivers.some((r) => (r.webhook_configs ?? []).length > 0),
    "a webhook receiver",
  );
  need(
    config.receivers.some((r) => (r.email_configs ?? []).length > 0),
    "an e-mail receiver",
  );
  for (const receiver of config.receivers)
    for (const webhook of receiver.webhook_configs ?? []) {
      webhook.url = `${receivers.webhookBase}/${receiver.name}`;
      if (webhook.http_config?.authorization?.credentials_file !== undefined)
        webhook.http_config.authorization.credentials_file = receivers.tokenFile;
    }
  const text = stringify(config);
  const left = /\/etc\/alertmanager\/\S*/.exec(text);
  need(left === null, `no cluster path left (found ${left?.[0]})`);
  return text;
}

/** One webhook call of Alertmanager's (its JSON, version 4). */
export interface AlertmanagerWebhook {
  /** The path it was sent to: the receiver's name with the recorder's base. */
  path: string;
  /** When it arrived (Date.now()). */
  at: number;
  authorization: string | undefined;
  body: {
    receiver: string;
    status: "firing" | "resolved";
    alerts: Array<{
      status: "firing" | "resolved";
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }>;
    groupLabels: Record<string, string>;
    commonLabels: Record<string, string>;
  };
}

export interface WebhookRecorder {
  url: string;
  received: AlertmanagerWebhook[];
  close(): Promise<void>;
}

/** A test HTTP server that answers 200 to every POST and keeps Alertmanager's webhook bodies. */
export async function startWebhookRecorder(): Promise<WebhookRecorder> {
  const received: AlertmanagerWebhook[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        received.push({
          path: req.url ?? "",
          at: Date.now(),
          authorization: req.headers.authorization,
          body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as AlertmanagerWebhook["body"],
        });
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
