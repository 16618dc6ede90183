/** The four sensor readings a fan reports, in the order the model takes them. */
export const FEATURES = ["rotation", "temperature", "vibration", "sound"] as const;
export type FeatureName = (typeof FEATURES)[number];

/**
 * What each reading is measured in ("" where the reference design gives no unit: its vibration is
 * a bare number). The physical limits of each reading are in lib/domain/plausibility.ts
 * (DEFAULT_SENSOR_LIMITS, sources in docs/sensors.md), the one place they are kept.
 */
export const FEATURE_BOUNDS: Readonly<Record<FeatureName, { unit: string }>> = {
  rotation: { unit: "rpm" },
  temperature: { unit: "°C" },
  vibration: { unit: "" },
  sound: { unit: "dB" },
};

/** ` rpm`, ` °C`, ``: a reading's unit as written after its value. */
export function unitSuffix(name: FeatureName): string {
  const unit = FEATURE_BOUNDS[name].unit;
  return unit === "" ? "" : ` ${unit}`;
}
