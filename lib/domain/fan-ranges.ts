import type { FeatureName } from "./features.js";

export interface Range {
  min: number;
  max: number;
}

/**
 * Value ranges of the reference design's simulator (uniform draws, one decimal). The classes
 * overlap: most faulty readings fall inside the healthy box, which caps per-reading accuracy at
 * about 0.95.
 */
export const HEALTHY_RANGES: Readonly<Record<FeatureName, Range>> = {
  rotation: { min: 500, max: 700 },
  temperature: { min: 35, max: 45 },
  vibration: { min: 100, max: 200 },
  sound: { min: 45, max: 52 },
};

export const FAULTY_RANGES: Readonly<Record<FeatureName, Range>> = {
  rotation: { min: 400, max: 650 },
  temperature: { min: 35, max: 55 },
  vibration: { min: 100, max: 250 },
  sound: { min: 45, max: 60 },
};
