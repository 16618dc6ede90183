import { isDeepStrictEqual } from "node:util";
import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { NOTE_EVENTS } from "../../lib/domain/health.js";
import { HttpStatusError } from "../../lib/errors.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import type { Logger } from "../../lib/infra/log.js";
import { isRetryableStatus } from "../../lib/infra/retry.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { DeliveryError, type DeliveryTarget, type Notification } from "../target.js";
import { applyTransition } from "./alerts.js";
import { AlertmanagerApi } from "./api.js";
import { AlertmanagerMetrics } from "./metrics.js";
import { ALERTS_BUCKET, AlertStore, stateKey, type StoredFanAlerts } from "./store.js";
import { UrlSync, type UrlStatus } from "./sync.js";

export interface AlertmanagerTargetOptions {
  /** ALERTMANAGER_URL: every one gets every alert and silence. */
  urls: string[];
  site: string;
  /** ALERTMANAGER_RESEND: open alerts are sent again this often. */
  resendMs: number;
  /** NOTIFY_TIMEOUT: one request. */
  timeoutMs: number;
  /** Where the target keeps its state (its own KV bucket). */
  nc: NatsConnection;
  log: Logger;
  /** The state bucket. @default "fan_alerts" */
  bucket?: string;
  /** Copies of the bucket in a NATS cluster. @default 1 */
  replicas?: number;
  /** An alert that ended is sent (with its endsAt) in this many more resends. @default 5 */
  keepEndedRounds?: number;
  /** How far ahead an acknowledgement's silence reaches; renewed by the resend while the episode is open. @default the larger of 1 h and 10 resends */
  ackSilenceMs?: number;
  /** A fan's state is pushed a second time this long after its transition (below). @default the smaller of 2 s and resendMs */
  followUpMs?: number;
  /**
   * Where its metrics go (fanwatch_alertmanager_up{url}, _push_failures_total{url}, _open_alerts):
   * the notifier's, served on its /metrics. @default a registry of its own
   */
  registry?: Registry;
  now?: () => number;
}

/**
 * Health's transitions as Prometheus Alertmanager alerts and silences (docs/alertmanager.md).
 *
 * deliver() applies the transition to the fan's wanted state (alerts.ts), writes it to the
 * target's NATS bucket (so a restarted notifier, or the other replica, knows what is open), and
 * resolves once at least one Alertmanager took it; an Alertmanager that did not is brought up to
 * date by the resend, which sends every open alert and every recently ended one to every URL and
 * reconciles the silences, every `resendMs`: well within Alertmanager's resolve_timeout, after
 * which an alert not sent again would resolve by itself.
 */
export class AlertmanagerTarget implements DeliveryTarget {
  readonly id = "alertmanager";
  /** Alerts are state: a transition older than NOTIFY_MAX_AGE still ends or opens what it says. */
  readonly appliesState = true;
  readonly description: string;
  readonly #http = new HttpClient({ maxSockets: 4 });
  readonly #store: AlertStore;
  readonly #syncs: UrlSync[];
  readonly #now: () => number;
  readonly #keepEndedMs: number;
  readonly #followUpMs: number;
  readonly #metrics: AlertmanagerMetrics;
  #started = false;
  #starting: Promise<void> | undefined;
  #closed = false;
  #resendTimer: NodeJS.Timeout | undefined;
  #followUpTimer: NodeJS.Timeout | undefined;
  readonly #followUps = new Set<string>();
  #followUpList = false;
  /** Alertmanagers whose last resend failed: said once at warn, again at info when they are back. */
  readonly #failing = new Set<string>();
  /** Transitions are applied one at a time: deliver() is called in stream order, but nothing stops two calls. */
  #writing: Promise<unknown> = Promise.resolve();

