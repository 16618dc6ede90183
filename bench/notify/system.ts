import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../lib/infra/net.js";
import { childPids } from "../support/process-stats.js";
import { localAlertmanagerConfig, type LocalAlertmanagerOptions } from "../../notifier/alertmanager/config.js";
import {
  startAlertmanager,
  startWebhookRecorder,
  type TestAlertmanager,
  type WebhookRecorder,
} from "../../test/support/alertmanager.js";
import { CliProcess } from "../../test/support/cli-process.js";
import { eventually } from "../../test/support/eventually.js";
import { startNats, type TestNats } from "../../test/support/nats.js";
import { HealthEventsPublisher } from "../../test/support/notifier-events.js";
import { WebhookReceiver } from "../../test/support/webhook-receiver.js";

/** Alertmanager's route intervals (localAlertmanagerConfig's `timing`). */
export type Timing = NonNullable<LocalAlertmanagerOptions["timing"]>;

export interface AlertmanagerSpec {
  /** Its webhook receiver's path at the recorder: `/<name>`. */
  name: string;
  timing: Timing;
}

export interface SystemOptions {
  /** Where the notifier's logs go (one file per start). */
  logDir: string;
  /** Each gets every alert (ALERTMANAGER_URL lists them all) and notifies its own path of the recorder. */
  alertmanagers: AlertmanagerSpec[];
  /** ALERTMANAGER_RESEND. */
  resend: string;
}

const SECRET = "bench-notify-webhook-secret-0123456789";

/**
 * Everything real: a nats-server (JetStream, file store), Debian's Alertmanager(s) on fanwatch
 * start's configuration with the given intervals, the recorder that is their webhook receiver, the
 * direct webhook's receiver, and `fanwatch notifier` as a process of its own, sending to both; plus
 * the publisher that appends transitions to FAN_HEALTH_EVENTS as health does.
 */
export class NotifySystem {
  notifier: CliProcess | undefined;
  #starts = 0;

  private constructor(
    readonly options: SystemOptions,
    readonly nats: TestNats,
    readonly publisher: HealthEventsPublisher,
    /** The direct webhook's receiver (NOTIFY_WEBHOOK_URL). */
    readonly hook: WebhookReceiver,
    /** Alertmanagers' webhook receiver: each posts to `/<its name>`. */
    readonly amHooks: WebhookRecorder,
    readonly alertmanagers: ReadonlyMap<string, TestAlertmanager>,
    readonly secretDir: string,
  ) {}

  static async start(options: SystemOptions): Promise<NotifySystem> {
    const secretDir = await mkdtemp(join(tmpdir(), "fanwatch-bench-notify-"));
    await writeFile(join(secretDir, "webhook-secret"), SECRET);
    const nats = await startNats();
    const publisher = await HealthEventsPublisher.connect(nats.url);
    const hook = await WebhookReceiver.start("/fanwatch");
    const amHooks = await startWebhookRecorder();
    const alertmanagers = new Map<string, TestAlertmanager>();
    for (const spec of options.alertmanagers)
      alertmanagers.set(
        spec.name,
        await startAlertmanager(
          localAlertmanagerConfig({ webhookUrl: `${amHooks.url}/${spec.name}`, timing: spec.timing }),
        ),
      );
    const system = new NotifySystem(options, nats, publisher, hook, amHooks, alertmanagers, secretDir);
    await system.startNotifier();
    return system;
  }

  alertmanager(name: string): TestAlertmanager {
    const am = this.alertmanagers.get(name);
    if (am === undefined) throw new Error(`no Alertmanager ${name}`);
    return am;
  }

  /**
   * `fanwatch notifier` with its default settings but ALERTMANAGER_RESEND; ready once its
   * /healthz answers 200 (NATS connected, every target's queue reading its consumer: what is
   * published from then on is sent).
   */
  async startNotifier(): Promise<void> {
    const port = await freePort();
    const n = ++this.#starts;
    const notifier = new CliProcess({
      name: "notifier",
      args: ["notifier"],
      env: {
        LOG_LEVEL: "info",
        NATS_URL: this.nats.url,
        ALERTMANAGER_URL: [...this.alertmanagers.values()].map((am) => am.url).join(","),
        NOTIFY_WEBHOOK_URL: this.hook.url,
        NOTIFY_WEBHOOK_SECRET_FILE: join(this.secretDir, "webhook-secret"),
        SECRET_MOUNT_PATH: this.secretDir,
        ALERTMANAGER_RESEND: this.options.resend,
        HEALTH_HOST: "127.0.0.1",
        NOTIFIER_PORT: String(port),
      },
      ready: /notifier running/,
      logFile: join(this.options.logDir, `notifier-${n}.log`),
    });
    await notifier.start();
    this.notifier = notifier;
    await eventually(
      "the notifier's /healthz to answer 200",
      async () =>
        (await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.status,
          () => 0,
        )) === 200,
      { timeoutMs: 60_000, paceMs: 100 },
    );
  }

  /** SIGKILL: no drain, no acknowledgement of what is in flight. */
  async killNotifier(): Promise<void> {
    await this.notifier?.close();
    this.notifier = undefined;
  }

  pids(): Record<string, number | undefined> {
    return {
      notifier: this.notifier?.pid,
      // TestNats runs the server under a shell that stops it when its input closes.
      "nats-server": childPids(this.nats.pid)[0] ?? this.nats.pid,
      ...Object.fromEntries([...this.alertmanagers].map(([name, am]) => [`alertmanager-${name}`, am.pid])),
    };
  }

  async stop(): Promise<void> {
    await this.notifier?.close().catch(() => {});
    await this.publisher.close().catch(() => {});
    // Alertmanagers' logs beside the notifier's, for the reasons behind a count.
    for (const [name, am] of this.alertmanagers)
      await writeFile(join(this.options.logDir, `alertmanager-${name}.log`), am.output()).catch(() => {});
    await Promise.all([...this.alertmanagers.values()].map((am) => am.stop().catch(() => {})));
    await this.hook.stop();
    await this.amHooks.close();
    await this.nats.stop();
    await rm(this.secretDir, { recursive: true, force: true });
  }
}
