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
 * - bearing: vibration alone drifts towards its worn range, the rest stay healthy (an early bearing defect);
 * - drift: one sensor's level moves from the fan's own level to the middle of its worn range, the rest stay where they were;
 * - drift-pair: the same with two sensors together;
 * - hot: healthy, but running hot: its temperature sits at HOT_TEMPERATURE, above the fleet's healthy
 *   range, the rest healthy (a fan in a hot hall, or with a sensor mounted close to the motor). The
 *   shipped model, trained on the fleet's ranges alone, calls it faulty: the false alarm a site's
 *   findings teach a retrained model to drop (docs/models.md, "Learning from findings").
 */
export const PROFILE_NAMES = [
  "healthy",
  "noisy",
  "faulty",
  "sudden",
  "degrading",
  "bearing",
  "drift",
  "drift-pair",
  "hot",
] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** Shapes whose fans wear out over a period (the rest are healthy, faulty, or fail at once). */
export const WEARING: ReadonlySet<ProfileName> = new Set(["degrading", "bearing", "drift", "drift-pair"]);

/** Per sensor, the range a fan draws from. */
export type Ranges = Readonly<Record<FeatureName, Range>>;

/**
 * What a fan is, beyond its shape: the ranges it draws from while healthy (the fleet's, or its own
 * narrower ones: own-level fans) and the sensors a drift moves.
 */
export interface FanRanges {
  healthy: Ranges;
  drifting: readonly FeatureName[];
}

/** A fan of today's kind: the whole fleet range, and the sensors its shape wears (none for drift shapes, which need them named). */
export function fleetFan(profile: ProfileName): FanRanges {
  return FLEET_FANS[profile];
}

/**
 * A hot fan's temperature, °C: above the healthy range and above the faulty one too (a fan in a
 * hot hall), as narrow as an own-level fan's spread. Above the faulty range, so that no reading of
 * the generator's faulty fans looks like it: a model can learn that this fan is healthy without
 * unlearning any fault the base data set holds (at 47–49 °C it cost 2.4% of the base's fault
 * recall, measured). The shipped model calls every reading there a fault (2,000 of 2,000).
 */
export const HOT_TEMPERATURE: Range = { min: 56, max: 58 };

/** A hot fan's ranges: the given healthy ones with the temperature moved up to HOT_TEMPERATURE. */
export function hotRanges(healthy: Ranges): Ranges {
  return { ...healthy, temperature: HOT_TEMPERATURE };
}

const FLEET_FANS = Object.fromEntries(
  PROFILE_NAMES.map((profile): [ProfileName, FanRanges] => [
    profile,
    {
      healthy: profile === "hot" ? hotRanges(HEALTHY_RANGES) : HEALTHY_RANGES,
      drifting: profile === "degrading" ? FEATURES : profile === "bearing" ? ["vibration"] : [],
    },
  ]),
) as Record<ProfileName, FanRanges>;

/**
 * Where a wearing fan ends up: the part of the faulty ranges a healthy fan never reaches
 * (rotation falling towards 400 rpm; temperature, vibration and sound rising).
 */
export const WORN_RANGES: Ranges = {
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

/**
 * The ranges a fan draws from. `wear` is 0..1 for wearing fans; `failed` says whether a sudden fan
 * has failed. Degrading and bearing fans' ranges stretch towards the worn ranges; a drift keeps the
 * fan's own spread and moves its level, the middle of its range, to the middle of the worn range.
 */
export function rangesAt(profile: ProfileName, wear: number, failed = false, fan = fleetFan(profile)): Ranges {
  const healthy = fan.healthy;
  if (profile === "healthy" || profile === "noisy" || profile === "hot") return healthy;
  if (profile === "faulty") return FAULTY_RANGES;
  if (profile === "sudden") return failed ? FAULTY_RANGES : healthy;
  const w = Math.min(1, Math.max(0, wear));
  const mix = (a: number, b: number) => a + (b - a) * w;
  const worn = (f: FeatureName): Range => {
    if (profile === "degrading" || profile === "bearing")
      return { min: mix(healthy[f].min, WORN_RANGES[f].min), max: mix(healthy[f].max, WORN_RANGES[f].max) };
    const by = mix(middle(healthy[f]), middle(WORN_RANGES[f])) - middle(healthy[f]);
    return { min: healthy[f].min + by, max: healthy[f].max + by };
  };
  return Object.fromEntries(FEATURES.map((f) => [f, fan.drifting.includes(f) ? worn(f) : healthy[f]])) as Record<
    FeatureName,
    Range
  >;
}

const middle = (range: Range) => (range.min + range.max) / 2;

/**
 * An own-level fan's healthy ranges: per sensor a half-width of 5–10% of the fleet range's width and
 * a level such that the fan's range keeps 15% of the width clear of either end of the fleet range
 * (real fans each sit at their own level, with a smaller spread than the fleet's).
 */
export function ownRanges(random: Random): Ranges {
  return Object.fromEntries(
    FEATURES.map((f) => {
      const { min, max } = HEALTHY_RANGES[f];
      const width = max - min;
      const half = width * (0.05 + 0.05 * random());
      const lowest = min + 0.15 * width + half;
      const level = lowest + random() * (max - 0.15 * width - half - lowest);
      return [f, { min: level - half, max: level + half }];
    }),
  ) as Record<FeatureName, Range>;
}

/** One reading, one decimal per value like the reference simulator. */
export function drawReadings(
  profile: ProfileName,
  wear: number,
  random: Random,
  failed = false,
  fan = fleetFan(profile),
): Readings {
  const ranges = rangesAt(profile, wear, failed, fan);
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
  drift?: number;
  driftPair?: number;
  hot?: number;
}

/**
 * Profiles for a fleet, in this order: faulty, degrading, bearing, sudden, noisy, drift,
 * drift-pair, hot, and the rest healthy (hot last: a fleet without hot fans is as it was).
 */
export function fleetProfiles(fans: number, mix: FleetMix): ProfileName[] {
  const counts: Array<[ProfileName, number]> = [
    ["faulty", mix.faulty],
    ["degrading", mix.degrading],
    ["bearing", mix.bearing ?? 0],
    ["sudden", mix.sudden ?? 0],
    ["noisy", mix.noisy ?? 0],
    ["drift", mix.drift ?? 0],
    ["drift-pair", mix.driftPair ?? 0],
    ["hot", mix.hot ?? 0],
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
