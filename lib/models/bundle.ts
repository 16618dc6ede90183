import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ZodError } from "zod";
import { ModelError, ModelRefusedError } from "../errors.js";
import type { ModelArtifacts } from "../inference/artifact.js";
import { METADATA_FILE, MODEL_FILE, WEIGHTS_FILE } from "../inference/model-files.js";
import type { ScoringModel } from "../inference/runtime.js";
import { checkGoldenSet, describeGoldenCheck, goldenReadings, makeGoldenSet, type GoldenCheck } from "./golden.js";
import { BUNDLE_FORMAT, GoldenSetSchema, ModelBundleSchema, type GoldenSet, type ModelBundle } from "./schemas.js";

/** A model directory's golden set, beside model.json: written by writeBundleDirectory, read by bundleFromDirectory. */
export const GOLDEN_FILE = "golden.json";

export interface BundleOptions {
  /** The id of the model this one was trained from; null for one trained from scratch. */
  parent: string | null;
  /** The golden set to ship, in place of the directory's golden.json or the model's own answers. */
  golden?: GoldenSet;
  /** TFJS_BACKEND, for the model's own answers. */
  backend?: string;
}

/**
 * A bundle of a model directory as `fanwatch train` writes it: model.json, weights.bin,
 * metadata.json, and the golden set given, else the directory's golden.json, else one made from the
 * model's own answers to the standard golden readings (lib/models/golden.ts). Those answers can
 * differ in their last decimal from one TF.js backend to another, and with them the bundle's id:
 * hence golden.json, written once by `fanwatch train` (writeGoldenFile), for a directory that
 * replicas on different backends bundle to one id.
 */
export async function bundleFromDirectory(dir: string, options: BundleOptions): Promise<ModelBundle> {
  const { loadArtifacts } = await import("../inference/artifact.js");
  const artifacts = await loadArtifacts(dir);
  const golden = options.golden ?? (await readGoldenFile(dir)) ?? (await ownGoldenSet(artifacts, dir, options.backend));
  return {
    format: BUNDLE_FORMAT,
    parent: options.parent,
    metadata: artifacts.metadata,
    modelJson: artifacts.modelJson,
    weights: Buffer.from(artifacts.weights).toString("base64"),
    golden,
  };
}

/** Writes golden.json into a model directory: the model's own answers to the standard golden readings. */
export async function writeGoldenFile(dir: string, backend?: string): Promise<GoldenSet> {
  const { loadArtifacts } = await import("../inference/artifact.js");
  const golden = await ownGoldenSet(await loadArtifacts(dir), dir, backend);
  await writeFile(join(dir, GOLDEN_FILE), `${JSON.stringify(golden)}\n`);
  return golden;
}

