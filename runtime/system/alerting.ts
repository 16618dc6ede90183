import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { z } from "zod";
import type { Logger } from "../../lib/infra/log.js";
import { freePort, reachableHost } from "../../lib/infra/net.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { Supervisor } from "../../lib/infra/supervisor.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import {
  ALERTMANAGER_BINARY_SETTINGS,
  findAlertmanager,
  localAlertmanagerConfig,
} from "../../notifier/alertmanager/config.js";
import { NOTIFIER_SETTINGS } from "../../notifier/config.js";
import { ServerProcess } from "./server-process.js";

/** Where `fanwatch start` keeps Alertmanager's configuration and data unless ALERTMANAGER_DATA_DIR says otherwise (gitignored). */
export const DEFAULT_ALERTMANAGER_DIR = ".fanwatch/alertmanager";

/** How `fanwatch start` routes alerts (docs/start.md). */
export const ALERTING_SETTINGS = defineSettings({
  ALERTMANAGER_URL: {
    ...NOTIFIER_SETTINGS.ALERTMANAGER_URL,
    help: "Alertmanager(s) of your own; else Debian's prometheus-alertmanager started here, else none",
    doc: "Alertmanager(s) of your own, comma-separated; else Debian's `prometheus-alertmanager` started here with fanwatch's configuration, else none (only `NOTIFY_WEBHOOK_URL`)",
  },
  ALERTMANAGER_BINARY: ALERTMANAGER_BINARY_SETTINGS.ALERTMANAGER_BINARY,
  ALERTMANAGER_DATA_DIR: {
    env: ["ALERTMANAGER_DATA_DIR"],
    help: "configuration and data of the Alertmanager started here (relative to the working directory)",
    default: DEFAULT_ALERTMANAGER_DIR,
    schema: z.string().default(DEFAULT_ALERTMANAGER_DIR),
  },
});

/** How long Alertmanager gets to bind its port. */
const ALERTMANAGER_READY_TIMEOUT_MS = 15_000;

export interface AlertmanagerProcessOptions {
  binary: string;
  port: number;
  host: string;
  configFile: string;
  storageDir: string;
  /** Lines of its log kept (tests and benchmarks keep more). @default 20 */
  keepLines?: number;
}

/** Alertmanager, one instance with clustering off, as a service (server-process.ts): ready once it listens. */
export class AlertmanagerProcess extends ServerProcess {
  readonly name = "alertmanager";
  readonly url: string;

  constructor(options: AlertmanagerProcessOptions) {
    super({
      binary: options.binary,
      args: [
        `--config.file=${options.configFile}`,
        `--storage.path=${options.storageDir}`,
        `--web.listen-address=${options.host}:${options.port}`,
        "--cluster.listen-address=",
      ],
      readyLine: /msg="Listening on"/,
      readyTimeoutMs: ALERTMANAGER_READY_TIMEOUT_MS,
      ...(options.keepLines === undefined ? {} : { keepLines: options.keepLines }),
    });
    this.url = `http://${reachableHost(options.host)}:${options.port}`;
  }
}

export interface LocalAlertingOptions {
  env: NodeJS.ProcessEnv;
  /** Where Alertmanager's notifications go on this machine: the page's receiver. */
  pageReceiverUrl: string;
  say: (line: string) => void;
  log: Logger;
}

/**
 * The Alertmanager that `fanwatch start` sends alerts to: ALERTMANAGER_URL when set; otherwise
 * Debian's prometheus-alertmanager when installed, started here with fanwatch's configuration
 * (its notifications to the page, its data in ALERTMANAGER_DATA_DIR, clustering off),
 * supervised; otherwise none, and the console says so.
 */
export class LocalAlerting extends ServiceBase {
  readonly name = "alerting";
  #urls: string[] = [];
  #server: Supervisor<AlertmanagerProcess> | undefined;

  constructor(private readonly options: LocalAlertingOptions) {
    super();
  }

  /** What the notifier is given as ALERTMANAGER_URL; empty: no Alertmanager. */
  get urls(): string[] {
    return this.#urls;
  }

  protected async onStart(): Promise<void> {
    const { env, say, log } = this.options;
    const settings = readSettings(ALERTING_SETTINGS, env);
    if (settings.ALERTMANAGER_URL.length > 0) {
      this.#urls = settings.ALERTMANAGER_URL;
      say(`alerts to Alertmanager at ${this.#urls.map(redactUrl).join(", ")} (ALERTMANAGER_URL)`);
      return;
    }
    const binary = findAlertmanager(env);
    if (binary === undefined) {
      say(
        "no Alertmanager: notifications go only to NOTIFY_WEBHOOK_URL and the page (install prometheus-alertmanager, or set ALERTMANAGER_URL)",
      );
      return;
    }
    const dir = resolve(settings.ALERTMANAGER_DATA_DIR);
    const storageDir = join(dir, "data");
    const configFile = join(dir, "alertmanager.yml");
    await mkdir(storageDir, { recursive: true });
    await writeFile(configFile, localAlertmanagerConfig({ webhookUrl: this.options.pageReceiverUrl }));
    const port = await freePort();
    const server = new Supervisor({
      create: () => new AlertmanagerProcess({ binary, port, host: "127.0.0.1", configFile, storageDir }),
      log,
      say,
    });
    await server.start();
    this.#server = server;
    this.#urls = [server.current.url];
    say(`alerts to Alertmanager: ${binary} on ${server.current.url}, configuration ${configFile}`);
  }

  protected override async onDrain(): Promise<void> {
    await this.#server?.drain();
  }

  protected async onClose(): Promise<void> {
    await this.#server?.close();
  }
}
