import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startHealthServer, type Health, type HealthServer } from "../lib/infra/health-server.js";
import type { Logger } from "../lib/infra/log.js";
import { systemClock } from "../lib/infra/retry.js";
import { ServiceBase } from "../lib/infra/service.js";
import { HEALTH_EVENTS_STREAM } from "../lib/nats/health-events.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import { AlertmanagerTarget } from "./alertmanager/target.js";
import type { NotifierConfig } from "./config.js";
import { NotifierMetrics } from "./metrics.js";
import { natsRetryDelay } from "./nats-retry.js";
import { DeliveryQueue } from "./queue.js";
import type { TargetsRecord } from "./records.js";
import { StreamKeeper } from "./stream-keeper.js";
import { targetsSubject } from "./streams.js";
import type { DeliveryTarget } from "./target.js";
import { WebhookTarget } from "./webhook.js";

export interface NotifierOptions {
  /** JetStream's ack wait on the queues' consumers. @default DEFAULT_ACK_WAIT_MS (queue.ts) */
  ackWaitMs?: number;
  /** How often the pending metrics are read. @default 5 s */
  refreshMs?: number;
}

/** How long one NATS request (a publish, a consumer's info) may take before it counts as NATS away. */
const NATS_TIMEOUT_MS = 5_000;

/**
 * `fanwatch notifier`: health's transitions (the JetStream stream FAN_HEALTH_EVENTS) to people,
 * through one webhook target per NOTIFY_WEBHOOK_URL entry and one Alertmanager target for all of
 * ALERTMANAGER_URL, each fed by its own durable queue (queue.ts). Serves /healthz (ready once NATS
 * is connected and every queue reads its consumers), /livez and /metrics.
 *
 * NATS is waited for: start() resolves once the health server listens, and the connection, the
 * streams, the consumers and the targets follow whenever NATS answers; after that the connection
 * reconnects without end. An outage delays notifications and loses none: nothing is acknowledged
 * that a target did not take.
 */
export class Notifier extends ServiceBase {
  readonly name = "notifier";
  readonly metrics = new NotifierMetrics();
  readonly #config: NotifierConfig;
  readonly #log: Logger;
  readonly #options: NotifierOptions;
  readonly #webhooks: WebhookTarget[];
  readonly #stop = new AbortController();
  #server: HealthServer | undefined;
  #nc: NatsConnection | undefined;
  #connected = false;
  #alertmanager: AlertmanagerTarget | undefined;
  #queues: DeliveryQueue[] = [];
  #setup: Promise<void> | undefined;

