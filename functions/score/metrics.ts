import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The score function's metrics (docs/score.md, "Metrics"), at GET /_/metrics. */
export const registry = new Registry();

export const readingsScored = new Counter({
  name: "score_readings_total",
  help: "Readings scored",
  registers: [registry],
});
export const readingsExplained = new Counter({
  name: "score_readings_explained_total",
  help: "Readings explained (16 model rows each)",
  registers: [registry],
});
export const tensorBatch = new Histogram({
  name: "score_tensor_batch_size",
  help: "Model rows per tensor call (16 per explained reading)",
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096],
  registers: [registry],
});
export const shadowReadings = new Counter({
  name: "score_shadow_readings_total",
  help: "Readings the shadow model scored next to the active one",
  registers: [registry],
});
// Summed per role, so that rate(shadow) / rate(active) is the shadow's cost in score's own compute time.
export const computeSeconds = new Counter({
  name: "score_compute_seconds_total",
  help: "Time spent computing batch answers, by model role",
  labelNames: ["role"] as const,
  registers: [registry],
});
export const modelSwaps = new Counter({
  name: "score_model_swaps_total",
  help: "Changes of the served active or shadow model",
  registers: [registry],
});
export const modelRefusals = new Counter({
  name: "score_model_refusals_total",
  help: "Model versions this replica would not serve, by reason",
  labelNames: ["reason"] as const,
  registers: [registry],
});
const modelInfo = new Gauge({
  name: "score_model_info",
  help: "The model served in each role (1), by id",
  labelNames: ["role", "model"] as const,
  registers: [registry],
});

/** Says which models are served now: one series per role, none for an absent shadow. */
export function showServed(active: string, shadow: string | undefined): void {
  modelInfo.reset();
  modelInfo.set({ role: "active", model: active }, 1);
  if (shadow !== undefined) modelInfo.set({ role: "shadow", model: shadow }, 1);
}
