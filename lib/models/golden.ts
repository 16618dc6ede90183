import { FAULTY_RANGES, HEALTHY_RANGES, type Range } from "../domain/fan-ranges.js";
import { FEATURES, type FeatureName } from "../domain/features.js";
import type { ScoringModel } from "../inference/runtime.js";
import type { GoldenSet } from "./schemas.js";

/** A reading in FEATURES order with its truth: 1 a faulty fan's, 0 a healthy one's. */
export interface LabelledInput {
  input: number[];
  label: 0 | 1;
}

/**
 * How far a probability may move from the stored answer. The same weights give the same answers
 * on every TF.js backend to well within this; a changed or corrupt weight moves some far more.
 */
export const GOLDEN_TOLERANCE = 1e-3;
/** Readings per class in the standard golden set. */
const PER_CLASS = 100;
const PRIMES = [2, 3, 5, 7] as const;

/**
 * The standard golden readings: PER_CLASS from the healthy ranges labelled 0, PER_CLASS from the
 * faulty ranges labelled 1 (as model/dataset.ts labels them), rounded to one decimal like the
 * simulator. The points are a Halton sequence, not random draws: fixed with no seed, and spread
 * evenly over each box, so every region of the input a model answers for is probed. lib/ must not
 * import model/ or simulation/ (score's image has neither), hence no call to their generator.
 */
export function goldenReadings(): LabelledInput[] {
  const draw = (ranges: Readonly<Record<FeatureName, Range>>, label: 0 | 1): LabelledInput[] =>
    Array.from({ length: PER_CLASS }, (_, i) => ({
      input: FEATURES.map((name, f) => {
        const { min, max } = ranges[name];
        return Math.round((min + halton(i + 1 + label * PER_CLASS, PRIMES[f] as number) * (max - min)) * 10) / 10;
      }),
      label,
    }));
  return [...draw(HEALTHY_RANGES, 0), ...draw(FAULTY_RANGES, 1)];
}

/** The `index`th element of the van der Corput sequence in `base`: a number in [0, 1). */
function halton(index: number, base: number): number {
  let result = 0;
  let fraction = 1 / base;
  for (let i = index; i > 0; i = Math.floor(i / base)) {
    result += fraction * (i % base);
    fraction /= base;
  }
  return result;
}

/** The golden set of `model`: its own answers to `readings` (one tensor call), with their labels. */
export function makeGoldenSet(model: ScoringModel, readings: readonly LabelledInput[]): GoldenSet {
  const verdicts = model.predict(readings.map((r) => r.input));
  return {
    tolerance: GOLDEN_TOLERANCE,
    readings: readings.map((r, i) => {
      const verdict = verdicts[i] as { fault: 0 | 1; probability: number };
      return { input: [...r.input], fault: verdict.fault, probability: verdict.probability, label: r.label };
    }),
  };
}

export interface GoldenCheck {
  /** Every answer's fault as stored and its probability within the set's tolerance. */
  passed: boolean;
  readings: number;
  /** Readings whose answer differs: another fault, or a probability beyond the tolerance (or not a number). */
  mismatches: number;
  /** The largest probability difference from a stored answer (Infinity for a NaN answer). */
  maxDelta: number;
  /** Share of the labelled readings the model gets right; null when none is labelled. */
  accuracy: number | null;
  labelled: number;
}

/** How `model` answers `golden` (one tensor call). */
export function checkGoldenSet(model: ScoringModel, golden: GoldenSet): GoldenCheck {
  const probabilities = model.probabilities(golden.readings.map((r) => r.input));
  let mismatches = 0;
  let maxDelta = 0;
  let labelled = 0;
  let right = 0;
  golden.readings.forEach((reading, i) => {
    const { fault, probability } = model.toVerdict(probabilities[i] as number);
    const delta = Number.isFinite(probability) ? Math.abs(probability - reading.probability) : Infinity;
    maxDelta = Math.max(maxDelta, delta);
    if (fault !== reading.fault || !(delta <= golden.tolerance)) mismatches++;
    if (reading.label !== undefined) {
      labelled++;
      if (fault === reading.label) right++;
    }
  });
  return {
    passed: mismatches === 0,
    readings: golden.readings.length,
    mismatches,
    maxDelta,
    accuracy: labelled === 0 ? null : right / labelled,
    labelled,
  };
}

/** One line: "200 readings, 0 mismatches, max Δ 0.000000, accuracy 0.955 on 200 labelled". */
export function describeGoldenCheck(check: GoldenCheck): string {
  const accuracy =
    check.accuracy === null
      ? "no labelled readings"
      : `accuracy ${check.accuracy.toFixed(3)} on ${check.labelled} labelled`;
  return `${check.readings} readings, ${check.mismatches} mismatches, max Δ ${check.maxDelta.toFixed(6)}, ${accuracy}`;
}

/** A golden set at a glance, from its stored answers alone (no model loaded): `fanwatch model show` and the page. */
export interface GoldenSummary {
  readings: number;
  labelled: number;
  tolerance: number;
  /** Readings the model answers "fault" to. */
  faults: number;
  /** Its stored answers against the labels; null with none labelled. */
  accuracy: number | null;
}

export function summarizeGolden(golden: GoldenSet): GoldenSummary {
  const labelled = golden.readings.filter((r) => r.label !== undefined);
  return {
    readings: golden.readings.length,
    labelled: labelled.length,
    tolerance: golden.tolerance,
    faults: golden.readings.filter((r) => r.fault === 1).length,
    accuracy: labelled.length === 0 ? null : labelled.filter((r) => r.fault === r.label).length / labelled.length,
  };
}