  constructor(config: NotifierConfig, log: Logger, options: NotifierOptions = {}) {
    super();
    this.#config = config;
    this.#log = log;
    this.#options = options;
    const secret = config.webhookSecret ?? "";
    // A URL listed twice is one target: two queues on one consumer would only race.
    this.#webhooks = [...new Set(config.webhookUrls)].map(
      (url) => new WebhookTarget({ url, secret, timeoutMs: config.timeoutMs }),
    );
  }

  get port(): number {
    return this.#server?.port ?? 0;
  }

  /** NATS connected, and every queue reading its consumers (all of them made). */
  get running(): boolean {
    return (
      this.#connected &&
      this.#queues.length === this.targets.length &&
      this.#queues.every((q) => q.running) &&
      !this.stopping
    );
  }

  /** The targets' ids and what they send to (URLs without credentials), in the order of the settings. */
  get targets(): Array<{ id: string; description: string }> {
    const list = this.#webhooks.map(({ id, description }) => ({ id, description }));
    if (this.#config.alertmanagerUrls.length > 0)
      list.push({ id: "alertmanager", description: describeAlertmanagers(this.#config.alertmanagerUrls) });
    return list;
  }

  protected async onStart(): Promise<void> {
    const { port, healthHost, site, natsUrl } = this.#config;
    for (const { id } of this.targets) this.metrics.addTarget(id);
    this.metrics.natsUp.set(0);
    this.#server = await startHealthServer({ port, host: healthHost }, () => this.#health(), this.metrics.registry);
    const targets = this.targets;
    if (targets.length === 0)
      this.#log.warn(
        { event: "started", site, nats: redactUrl(natsUrl), targets: [] },
        "no target: set NOTIFY_WEBHOOK_URL or ALERTMANAGER_URL; the notifier reads nothing and sends nothing",
      );
    else
      this.#log.info(
        { event: "started", site, nats: redactUrl(natsUrl), targets },
        `sending site ${site}'s transitions to ${targets.map((t) => `${t.description} (${t.id})`).join(", ")}`,
      );
    this.#setup = this.#connectAndRun().catch((error: unknown) => {
      // A bug: said, and the notifier ends (its /livez goes on; the platform restarts it).
      this.#log.error({ event: "setup_crashed", err: error }, "the notifier could not start its queues");
      this.ended(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Stops pulling, lets each target's delivery in flight end, then closes. */
  protected override async onDrain(): Promise<void> {
    this.#stop.abort(new Error("the notifier is stopping"));
    await this.#setup;
    await Promise.all(this.#queues.map((q) => q.drain()));
  }

  protected async onClose(): Promise<void> {
    this.#stop.abort(new Error("the notifier is stopping"));
    await Promise.all(this.#queues.map((q) => q.close()));
    for (const webhook of this.#webhooks) webhook.close();
    await this.#alertmanager
      ?.close()
      .catch((error: unknown) =>
        this.#log.warn(
          { event: "close_failed", target: "alertmanager", err: (error as Error).message },
          "closing the Alertmanager target failed",
        ),
      );
    await this.#setup?.catch(() => {});
    // A delivery cut short by its target's close hands its message back (nak) before the connection goes.
    await withTimeout(Promise.all(this.#queues.map((q) => q.idle)), 2_000).catch(() => {});
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) {
      // Flushes the last acknowledgements; a connection that is away has nothing to flush.
      if (this.#connected) await withTimeout(nc.drain(), 2_000).catch(() => {});
      await nc.close().catch(() => {});
    }
    this.#connected = false;
    await this.#server?.close();
    this.#log.info({ event: "stopped" }, "notifier stopped");
  }

  /**
   * Connects (waiting for NATS as long as it takes), makes the streams, starts the targets and their
   * queues; each step is tried again until it works or the notifier stops. Never rejects. Once the
   * notifier stops (close() may come at any moment of this), nothing more is made or started: the
   * check follows every wait.
   */
  async #connectAndRun(): Promise<void> {
    const nc = await this.#connect();
    if (nc === undefined || this.stopping) return; // stopped first
    const { site, pageUrl, maxAgeMs, retryMaxMs, replicas } = this.#config;
    const targets: DeliveryTarget[] = [...this.#webhooks];
    let streams: StreamKeeper;
    for (let attempt = 1; ; attempt++) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: NATS_TIMEOUT_MS });
        if (this.stopping) return;
        streams = new StreamKeeper(jsm, replicas, this.#log);
        await streams.ensure(() => !this.stopping);
        if (this.stopping) return;
        const alertmanager = await this.#startAlertmanager(nc);
        if (this.stopping) return;
        if (alertmanager !== undefined) targets.push(alertmanager);
        break;
      } catch (error) {
        if (this.stopping) return;
        const delay = natsRetryDelay(attempt);
        this.#log.warn(
          { event: "setup_failed", err: (error as Error).message, retryInMs: Math.round(delay) },
          "cannot open the streams or start the Alertmanager target yet (is JetStream enabled?); retrying",
        );
        if (!(await this.#pause(delay))) return;
      }
    }
    const js = jetstream(nc, { timeout: NATS_TIMEOUT_MS });
    await this.#announce(js);
    for (const target of targets) {
      if (this.stopping) return;
      const queue = new DeliveryQueue({
        target,
        js,
        jsm: streams.jsm,
        streams,
        site,
        pageUrl,
        maxAgeMs,
        retryMaxMs,
        metrics: this.metrics,
        log: this.#log,
        ...(this.#options.ackWaitMs === undefined ? {} : { ackWaitMs: this.#options.ackWaitMs }),
        ...(this.#options.refreshMs === undefined ? {} : { refreshMs: this.#options.refreshMs }),
      });
      this.#queues.push(queue);
      await queue.start();
    }
    if (this.stopping) return;
    this.#log.info(
      { event: "queues_started", targets: targets.map((t) => t.id) },
      `reading health's transitions (${HEALTH_EVENTS_STREAM}) for ${targets.length} target(s)`,
    );
  }

  /**
   * Says in the notifier's stream which targets this site's notifier now sends to, so that
   * `fanwatch notifications list` marks the queues of others as orphans. Not said (NATS away
   * this moment) costs only that mark.
   */
  async #announce(js: JetStreamClient): Promise<void> {
    const record: TargetsRecord = { targets: this.targets, startedAt: new Date().toISOString() };
    try {
      await js.publish(targetsSubject(this.#config.site), JSON.stringify(record));
    } catch (error) {
      this.#log.warn(
        { event: "targets_unannounced", err: (error as Error).message },
        "cannot record this notifier's targets: fanwatch notifications list may not mark orphaned queues",
      );
    }
  }

  /**
   * The Alertmanager target, started, when ALERTMANAGER_URL names any; one that failed to start, or
   * whose start ended after the notifier began to stop, is closed.
   */
  async #startAlertmanager(nc: NatsConnection): Promise<AlertmanagerTarget | undefined> {
    const { alertmanagerUrls, alertmanagerResendMs, timeoutMs, site, replicas } = this.#config;
    if (alertmanagerUrls.length === 0) return undefined;
    const alertmanager = new AlertmanagerTarget({
      urls: alertmanagerUrls,
      site,
      resendMs: alertmanagerResendMs,
      timeoutMs,
      nc,
      log: this.#log,
      replicas,
      registry: this.metrics.registry,
    });
    // Set before it starts, so that a close() meanwhile closes it at once.
    this.#alertmanager = alertmanager;
    try {
      await alertmanager.start();
    } catch (error) {
      this.#alertmanager = undefined;
      await alertmanager.close().catch(() => {});
      throw error;
    }
    if (this.stopping) {
      await alertmanager.close().catch(() => {});
      return undefined;
    }
    return alertmanager;
  }

  async #connect(): Promise<NatsConnection | undefined> {
    const url = this.#config.natsUrl;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const nc = await connect({
          servers: url,
          name: `fanwatch-notifier-${process.pid}`,
          // An outage delays notifications: the connection is never given up.
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1_000,
          timeout: NATS_TIMEOUT_MS,
        });
        if (this.stopping) {
          await nc.close();
          return undefined;
        }
        this.#nc = nc;
        this.#connected = true;
        this.metrics.natsUp.set(1);
        this.#log.info({ event: "nats_connected", nats: redactUrl(url) }, `connected to NATS at ${redactUrl(url)}`);
        this.#follow(nc);
        return nc;
      } catch (error) {
        const delay = natsRetryDelay(attempt);
        this.#log.warn(
          {
            event: "nats_unavailable",
            nats: redactUrl(url),
            err: (error as Error).message,
            retryInMs: Math.round(delay),
          },
          `cannot reach NATS at ${redactUrl(url)} (NATS_URL) yet; notifications wait until it answers`,
        );
        if (!(await this.#pause(delay))) return undefined;
      }
    }
    return undefined;
  }

  /** Says when NATS goes away and comes back. */
  #follow(nc: NatsConnection): void {
    const url = redactUrl(this.#config.natsUrl);
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") {
          this.#connected = false;
          this.metrics.natsUp.set(0);
          this.#log.warn(
            { event: "nats_disconnected", nats: url },
            "NATS unreachable: notifications wait until it is back",
          );
        } else if (status.type === "reconnect") {
          this.#connected = true;
          this.metrics.natsUp.set(1);
          this.#log.info({ event: "nats_reconnected", nats: url }, "NATS reachable again");
        }
      }
    })();
    void nc.closed().then((error) => {
      this.#connected = false;
      this.metrics.natsUp.set(0);
      if (!this.stopping) this.#log.error({ event: "nats_closed", err: error?.message }, "the NATS connection closed");
    });
  }

  /** Waits `ms`; false when the notifier stopped meanwhile. */
  async #pause(ms: number): Promise<boolean> {
    try {
      await systemClock.sleep(ms, this.#stop.signal);
      return true;
    } catch {
      return false;
    }
  }

  #health(): Health {
    const queues = this.#queues.map((q) => ({ target: q.target.id, running: q.running }));
    return {
      healthy: this.running,
      details: {
        site: this.#config.site,
        nats: this.#connected ? "connected" : this.#nc === undefined ? "connecting" : "disconnected",
        targets: this.targets.map((t) => ({
          ...t,
          running: queues.find((q) => q.target === t.id)?.running ?? false,
        })),
      },
    };
  }
}

/** The Alertmanagers as logs show them: scheme and host of each, no credentials. */
function describeAlertmanagers(urls: readonly string[]): string {
  return `Alertmanager at ${urls.map((u) => new URL(u).origin).join(", ")}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
