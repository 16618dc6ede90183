import { Counter, Gauge, Registry } from "prom-client";

/**
 * The Alertmanager target's Prometheus metrics (docs/alertmanager.md, "Watching it"): whether each
 * Alertmanager takes what it is sent, how often it did not, and how many alerts are open. One set
 * per registry: a target made again on the same registry (the notifier retries a start that failed)
 * takes the series over instead of registering them twice.
 */
export class AlertmanagerMetrics {
  static readonly #byRegistry = new WeakMap<Registry, AlertmanagerMetrics>();

  static for(registry: Registry): AlertmanagerMetrics {
    let metrics = AlertmanagerMetrics.#byRegistry.get(registry);
    if (metrics === undefined) {
      metrics = new AlertmanagerMetrics(registry);
      AlertmanagerMetrics.#byRegistry.set(registry, metrics);
    }
    return metrics;
  }

  readonly up: Gauge<"url">;
  readonly pushFailures: Counter<"url">;
  readonly openAlerts: Gauge;
  /** What the open-alerts gauge reads when scraped: set by the target that uses this set now. */
  countOpen: () => number = () => 0;

  private constructor(readonly registry: Registry) {
    this.up = new Gauge({
      name: "fanwatch_alertmanager_up",
      help: "1 when the last push to this Alertmanager (alerts, silences) succeeded, 0 when it failed or none was made yet",
      labelNames: ["url"],
      registers: [registry],
    });
    this.pushFailures = new Counter({
      name: "fanwatch_alertmanager_push_failures_total",
      help: "Pushes (a transition's fan, a follow-up, a resend of every fan) this Alertmanager did not take",
      labelNames: ["url"],
      registers: [registry],
    });
    this.openAlerts = new Gauge({
      name: "fanwatch_alertmanager_open_alerts",
      help: "Alerts the notifier holds open (FanWarning, FanAlarm, FanSilent, FanSensor) and sends to every Alertmanager",
      registers: [registry],
      collect: () => this.openAlerts.set(this.countOpen()),
    });
  }

  /** Every series of an Alertmanager at 0, so that a dashboard shows it before its first push. */
  addAlertmanager(url: string): void {
    this.up.set({ url }, 0);
    this.pushFailures.inc({ url }, 0);
  }

  /** The outcome of one push to `url`. */
  pushed(url: string, ok: boolean): void {
    this.up.set({ url }, ok ? 1 : 0);
    if (!ok) this.pushFailures.inc({ url });
  }
}
