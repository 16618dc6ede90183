import { z } from "zod";
import { FEATURES } from "../domain/features.js";
import { ModelMetadataSchema } from "../inference/metadata.js";

/**
 * The model registry's contracts (docs/models.md): what is stored in the Object Store bucket
 * `fan_models` (one bundle per model version, named by its id) and in the KV bucket
 * `fan_models_active` (each site's active pointer, each score replica's status, each shadow's
 * comparison). Score, predict, the CLI and the page read them through these schemas only.
 */

const isoTime = z.string().min(1);
const reading = z.array(z.number().finite()).length(FEATURES.length);

/**
 * Readings with the answers a model must give: a bundle carries its own, checked before the model
 * is ever served. A model passes when every answer's fault matches and its probability is within
 * `tolerance` of the stored one (the same weights give the same answers on every backend to well
 * within 1e-3).
 */
export const GoldenSetSchema = z.object({
  tolerance: z.number().positive().max(0.5),
  readings: z
    .array(
      z.object({
        input: reading,
        fault: z.union([z.literal(0), z.literal(1)]),
        probability: z.number().min(0).max(1),
        /** The truth, when known (a labelled reading): what golden-set accuracy is measured on. */
        label: z.union([z.literal(0), z.literal(1)]).optional(),
      }),
    )
    .min(1)
    .max(10_000),
});
export type GoldenSet = z.infer<typeof GoldenSetSchema>;

/** The version string of the bundle format. */
export const BUNDLE_FORMAT = "fanwatch-model/1";

/**
 * One model version as stored: the TF.js layers model (model.json's object and its weights as
 * base64), our metadata, its lineage and its golden set, in one JSON object. The id is the digest
 * of the stored bytes (bundleId in lib/models/bundle.ts), so it is not inside.
 */
export const ModelBundleSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  /** The id of the model this one was trained from (its parent), or null for one trained from scratch. */
  parent: z.string().min(1).max(128).nullable(),
  metadata: ModelMetadataSchema,
  /** model.json as TF.js writes it. */
  modelJson: z.record(z.string(), z.unknown()),
  /** weights.bin, base64. */
  weights: z.string(),
  golden: GoldenSetSchema,
});
export type ModelBundle = z.infer<typeof ModelBundleSchema>;

/** Why a pointer changed. */
export const POINTER_REASONS = ["first", "promote", "rollback", "shadow", "shadow-off", "auto-promote"] as const;
export type PointerReason = (typeof POINTER_REASONS)[number];

/**
 * A site's active pointer (KV `fan_models_active`, key pointerKey(site)): the model every score
 * replica of the site serves, the one `rollback` returns to, and the shadow, if any. Its KV
 * revision is the pointer's revision; every change is a compare-and-set on it.
 */
export const ActivePointerSchema = z.object({
  active: z.string().min(1),
  /** What rollback goes back to: the active model before the last promote. */
  previous: z.string().min(1).nullable(),
  shadow: z.string().min(1).nullable(),
  reason: z.enum(POINTER_REASONS),
  by: z.string().max(128),
  at: isoTime,
  /** A promote that overrode failing gates says so. */
  forced: z.boolean().default(false),
  note: z.string().max(1024).nullable().default(null),
});
export type ActivePointer = z.infer<typeof ActivePointerSchema>;

/** One model a replica tried and would not serve: why, in one line. */
export const RefusalSchema = z.object({ id: z.string(), error: z.string(), at: isoTime });
export type Refusal = z.infer<typeof RefusalSchema>;

/**
 * What one score replica serves (KV key replicaKey(site, replica)), written on every swap and
 * refusal and every REPLICA_STATUS_EVERY_MS, so that `fanwatch model show` and the page see the
 * fleet of replicas, and a replica that stopped reporting is seen as gone.
 */
export const ReplicaStatusSchema = z.object({
  replica: z.string().min(1),
  site: z.string().min(1),
  active: z.string().min(1),
  shadow: z.string().min(1).nullable(),
  /** The pointer revision the replica has acted on. */
  revision: z.number().int().nonnegative(),
  /** The most recent refusals, newest first (at most 10). */
  refused: z.array(RefusalSchema).max(10),
  at: isoTime,
});
export type ReplicaStatus = z.infer<typeof ReplicaStatusSchema>;
export const REPLICA_STATUS_EVERY_MS = 10_000;

/**
 * What predict has seen of a shadow against the active model (KV key comparisonKey(site, shadow,
 * replica)), summed since the shadow started on that replica; `fanwatch model compare` adds the
 * replicas up. `fans` lists fans whose episodes would have gone differently under the shadow
 * (the health rules run on both models' predictions): `opened` the shadow would have alarmed where
 * the active did not (warnings are not counted), `closed` the reverse.
 */
export const ShadowComparisonSchema = z.object({
  site: z.string(),
  replica: z.string(),
  active: z.string(),
  shadow: z.string(),
  since: isoTime,
  at: isoTime,
  readings: z.number().int().nonnegative(),
  /** Readings on which both gave the same fault. */
  agreed: z.number().int().nonnegative(),
  /** Fan alarms each model raised over the window, by the health rules. */
  alarms: z.object({ active: z.number().int().nonnegative(), shadow: z.number().int().nonnegative() }),
  fans: z.object({ opened: z.array(z.string()).max(100), closed: z.array(z.string()).max(100) }),
  /** The score function's time for both models over the time for the active alone (measured in score). */
  cost: z.object({ cpuRatio: z.number().nonnegative().nullable(), latencyRatio: z.number().nonnegative().nullable() }),
});
export type ShadowComparison = z.infer<typeof ShadowComparisonSchema>;

/** The gates a candidate must pass to be promoted (docs/models.md, "Promotion gates"). */
export const GATE_NAMES = ["golden-accuracy", "confirmed-faults", "alarm-change"] as const;
export type GateName = (typeof GATE_NAMES)[number];

export const GateResultSchema = z.object({
  gate: z.enum(GATE_NAMES),
  passed: z.boolean(),
  /** The numbers behind the verdict, one line: "candidate 0.973 ≥ active 0.951". */
  detail: z.string(),
});
export type GateResult = z.infer<typeof GateResultSchema>;
