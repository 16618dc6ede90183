import { Counter, Gauge, Registry } from "prom-client";
import { HEALTH_EVENTS, HEALTH_STATES } from "../../lib/domain/health.js";

/** The health function's Prometheus metrics, appended to the template server's at /_/metrics. */
export class HealthMetrics {
  readonly registry = new Registry();
  readonly predictions = new Counter({
    name: "health_predictions_total",
    help: "Predictions by outcome: evaluated, rejected (bad input, dead-lettered), duplicate (a batch without reading times sent again: not counted twice; replays with reading times are skipped by the rules and count as evaluated)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly transitions = new Counter({
    name: "health_transitions_total",
    help: "Transitions written (and then published on the alarm topic), by event",
    labelNames: ["event"],
    registers: [this.registry],
  });
  /**
   * Warnings and alarms raised, by the model whose prediction raised them (`none` when it named
   * none): how a promotion changes what the fleet is alarmed about. A label value per model the
   * process has seen raise something: a few per site.
   */
  readonly raised = new Counter({
    name: "health_raised_total",
    help: "Warnings and alarms raised (transitions written), by event and the model whose prediction raised them (none: it named no model)",
    labelNames: ["event", "model"],
    registers: [this.registry],
  });
  readonly conflicts = new Counter({
    name: "health_cas_conflicts_total",
    help: "Compare-and-set writes that lost to another writer and were re-applied",
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: "health_store_errors_total",
    help: "Reads and writes the store failed (NATS unreachable, timeouts, unreadable entries), by kind",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly resent = new Counter({
    name: "health_outbox_resent_total",
    help: "Transitions published again from a fan's outbox (their first publish failed or its writer stopped)",
    registers: [this.registry],
  });
  readonly publishFailures = new Counter({
    name: "health_publish_failures_total",
    help: "Publishes of transitions the broker did not acknowledge in time (kept in the outbox)",
    registers: [this.registry],
  });
  readonly appendFailures = new Counter({
    name: "health_event_append_failures_total",
    help: "Transitions the event stream FAN_HEALTH_EVENTS (JetStream) did not acknowledge in time (kept in the outbox)",
    registers: [this.registry],
  });

  readonly baselinePublishes = new Counter({
    name: "health_baseline_publishes_total",
    help: "Fans' baselines written to the KV bucket fan_baselines, by result (ok, failed: published at the fan's next change)",
    labelNames: ["result"],
    registers: [this.registry],
  });

  constructor(countFans: () => Record<string, number>) {
    new Gauge({
      name: "health_fans",
      help: "Fans by health state (from this replica's view of the store)",
      labelNames: ["state"],
      registers: [this.registry],
      collect() {
        const counts = countFans();
        for (const state of HEALTH_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    // Children created up front, so that a scrape lists every event at 0.
    for (const event of HEALTH_EVENTS) this.transitions.labels(event);
  }
}
