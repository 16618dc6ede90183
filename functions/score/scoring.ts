import { performance } from "node:perf_hooks";
import type { ExplainedVerdict, Verdict } from "../../lib/domain/prediction.js";
import { coalitionRows, READINGS_PER_CALL } from "../../lib/inference/explain.js";
import type { ScoringModel } from "../../lib/inference/runtime.js";
import type { Logger } from "../../lib/infra/log.js";
import { computeSeconds, readingsExplained, readingsScored, shadowReadings, tensorBatch } from "./metrics.js";
import type { ModelLease } from "./model-holder.js";

/**
 * A batch's answer (docs/score.md). With a shadow loaded it also carries the shadow's predictions
 * for the same readings and score's own compute time for each model, which predict compares
 * (docs/models.md, "Shadow"); the shadow's answers are never published.
 */
export interface BatchAnswer {
  model: string;
  predictions: Verdict[];
  shadow?: { model: string; predictions: Verdict[] };
  timing?: { activeMs: number; shadowMs: number };
}

export function score(model: ScoringModel, rows: number[][]): Verdict[] {
  readingsScored.inc(rows.length);
  tensorBatch.observe(rows.length);
  return model.predict(rows);
}

export function explain(model: ScoringModel, rows: number[][]): ExplainedVerdict[] {
  readingsScored.inc(rows.length);
  readingsExplained.inc(rows.length);
  for (let from = 0; from < rows.length; from += READINGS_PER_CALL)
    tensorBatch.observe(coalitionRows(Math.min(READINGS_PER_CALL, rows.length - from)));
  return model.predictExplained(rows);
}

/**
 * Scores a batch on the lease's active model and, if it has one, its shadow. A shadow that fails
 * costs its part of the answer only: the active model's predictions are what the caller needs.
 */
export function scoreBatch(lease: ModelLease, rows: number[][], log: Logger): BatchAnswer {
  const started = performance.now();
  const predictions = score(lease.active, rows);
  const activeMs = performance.now() - started;
  computeSeconds.inc({ role: "active" }, activeMs / 1000);
  const answer: BatchAnswer = { model: lease.active.metadata.id, predictions };
  const shadow = lease.shadow;
  if (shadow === undefined) return answer;
  const shadowStarted = performance.now();
  let shadowPredictions: Verdict[];
  try {
    shadowPredictions = shadow.predict(rows);
  } catch (error) {
    log.error(
      { event: "shadow_failed", model: shadow.metadata.id, err: (error as Error).message },
      `the shadow model ${shadow.metadata.id} failed on a batch; answered with the active model's predictions only`,
    );
    return answer;
  }
  const shadowMs = performance.now() - shadowStarted;
  computeSeconds.inc({ role: "shadow" }, shadowMs / 1000);
  shadowReadings.inc(rows.length);
  answer.shadow = { model: shadow.metadata.id, predictions: shadowPredictions };
  answer.timing = { activeMs: round3(activeMs), shadowMs: round3(shadowMs) };
  return answer;
}

/** Microseconds: finer than a batch's time, coarser than the clock's noise. */
function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
