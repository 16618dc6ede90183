import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The notifier's Prometheus metrics, each labelled with the target (`webhook-1a2b3c4d`,
 * `alertmanager`). docs/notifier.md lists them with the alerts worth writing on them.
 */
export class NotifierMetrics {
  readonly registry = new Registry();
  readonly sent = new Counter({
    name: "fanwatch_notifications_sent_total",
    help: "Notifications a target took (a webhook answered 2xx)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly skipped = new Counter({
    name: "fanwatch_notifications_skipped_total",
    help: "Transitions a target did not send on purpose: muted (the fan shelved or in maintenance)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly failed = new Counter({
    name: "fanwatch_notifications_failed_total",
    help: "Delivery attempts that failed, by reason (http_<status>, timeout, connection, error); retried unless the reason is a refusal",
    labelNames: ["target", "reason"],
    registers: [this.registry],
  });
  readonly dead = new Counter({
    name: "fanwatch_notifications_dead_total",
    help: "Notifications given up on (refused, or not delivered within NOTIFY_MAX_AGE) and kept as dead letters",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly pending = new Gauge({
    name: "fanwatch_notifications_pending",
    help: "Transitions not yet delivered to the target (its consumers' pending and unacknowledged messages)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly oldestPending = new Gauge({
    name: "fanwatch_notifications_oldest_pending_seconds",
    help: "Age of the oldest transition not yet delivered to the target (0 when none)",
    labelNames: ["target"],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "fanwatch_notification_delivery_seconds",
    help: "From the transition (its `at`) to the target's receipt",
    labelNames: ["target"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21_600, 86_400],
    registers: [this.registry],
  });
  readonly natsUp = new Gauge({
    name: "fanwatch_notifier_nats_up",
    help: "1 while the notifier is connected to NATS, 0 otherwise",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "fanwatch_notifier_" });
  }

  /** Every series of a target at 0, so that a dashboard shows the target before its first notification. */
  addTarget(target: string): void {
    for (const counter of [this.sent, this.skipped, this.dead]) counter.inc({ target }, 0);
    this.pending.set({ target }, 0);
    this.oldestPending.set({ target }, 0);
  }
}