async function readGoldenFile(dir: string): Promise<GoldenSet | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, GOLDEN_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ModelError(`cannot read ${join(dir, GOLDEN_FILE)}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return GoldenSetSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new ModelError(`${join(dir, GOLDEN_FILE)} is not a golden set: ${problems(error)}`, { cause: error });
  }
}

/**
 * TensorFlow.js (runtime.ts, artifact.ts) is loaded only where a model is: the registry's reads and
 * pointer moves (rollback) never pay for it.
 */
async function runtime(): Promise<typeof ScoringModel> {
  return (await import("../inference/runtime.js")).ScoringModel;
}

async function ownGoldenSet(artifacts: ModelArtifacts, dir: string, backend?: string): Promise<GoldenSet> {
  const ScoringModel = await runtime();
  const model = await ScoringModel.fromArtifacts(artifacts, join(dir, MODEL_FILE), { backend });
  try {
    return makeGoldenSet(model, goldenReadings());
  } finally {
    model.dispose();
  }
}

/**
 * The bytes stored for a bundle: JSON with every object's keys sorted, so that the same bundle
 * always gives the same bytes, and so the same id, whoever encodes it.
 */
export function encodeBundle(bundle: ModelBundle): Uint8Array {
  return Buffer.from(JSON.stringify(bundle, sortedKeys), "utf8");
}

function sortedKeys(_key: string, value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) sorted[key] = (value as Record<string, unknown>)[key];
  return sorted;
}

/** A model's id: `fan-` and the first 16 hex digits of SHA-256 over its stored bytes. */
export function bundleId(bytes: Uint8Array): string {
  return `fan-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}`;
}

/** The ids bundleId makes; anything else names no model. */
export const MODEL_ID = /^fan-[0-9a-f]{16}$/;

/**
 * The bundle stored as `bytes` under `id`, refused (ModelRefusedError) when the bytes are not the
 * ones `id` names, are not JSON, or do not follow the bundle schema (each issue named).
 */
export function decodeBundle(bytes: Uint8Array, id: string): ModelBundle {
  const digest = bundleId(bytes);
  if (digest !== id)
    throw new ModelRefusedError(`model ${id} refused: its stored bytes have the digest ${digest}, not its id`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (error) {
    throw new ModelRefusedError(`model ${id} refused: not a bundle (not JSON: ${(error as Error).message})`, {
      cause: error,
    });
  }
  const result = ModelBundleSchema.safeParse(parsed);
  if (!result.success)
    throw new ModelRefusedError(`model ${id} refused: not a valid bundle: ${problems(result.error)}`);
  return result.data;
}

/** A bundle's model files, in memory; the metadata's id is the registry's, so predictions name the version. */
export function bundleArtifacts(bundle: ModelBundle, id: string): ModelArtifacts {
  return {
    modelJson: bundle.modelJson,
    weights: Buffer.from(bundle.weights, "base64"),
    metadata: { ...bundle.metadata, id },
  };
}

/**
 * The model of a bundle, ready to serve: loaded, warmed up and checked against its golden set.
 * Refused (ModelRefusedError, the model disposed) when it cannot be loaded (corrupt weights,
 * another input shape, an unsupported layer) or gives another answer to any golden reading.
 */
export async function loadBundleModel(
  bundle: ModelBundle,
  id: string,
  options: { backend?: string } = {},
): Promise<{ model: ScoringModel; golden: GoldenCheck }> {
  const ScoringModel = await runtime();
  let model: ScoringModel;
  try {
    model = await ScoringModel.fromArtifacts(bundleArtifacts(bundle, id), `model ${id}`, options);
  } catch (error) {
    throw new ModelRefusedError(`model ${id} refused: it cannot be loaded: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const golden = checkGoldenSet(model, bundle.golden);
  if (!golden.passed) {
    model.dispose();
    throw new ModelRefusedError(`model ${id} refused: it fails its golden set: ${describeGoldenCheck(golden)}`);
  }
  return { model, golden };
}

/**
 * A bundle as a model directory (model.json, weights.bin, metadata.json, golden.json), as
 * `fanwatch train` writes one plus its golden set: what MODEL_DIR and `fanwatch model push` read.
 * The metadata is written as stored, so pushing the directory again with the same parent gives
 * the same id.
 */
export async function writeBundleDirectory(bundle: ModelBundle, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MODEL_FILE), JSON.stringify(bundle.modelJson));
  await writeFile(join(dir, WEIGHTS_FILE), Buffer.from(bundle.weights, "base64"));
  await writeFile(join(dir, METADATA_FILE), `${JSON.stringify(bundle.metadata, null, 2)}\n`);
  await writeFile(join(dir, GOLDEN_FILE), `${JSON.stringify(bundle.golden)}\n`);
}

/** Zod's issues as "path: message; …", anything else as its message. */
function problems(error: unknown): string {
  if (error instanceof ZodError)
    return error.issues.map((i) => `${i.path.length === 0 ? "(root)" : i.path.join(".")}: ${i.message}`).join("; ");
  return error instanceof Error ? error.message : String(error);
}
