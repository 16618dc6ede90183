import { FEATURES } from "../domain/features.js";

/**
 * Exact Shapley values for the four-input model (docs/model.md). The value of a coalition S of
 * sensors is the model's probability for the reading with the sensors in S taken from the reading
 * and the others from the healthy reference reading. With four sensors there are 2⁴ = 16
 * coalitions, so exact values cost 16 model rows per reading, with no sampling error, and all
 * readings' rows go through one tensor call.
 *
 * Coalitions are numbered by bit mask: bit c set means sensor c (FEATURES order) comes from the
 * reading. Mask 0 is the reference reading itself, the same for every reading, so a call's input
 * holds it once, followed by masks 1 to 15 of each reading: 15·n + 1 rows.
 */
const WIDTH = FEATURES.length;
export const COALITIONS = 1 << WIDTH;
const FULL = COALITIONS - 1;

/**
 * Readings whose coalitions go through one tensor call. Measured on wasm, explaining 10,000
 * readings 20 times: in one call the process peaked at 208–222 MB resident (the function's limit
 * is 256 MiB), in calls of 1,024 readings at 154 MB, and no slower (80–100 ms each way). Predict
 * sends at most its connector batch (200 by default), one call.
 */
export const READINGS_PER_CALL = 1024;

/** What `explain` computes for n readings; flat typed arrays so that a batch allocates a few arrays, not 4n objects. */
export interface Explanations {
  readonly count: number;
  /** The model's probability for each reading (its full coalition). */
  readonly probabilities: Float64Array;
  /** The model's probability for the reference reading (the empty coalition), per reading as evaluated in its call. */
  readonly references: Float64Array;
  /** count × 4, reading by reading in FEATURES order: each sensor's Shapley value. */
  readonly contributions: Float64Array;
  /** Per reading, the index (FEATURES order) of the sensor that contributes most: see `cause`. */
  readonly causes: Uint8Array;
}

/**
 * Contributions closer than this count as a tie for the cause: score reports them to six decimals,
 * so a user could not tell them apart either.
 */
export const CAUSE_TIE = 1e-6;

/**
 * For each sensor, the 8 coalitions without it and their Shapley weights |S|!(3−|S|)!/4!:
 * 1/4 for the empty and the three-sensor coalitions, 1/12 for the others (the 8 sum to 1).
 */
const TERMS: ReadonlyArray<ReadonlyArray<{ without: number; weight: number }>> = FEATURES.map((_, sensor) => {
  const terms: Array<{ without: number; weight: number }> = [];
  for (let mask = 0; mask < COALITIONS; mask++) {
    if ((mask & (1 << sensor)) !== 0) continue;
    const size = popcount(mask);
    terms.push({ without: mask, weight: (factorial(size) * factorial(WIDTH - size - 1)) / factorial(WIDTH) });
  }
  return terms;
});

/** Model rows `coalitionInputs` writes for `count` readings. */
export function coalitionRows(count: number): number {
  return count * (COALITIONS - 1) + 1;
}

/**
 * The coalition rows of `readings` (n standardised readings, n × 4) against `reference` (the
 * standardised reference reading): the reference, then masks 1 to 15 of each reading. Since
 * standardising works sensor by sensor, mixing standardised values is the same as standardising
 * the mixed reading.
 */
export function coalitionInputs(readings: Float32Array, reference: Float32Array): Float32Array {
  const count = readings.length / WIDTH;
  const input = new Float32Array(coalitionRows(count) * WIDTH);
  input.set(reference.subarray(0, WIDTH));
  let at = WIDTH;
  for (let r = 0; r < count; r++) {
    const row = r * WIDTH;
    for (let mask = 1; mask < COALITIONS; mask++) {
      for (let c = 0; c < WIDTH; c++)
        input[at++] = (mask & (1 << c)) !== 0 ? (readings[row + c] as number) : (reference[c] as number);
    }
  }
  return input;
}

