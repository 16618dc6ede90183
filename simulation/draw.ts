import type { Range } from "../lib/domain/fan-ranges.js";

/** A uniform draw in `range`, rounded to one decimal like the reference simulator. */
export function drawReading(range: Range, random: () => number): number {
  return Math.round((range.min + random() * (range.max - range.min)) * 10) / 10;
}
