import { z } from "zod";
import { FEATURES } from "./features.js";

/**
 * A fan's own baseline, as health publishes it in the KV bucket `fan_baselines` (one key per fan,
 * the deviceID): each sensor's level (mean) and spread (standard deviation) while the fan was
 * healthy. Health learns it from the fan's first readings (`learning`), then keeps it (`ready`),
 * moving it slowly while the fan stays in control, frozen while an episode is open, and learns it
 * anew after a finding or a maintenance window (a fan back from maintenance is a new fan).
 * docs/health.md, "Baselines", has the rules.
 */
export const BASELINE_STATES = ["learning", "ready"] as const;
export type BaselineState = (typeof BASELINE_STATES)[number];

/** Why the baseline was (re)started. */
export const BASELINE_REASONS = ["new", "finding", "maintenance"] as const;
export type BaselineReason = (typeof BASELINE_REASONS)[number];

const SensorBaselineSchema = z.object({
  level: z.number(),
  spread: z.number().min(0),
});
export type SensorBaseline = z.infer<typeof SensorBaselineSchema>;

export const PublishedBaselineSchema = z.object({
  deviceID: z.string().min(1).max(128),
  state: z.enum(BASELINE_STATES),
  /** Readings it was learnt from (while learning: so far). */
  readings: z.number().int().min(0),
  /** Readings it needs before it is used. */
  needs: z.number().int().min(1),
  reason: z.enum(BASELINE_REASONS),
  /** Reading time learning began. */
  since: z.string().min(1),
  /** Reading time it became ready; null while learning. */
  readyAt: z.string().min(1).nullable(),
  /** Reading time of the newest reading it holds. */
  updatedAt: z.string().min(1),
  /** True while an episode is open: nothing moves it then. */
  frozen: z.boolean(),
  sensors: z.object(
    Object.fromEntries(FEATURES.map((f) => [f, SensorBaselineSchema])) as Record<
      (typeof FEATURES)[number],
      typeof SensorBaselineSchema
    >,
  ),
});
export type PublishedBaseline = z.infer<typeof PublishedBaselineSchema>;
