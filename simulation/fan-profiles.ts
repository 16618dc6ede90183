import { FEATURES, type FeatureName } from "../lib/domain/features.js";
import { UsageError } from "../lib/errors.js";
import { FAULTY_RANGES, HEALTHY_RANGES, type Range } from "../lib/domain/fan-ranges.js";
import { drawReading } from "./draw.js";
import type { Random } from "./rng.js";

/**
 * The shapes a simulated fan can have:
 * - healthy: healthy ranges throughout;
 * - noisy: healthy, with rare single-reading spikes (a loose connector, a bird strike);
 * - faulty: faulty ranges from the start;
 * - sudden: healthy until a random moment, then faulty ranges at once (a broken blade);
 * - degrading: all four sensors move linearly from the healthy towards the worn ranges (a failing bearing, as the reference article describes it);
 * - bearing: vibration alone drifts towards its worn range, the rest stay healthy (an early bearing defect).
 */
export const PROFILE_NAMES = ["healthy", "noisy", "faulty", "sudden", "degrading", "bearing"] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** Shapes whose fans wear out over a period (the rest are healthy, faulty, or fail at once). */
export const WEARING: ReadonlySet<ProfileName> = new Set(["degrading", "bearing"]);

/**
 * Where a wearing fan ends up: the part of the faulty ranges a healthy fan never reaches
 * (rotation falling towards 400 rpm; temperature, vibration and sound rising).
 */
const WORN_RANGES: Readonly<Record<FeatureName, Range>> = {
  rotation: { min: FAULTY_RANGES.rotation.min, max: HEALTHY_RANGES.rotation.min },
  temperature: { min: HEALTHY_RANGES.temperature.max, max: FAULTY_RANGES.temperature.max },
  vibration: { min: HEALTHY_RANGES.vibration.max, max: FAULTY_RANGES.vibration.max },
  sound: { min: HEALTHY_RANGES.sound.max, max: FAULTY_RANGES.sound.max },
};

/**
 * A noisy fan spikes on one reading in this many on average: about once every 17 minutes at the
 * default 2 s, rare enough to be noise, often enough that a day holds ~90 spikes.
 */
export const SPIKE_EVERY = 500;

export type Readings = Record<FeatureName, number>;

/** The ranges a fan draws from. `wear` is 0..1 for wearing fans; `failed` says whether a sudden fan has failed. */
export function rangesAt(profile: ProfileName, wear: number, failed = false): Readonly<Record<FeatureName, Range>> {
  if (profile === "healthy" || profile === "noisy") return HEALTHY_RANGES;
  if (profile === "faulty") return FAULTY_RANGES;
  if (profile === "sudden") return failed ? FAULTY_RANGES : HEALTHY_RANGES;
  const w = Math.min(1, Math.max(0, wear));
  const mix = (a: number, b: number) => a + (b - a) * w;
  const moving = profile === "bearing" ? (f: FeatureName) => f === "vibration" : () => true;
  return Object.fromEntries(
    FEATURES.map((f) => [
      f,
      moving(f)
        ? { min: mix(HEALTHY_RANGES[f].min, WORN_RANGES[f].min), max: mix(HEALTHY_RANGES[f].max, WORN_RANGES[f].max) }
        : HEALTHY_RANGES[f],
    ]),
  ) as Record<FeatureName, Range>;
}

/** One reading, one decimal per value like the reference simulator. */
export function drawReadings(profile: ProfileName, wear: number, random: Random, failed = false): Readings {
  const ranges = rangesAt(profile, wear, failed);
  const readings = Object.fromEntries(FEATURES.map((f) => [f, drawReading(ranges[f], random)])) as Readings;
  if (profile === "noisy" && random() < 1 / SPIKE_EVERY) spike(readings, random);
  return readings;
}

/**
 * One sensor jumps beyond its healthy range for one reading, the way a fault would move it
 * (rotation down, the rest up) by 5–50% of the range's width: the worst case for the health rules.
 */
function spike(readings: Readings, random: Random): void {
  const f = FEATURES[Math.min(FEATURES.length - 1, Math.floor(random() * FEATURES.length))] as FeatureName;
  const range = HEALTHY_RANGES[f];
  const by = (range.max - range.min) * (0.05 + 0.45 * random());
  readings[f] = Math.round((f === "rotation" ? range.min - by : range.max + by) * 10) / 10;
}

export interface FleetMix {
  faulty: number;
  degrading: number;
  bearing?: number;
  sudden?: number;
  noisy?: number;
}

/** Profiles for a fleet, in this order: faulty, degrading, bearing, sudden, noisy, and the rest healthy. */
export function fleetProfiles(fans: number, mix: FleetMix): ProfileName[] {
  const counts: Array<[ProfileName, number]> = [
    ["faulty", mix.faulty],
    ["degrading", mix.degrading],
    ["bearing", mix.bearing ?? 0],
    ["sudden", mix.sudden ?? 0],
    ["noisy", mix.noisy ?? 0],
  ];
  const total = counts.reduce((n, [, c]) => n + c, 0);
  if (total > fans)
    throw new UsageError(
      `${counts
        .filter(([, c]) => c > 0)
        .map(([p, c]) => `--${p} ${c}`)
        .join(", ")} are more than the ${fans} fans`,
    );
  return counts
    .flatMap(([p, c]) => Array.from({ length: c }, () => p))
    .concat(Array.from({ length: fans - total }, () => "healthy" as const));
}
