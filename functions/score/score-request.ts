import { z } from "zod";
import { InputError } from "../../lib/errors.js";
import { FEATURES, type FeatureName } from "../../lib/domain/features.js";
import { describeImplausible, findImplausible } from "../../lib/domain/plausibility.js";
import { parseJsonBody, toInputError } from "../../lib/infra/validation.js";

export const MAX_INSTANCES = 10_000;
const FEATURE_HINT = `expected [${FEATURES.join(", ")}] as 4 numbers`;

const Features = z
  .array(z.number({ error: "must be a finite number" }))
  .length(FEATURES.length, { error: `must hold exactly ${FEATURES.length} numbers` });
const Instances = z
  .array(Features)
  .min(1, { error: "must hold at least one reading" })
  .max(MAX_INSTANCES, { error: `must hold at most ${MAX_INSTANCES} readings per request` });

/** `explain`: also say why (each sensor's contribution, docs/score.md). */
export type ScoreRequest =
  { kind: "single"; features: number[]; explain: boolean } | { kind: "batch"; instances: number[][]; explain: boolean };

/**
 * Validates a score request: `{"params": [r, t, v, s]}` or `{"instances": [[r, t, v, s], …]}`,
 * either with an optional `"explain": true`.
 */
export function parseScoreRequest(body: unknown): ScoreRequest {
  const value = parseJsonBody(body);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InputError('body must be a JSON object with "params" or "instances"', "body");
  }
  const hasParams = Object.hasOwn(value, "params");
  const hasInstances = Object.hasOwn(value, "instances");
  if (hasParams === hasInstances) {
    throw new InputError(
      'body must have exactly one of "params" (one reading) or "instances" (a batch)',
      hasParams ? "instances" : "params",
    );
  }
  const explain = readExplain(value);
  if (hasParams) {
    const parsed = Features.safeParse((value as { params: unknown }).params);
    if (!parsed.success) throw toInputError(parsed.error, "params", FEATURE_HINT);
    checkPlausible(parsed.data, "params");
    return { kind: "single", features: parsed.data, explain };
  }
  const parsed = Instances.safeParse((value as { instances: unknown }).instances);
  if (!parsed.success) throw toInputError(parsed.error, "instances", FEATURE_HINT);
  parsed.data.forEach((row, i) => checkPlausible(row, `instances[${i}]`));
  return { kind: "batch", instances: parsed.data, explain };
}

/**
 * A reading outside its sensors' physical limits (DEFAULT_SENSOR_LIMITS) is a sensor fault: the
 * model would extrapolate it into a fan verdict, so it is refused with its own code, naming the
 * reading (`instances[3]`), the sensor and the value. A batch is refused whole, like any bad
 * instance: a caller scoring a batch checks it first (predict does, and scores the rest).
 */
function checkPlausible(row: readonly number[], where: string): void {
  const reading = Object.fromEntries(FEATURES.map((f, i) => [f, row[i] as number])) as Record<FeatureName, number>;
  const implausible = findImplausible(reading);
  if (implausible === undefined) return;
  throw new InputError(
    `${where}: ${describeImplausible(implausible)}`,
    `${where}[${FEATURES.indexOf(implausible.sensor)}]`,
    { code: "FANWATCH_READING_IMPLAUSIBLE" },
  );
}

function readExplain(body: object): boolean {
  if (!Object.hasOwn(body, "explain")) return false;
  const explain = (body as { explain: unknown }).explain;
  if (typeof explain !== "boolean")
    throw new InputError(
      `explain: must be true or false, not ${(JSON.stringify(explain) ?? typeof explain).slice(0, 40)}`,
      "explain",
    );
  return explain;
}
