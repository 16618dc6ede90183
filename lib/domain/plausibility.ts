import { FEATURES, unitSuffix, type FeatureName } from "./features.js";

export interface SensorLimit {
  min: number;
  max: number;
}

/** Physical limits per sensor; a fan's record may narrow or widen any of them (its `limits`). */
export type SensorLimits = Readonly<Record<FeatureName, SensorLimit>>;

/**
 * What a fan's sensors can physically report; a value outside is a sensor (or wiring, scaling,
 * transport) fault, never a fan fault. Sources, and which numbers are judgements, are in
 * docs/sensors.md. score and predict check these; the connector checks a fan's own `limits`
 * from its registry record where it has them.
 */
export const DEFAULT_SENSOR_LIMITS: SensorLimits = {
  rotation: { min: 0, max: 20_000 },
  temperature: { min: -60, max: 250 },
  vibration: { min: 0, max: 10_000 },
  sound: { min: 0, max: 200 },
};

/**
 * Why a fan's own limits for `sensor` cannot be used, or undefined: they may only narrow the
 * defaults, since score and predict, which know nothing of the registry, check the defaults (a
 * wider limit would let a reading through the connector that predict then refuses).
 */
export function ownLimitProblem(sensor: FeatureName, own: SensorLimit): string | undefined {
  const { min, max } = DEFAULT_SENSOR_LIMITS[sensor];
  if (own.min < min || own.max > max)
    return `${sensor}: a fan's own limits may only narrow the defaults (${min} to ${max}), not ${own.min} to ${own.max}`;
  return undefined;
}

/** The first sensor outside its limits, in FEATURES order, or undefined when every value is plausible. */
export interface Implausible {
  sensor: FeatureName;
  value: number;
  limit: SensorLimit;
}

export function findImplausible(
  reading: Readonly<Record<FeatureName, number>>,
  limits: SensorLimits = DEFAULT_SENSOR_LIMITS,
): Implausible | undefined {
  for (const sensor of FEATURES) {
    const value = reading[sensor];
    const limit = limits[sensor];
    if (!(value >= limit.min && value <= limit.max)) return { sensor, value, limit };
  }
  return undefined;
}

/** `rotation: 25000 rpm is outside its physical limits (0 to 20000 rpm): a sensor fault, not a fan fault`. */
export function describeImplausible({ sensor, value, limit }: Implausible): string {
  const unit = unitSuffix(sensor);
  return `${sensor}: ${value}${unit} is outside its physical limits (${limit.min} to ${limit.max}${unit}): a sensor fault, not a fan fault`;
}
