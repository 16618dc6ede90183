import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Values read when /metrics is scraped, rather than kept twice and updated per message. */
export interface ConnectorGauges {
  inFlight(): number;
  pending(): number;
  held(): number;
  /** Fans per registry state, from the connector's cache; undefined without a registry. */
  fans?(): Record<string, number> | undefined;
}

/** Why the gate refused a reading (the `reason` of connector_readings_refused_total). */
export const REFUSALS = ["unknown", "retired", "identity", "unbound", "full", "invalid_id", "implausible"] as const;
export type Refusal = (typeof REFUSALS)[number];

/** What the connector counts, exposed at /metrics. */
export function createConnectorMetrics(gauges: ConnectorGauges) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "connector_" });
  return {
    registry,
    received: new Counter({
      name: "connector_messages_received_total",
      help: "MQTT messages received, by the subscribed filter they matched",
      labelNames: ["filter"],
      registers: [registry],
    }),
    unrouted: new Counter({
      name: "connector_messages_unrouted_total",
      help: "Messages that arrived when no function had their topic (held unacknowledged until one has)",
      registers: [registry],
    }),
    invocations: new Counter({
      name: "connector_invocations_total",
      help: "Function invocations by HTTP status (0: no answer)",
      labelNames: ["function", "code"],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: "connector_batch_size",
      help: "Messages per invocation",
      labelNames: ["function"],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "connector_invocation_seconds",
      help: "Time per invocation attempt",
      labelNames: ["function"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
    retries: new Counter({
      name: "connector_retries_total",
      help: "Failed invocation attempts (connection error, timeout, 429, 5xx), each retried",
      labelNames: ["function"],
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: "connector_dead_lettered_total",
      help: "Messages sent to the dead-letter topic",
      labelNames: ["reason"],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "connector_invocations_in_flight",
      help: "Invocations waiting for an answer",
      registers: [registry],
      collect() {
        this.set(gauges.inFlight());
      },
    }),
    inFlightLimit: new Gauge({
      name: "connector_inflight_limit",
      help: "Invocations a function may have open at once: max_inflight per replica ready (at least one replica's worth), capped by max_inflight_total",
      labelNames: ["function"],
      registers: [registry],
    }),
    scaleRequests: new Counter({
      name: "connector_scale_requests_total",
      help: "Replica changes asked of the gateway (autoscale on), by direction and HTTP status (0: no answer)",
      labelNames: ["function", "direction", "code"],
      registers: [registry],
    }),
    circuitOpen: new Gauge({
      name: "connector_circuit_open",
      help: "1 while a function's circuit is open (intake paused until a probe succeeds)",
      labelNames: ["function"],
      registers: [registry],
    }),
    intakeParked: new Gauge({
      name: "connector_intake_parked",
      help: "1 while a subscribed filter's session is parked: disconnected because a function it routes to is failing (its circuit is open); the broker keeps its messages",
      labelNames: ["filter"],
      registers: [registry],
    }),
    replyFailures: new Counter({
      name: "connector_reply_failures_total",
      help: "Failed publishes of a function's answer to its reply topic, each retried",
      labelNames: ["function"],
      registers: [registry],
    }),
    held: new Gauge({
      name: "connector_messages_held",
      help: "Messages held unacknowledged because no function has their topic",
      registers: [registry],
      collect() {
        this.set(gauges.held());
      },
    }),
    refused: new Counter({
      name: "connector_readings_refused_total",
      help: "Readings the registry gate dead-lettered, by reason: unknown (UNKNOWN_DEVICE_POLICY=reject), retired, identity (deviceID is not the topic's), unbound (bare telemetry topic, ALLOW_UNBOUND_FANS off), full (REGISTRY_MAX_PENDING reached), invalid_id, implausible (a sensor outside its physical limits)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    quarantined: new Counter({
      name: "connector_readings_quarantined_total",
      help: "Readings of pending fans held in the JetStream stream FAN_QUARANTINE until the fan is approved or refused",
      registers: [registry],
    }),
    released: new Counter({
      name: "connector_quarantine_released_total",
      help: "Quarantined readings released to the functions once their fan was approved",
      registers: [registry],
    }),
    fans: new Gauge({
      name: "connector_registry_fans",
      help: "Fans in the device registry by state (pending, active, retired), as the connector's cache holds them",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const fans = gauges.fans?.();
        if (fans === undefined) return;
        for (const [state, n] of Object.entries(fans)) this.set({ state }, n);
      },
    }),
    pending: new Gauge({
      name: "connector_messages_pending",
      help: "Messages received and not yet acknowledged",
      registers: [registry],
      collect() {
        this.set(gauges.pending());
      },
    }),
  };
}

export type ConnectorMetrics = ReturnType<typeof createConnectorMetrics>;
