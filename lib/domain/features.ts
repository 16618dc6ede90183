/** The four sensor readings a fan reports, in the order the model takes them. */
export const FEATURES = ["rotation", "temperature", "vibration", "sound"] as const;
export type FeatureName = (typeof FEATURES)[number];

/**
 * Physically sane bounds for each reading. Values outside them are sensor or transport faults,
 * not fan faults, and are rejected before scoring rather than extrapolated by the model.
 */
export const FEATURE_BOUNDS: Readonly<Record<FeatureName, { min: number; max: number; unit: string }>> = {
  rotation: { min: 0, max: 20_000, unit: "rpm" },
  temperature: { min: -60, max: 250, unit: "°C" },
  vibration: { min: 0, max: 10_000, unit: "" },
  sound: { min: 0, max: 200, unit: "dB" },
};