/**
 * Shapley values from the model's outputs for `coalitionInputs` rows, written into `into` from
 * reading `offset` on. `logits` are the final layer's outputs before its sigmoid, or the outputs
 * themselves when it has none (`sigmoid` false). Probabilities are taken in float64 from the
 * float32 logits and summed in float64, so each reading's contributions add up to
 * p(reading) − p(reference) to within about 1e-16.
 */
export function explainOutputs(logits: Float32Array, sigmoid: boolean, into: Explanations, offset: number): void {
  const count = (logits.length - 1) / (COALITIONS - 1);
  if (!Number.isInteger(count) || offset + count > into.count)
    throw new RangeError(`${logits.length} outputs do not hold ${COALITIONS - 1} rows per reading and the reference`);
  const value = (z: number) => (sigmoid ? 1 / (1 + Math.exp(-z)) : z);
  const values = new Float64Array(COALITIONS);
  const logOdds = new Float64Array(COALITIONS);
  const logOddsShares = new Float64Array(WIDTH);
  logOdds[0] = logits[0] as number;
  values[0] = value(logOdds[0]);
  for (let r = 0; r < count; r++) {
    const base = 1 + r * (COALITIONS - 1);
    for (let m = 1; m < COALITIONS; m++) {
      const z = logits[base + m - 1] as number;
      logOdds[m] = z;
      values[m] = value(z);
    }
    const reading = offset + r;
    into.probabilities[reading] = values[FULL] as number;
    into.references[reading] = values[0];
    shapley(values, into.contributions, reading * WIDTH);
    if (sigmoid) shapley(logOdds, logOddsShares, 0);
    into.causes[reading] = cause(into.contributions, reading * WIDTH, sigmoid ? logOddsShares : undefined);
  }
}

/** Room for the explanations of `count` readings. */
export function allocateExplanations(count: number): Explanations {
  return {
    count,
    probabilities: new Float64Array(count),
    references: new Float64Array(count),
    contributions: new Float64Array(count * WIDTH),
    causes: new Uint8Array(count),
  };
}

/** Each sensor's Shapley value from one reading's 16 coalition values, into `into[at…]`. */
function shapley(values: Float64Array, into: Float64Array, at: number): void {
  for (let sensor = 0; sensor < WIDTH; sensor++) {
    const bit = 1 << sensor;
    let sum = 0;
    for (const { without, weight } of TERMS[sensor] as ReadonlyArray<{ without: number; weight: number }>) {
      sum += weight * ((values[without | bit] as number) - (values[without] as number));
    }
    into[at + sensor] = sum;
  }
}

/**
 * The sensor with the largest contribution. A saturated sigmoid makes ties: when each of two
 * sensors alone already drives the probability to 1 (most clearly faulty readings: in float64 the
 * sigmoid is 1 from log-odds of 37 on), Shapley shares the difference evenly between them. Among
 * tied sensors the one that moves the log-odds most wins (the same coalitions, before the
 * sigmoid), rather than whichever comes first in FEATURES order.
 */
function cause(contributions: Float64Array, at: number, logOddsShares: Float64Array | undefined): number {
  let best = 0;
  for (let s = 1; s < WIDTH; s++)
    if ((contributions[at + s] as number) > (contributions[at + best] as number)) best = s;
  if (logOddsShares === undefined) return best;
  const top = contributions[at + best] as number;
  let chosen = best;
  for (let s = 0; s < WIDTH; s++) {
    if (
      top - (contributions[at + s] as number) < CAUSE_TIE &&
      (logOddsShares[s] as number) > (logOddsShares[chosen] as number)
    )
      chosen = s;
  }
  return chosen;
}

function popcount(mask: number): number {
  let n = 0;
  for (let m = mask; m !== 0; m >>= 1) n += m & 1;
  return n;
}

function factorial(n: number): number {
  return n <= 1 ? 1 : n * factorial(n - 1);
}
