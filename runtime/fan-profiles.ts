import { FEATURES, type FeatureName } from "../lib/features.js";
import { FAULTY_RANGES, HEALTHY_RANGES, drawReading, type Range } from "../lib/fan-ranges.js";
import type { Random } from "../lib/rng.js";

export type ProfileName = "healthy" | "faulty" | "degrading";

/**
 * Where a degrading fan ends up: the part of the faulty ranges a healthy fan never reaches
 * (rotation falling towards 400 rpm; temperature, vibration and sound rising), as the reference
 * article describes a failing bearing.
 */
const WORN_RANGES: Readonly<Record<FeatureName, Range>> = {
  rotation: { min: FAULTY_RANGES.rotation.min, max: HEALTHY_RANGES.rotation.min },
  temperature: { min: HEALTHY_RANGES.temperature.max, max: FAULTY_RANGES.temperature.max },
  vibration: { min: HEALTHY_RANGES.vibration.max, max: FAULTY_RANGES.vibration.max },
  sound: { min: HEALTHY_RANGES.sound.max, max: FAULTY_RANGES.sound.max },
};

export type Readings = Record<FeatureName, number>;

/** The ranges a fan draws from: fixed for healthy and faulty fans, moving for degrading ones. */
export function rangesAt(profile: ProfileName, wear: number): Readonly<Record<FeatureName, Range>> {
  if (profile === "healthy") return HEALTHY_RANGES;
  if (profile === "faulty") return FAULTY_RANGES;
  const w = Math.min(1, Math.max(0, wear));
  const mix = (a: number, b: number) => a + (b - a) * w;
  return Object.fromEntries(FEATURES.map((f) => [f, { min: mix(HEALTHY_RANGES[f].min, WORN_RANGES[f].min), max: mix(HEALTHY_RANGES[f].max, WORN_RANGES[f].max) }])) as Record<FeatureName, Range>;
}

/** One reading, one decimal per value like the reference simulator. `wear` is 0..1 (degrading only). */
export function drawReadings(profile: ProfileName, wear: number, random: Random): Readings {
  const ranges = rangesAt(profile, wear);
  return Object.fromEntries(FEATURES.map((f) => [f, drawReading(ranges[f], random)])) as Readings;
}

/** Profiles for a fleet: the first `faulty` fans faulty, the next `degrading` degrading, the rest healthy. */
export function fleetProfiles(fans: number, faulty: number, degrading: number): ProfileName[] {
  if (faulty + degrading > fans) throw new RangeError(`--faulty ${faulty} and --degrading ${degrading} are more than the ${fans} fans`);
  return Array.from({ length: fans }, (_, i) => (i < faulty ? "faulty" : i < faulty + degrading ? "degrading" : "healthy"));
}