  constructor(readonly options: AlertmanagerTargetOptions) {
    if (options.urls.length === 0) throw new TypeError("the Alertmanager target needs at least one URL");
    this.description = `Alertmanager at ${options.urls.map((u) => redactUrl(u).replace(/\/$/, "")).join(", ")}`;
    this.#now = options.now ?? Date.now;
    this.#keepEndedMs = (options.keepEndedRounds ?? 5) * options.resendMs;
    this.#followUpMs = options.followUpMs ?? Math.min(2_000, options.resendMs);
    this.#store = new AlertStore(options.nc, {
      bucket: options.bucket ?? ALERTS_BUCKET,
      site: options.site,
      replicas: options.replicas ?? 1,
      timeoutMs: options.timeoutMs,
      log: options.log,
    });
    const source = {
      fan: (key: string) => this.#store.get(key)?.state,
      fans: () => [...this.#store.fans()].map((f) => f.state),
    };
    this.#metrics = AlertmanagerMetrics.for(options.registry ?? new Registry());
    this.#metrics.countOpen = () => {
      let open = 0;
      for (const fan of this.#store.fans()) open += fan.state.open.length;
      return open;
    };
    this.#syncs = options.urls.map((url) => {
      const api = new AlertmanagerApi(url, this.#http, options.timeoutMs);
      this.#metrics.addAlertmanager(api.name); // the URL without credentials
      return new UrlSync(api, source, {
        site: options.site,
        keepEndedMs: this.#keepEndedMs,
        openEndedSilenceMs: options.ackSilenceMs ?? Math.max(3_600_000, 10 * options.resendMs),
        log: options.log,
        now: this.#now,
        onRound: (ok) => this.#metrics.pushed(api.name, ok),
      });
    });
  }

  /** The registry its metrics are in (the one given, else its own). */
  get registry(): Registry {
    return this.#metrics.registry;
  }

  /**
   * Opens its state (rejects when NATS cannot), sends it to every Alertmanager, and does so again
   * every resendMs. Closed while it starts, it resolves having started nothing (no timer is left to
   * keep the process alive).
   */
  start(): Promise<void> {
    this.#starting ??= this.#start().catch((error: unknown) => {
      this.#starting = undefined; // a later start() tries again
      throw error;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#closed) return;
    const { log, site } = this.options;
    try {
      await this.#store.open();
    } catch (error) {
      if (this.#closed) return; // closing failed what was under way: nothing to report
      throw new Error(
        `the Alertmanager target cannot open its state bucket ${this.options.bucket ?? ALERTS_BUCKET}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (this.#closed) return;
    this.#started = true;
    const fans = [...this.#store.fans()].length;
    log.info(
      { event: "alertmanager_target_ready", alertmanagers: this.#syncs.map((s) => s.api.name), site, fans },
      `alerts of site ${site} to ${this.description} (${fans} fans known), sent again every ${this.options.resendMs} ms`,
    );
    this.#resend();
    // Unreferenced: the notifier's connections and server are what keep the process alive, not this.
    this.#resendTimer = setInterval(() => this.#resend(), this.options.resendMs).unref();
  }

  async deliver(notification: Notification): Promise<void | "skipped"> {
    if (!this.#started || this.#closed)
      throw new DeliveryError(`the Alertmanager target is ${this.#closed ? "closed" : "not started"}`, true);
    const t = notification.transition;
    if (t.site !== this.options.site)
      throw new DeliveryError(
        `a transition of site "${t.site}" reached the Alertmanager target of site "${this.options.site}"`,
        false,
      );
    // Comments, assignees and findings raise, end and silence nothing: not alerts.
    if (NOTE_EVENTS.has(t.event)) return "skipped";
    const key = stateKey(t.site, t.deviceID);
    const recorded = this.#writing.then(() => this.#record(key, notification));
    this.#writing = recorded.catch(() => {});
    const silencesChanged = await recorded;
    await this.#pushEverywhere(key, silencesChanged);
    this.#followUp(key, silencesChanged);
  }

  /** Per Alertmanager: whole resends done, the last success and the last error. */
  status(): UrlStatus[] {
    return this.#syncs.map((s) => ({ ...s.status }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#resendTimer);
    clearTimeout(this.#followUpTimer);
    this.#http.close(); // what is in flight fails now; deliver() rejects and the queue retries
    await Promise.all(this.#syncs.map((s) => s.idle()));
    this.#store.close();
  }

  /**
   * The transition applied to the fan's state and written, compare-and-set, before anything is
   * sent. Resolves to whether the fan's silences may have changed (also when the transition was
   * applied before: the earlier attempt's push may not have happened).
   */
  async #record(key: string, notification: Notification): Promise<boolean> {
    let stored: StoredFanAlerts | undefined = this.#store.get(key);
    let lastError: unknown;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const next = applyTransition(stored?.state, notification, { now: this.#now(), keepEndedMs: this.#keepEndedMs });
      if (next === stored?.state) return true; // applied before: only the push is left to do
      try {
        await this.#store.write(key, next, stored?.revision);
        return !isDeepStrictEqual(stored?.state.silences ?? [], next.silences);
      } catch (error) {
        // Someone else wrote the fan (the other notifier replica), or NATS failed: read, then try again.
        lastError = error;
        try {
          stored = await this.#store.read(key);
        } catch (readError) {
          lastError = readError;
          break;
        }
      }
    }
    throw new DeliveryError(
      `cannot record the transition in the Alertmanager state bucket: ${(lastError as Error).message}`,
      true,
      { cause: lastError },
    );
  }

  /** Resolves once one Alertmanager took the fan's state; the others catch up at the next resend. */
  async #pushEverywhere(key: string, listSilences: boolean): Promise<void> {
    try {
      await Promise.any(
        this.#syncs.map((s) =>
          s.push([key], { listSilences }).catch((error: unknown) => {
            this.options.log.warn(
              { event: "alertmanager_push_failed", alertmanager: s.api.name, err: (error as Error).message },
              `${s.api.name} did not take the change; the resend brings it up to date`,
            );
            throw error;
          }),
        ),
      );
    } catch (error) {
      const errors = error instanceof AggregateError ? (error.errors as unknown[]) : [error];
      // Only when every Alertmanager refused it as bad (4xx) is trying again pointless.
      const retryable = !errors.every((e) => e instanceof HttpStatusError && !isRetryableStatus(e.status));
      throw new DeliveryError(
        `no Alertmanager took the change: ${errors.map((e) => (e as Error).message).join("; ")}`,
        retryable,
        { cause: error },
      );
    }
  }

  /**
   * Pushes the fan once more a moment later. With two notifier replicas, the other one's resend may
   * have read the fan before this transition and reach an Alertmanager after it, re-opening an
   * alert this one just resolved; the second push puts it right before a group_interval passes.
   */
  #followUp(key: string, listSilences: boolean): void {
    if (this.#closed) return;
    this.#followUps.add(key);
    this.#followUpList ||= listSilences;
    this.#followUpTimer ??= setTimeout(() => {
      this.#followUpTimer = undefined;
      const keys = [...this.#followUps];
      const listSilences = this.#followUpList;
      this.#followUps.clear();
      this.#followUpList = false;
      if (this.#closed) return;
      for (const s of this.#syncs) s.push(keys, { listSilences }).catch(() => {}); // failures show in the resend's log
    }, this.#followUpMs).unref();
  }

  #resend(): void {
    if (this.#closed) return;
    const { log, resendMs } = this.options;
    for (const s of this.#syncs) {
      const name = s.api.name;
      s.push("all").then(
        () => {
          if (this.#failing.delete(name))
            log.info({ event: "alertmanager_reachable", alertmanager: name }, `${name} is up to date again`);
        },
        (error: unknown) => {
          const fields = { event: "alertmanager_resend_failed", alertmanager: name, err: (error as Error).message };
          const message = `resending to ${name} failed; trying again every ${resendMs} ms`;
          if (this.#failing.has(name)) log.debug(fields, message);
          else log.warn(fields, message);
          this.#failing.add(name);
        },
      );
    }
  }
}
