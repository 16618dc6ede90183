import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { ZodError } from "zod";
import { ModelError } from "../errors.js";
import { ModelMetadataSchema, type ModelMetadata } from "./metadata.js";
import { METADATA_FILE, MODEL_FILE, WEIGHTS_FILE } from "./model-files.js";

/**
 * A model directory (lib/inference/model-files.ts). TF.js only reads files through tfjs-node,
 * which may be absent, so files are read and written here and handed over in memory.
 */
export { METADATA_FILE, MODEL_FILE, WEIGHTS_FILE };

export async function saveModel(model: tfl.LayersModel, metadata: ModelMetadata, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights =
        artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson = {
        format: "layers-model",
        generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(join(dir, WEIGHTS_FILE), new Uint8Array(weights));
      await writeFile(join(dir, MODEL_FILE), JSON.stringify(modelJson));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
  );
  await writeFile(join(dir, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
}

export async function readMetadata(dir: string): Promise<ModelMetadata> {
  const raw = await readModelFile(dir, METADATA_FILE);
  try {
    return ModelMetadataSchema.parse(JSON.parse(raw.toString("utf8")));
  } catch (error) {
    const detail =
      error instanceof ZodError
        ? error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
        : String(error);
    throw new ModelError(`${join(dir, METADATA_FILE)} is not valid model metadata: ${detail}`, { cause: error });
  }
}

/**
 * A model's files as they are held in memory: model.json's object, weights.bin's bytes and the
 * metadata. A directory (loadArtifacts) and a registry bundle (lib/models/bundle.ts) both give one.
 */
export interface ModelArtifacts {
  modelJson: Record<string, unknown>;
  weights: Uint8Array;
  metadata: ModelMetadata;
}

export async function loadArtifacts(dir: string): Promise<ModelArtifacts> {
  const metadata = await readMetadata(dir);
  const modelJson = parseModelJson((await readModelFile(dir, MODEL_FILE)).toString("utf8"), join(dir, MODEL_FILE));
  const weights = await readModelFile(dir, weightsManifest(modelJson, join(dir, MODEL_FILE)).paths[0] ?? WEIGHTS_FILE);
  return { modelJson, weights, metadata };
}

export async function loadModel(dir: string): Promise<{ model: tfl.LayersModel; metadata: ModelMetadata }> {
  const artifacts = await loadArtifacts(dir);
  return { model: await layersModelFrom(artifacts, join(dir, MODEL_FILE)), metadata: artifacts.metadata };
}

/** model.json's text as an object, or a ModelError naming `source`. */
export function parseModelJson(text: string, source: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ModelError(`${source} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new ModelError(`${source} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * The layers model of in-memory artifacts. TF.js checks the weights' length against the manifest;
 * its errors become a ModelError naming `source`.
 */
export async function layersModelFrom(artifacts: ModelArtifacts, source: string): Promise<tfl.LayersModel> {
  const manifest = weightsManifest(artifacts.modelJson, source);
  const { weights } = artifacts;
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  try {
    return await tfl.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: artifacts.modelJson["modelTopology"] as tf.io.ModelJSON["modelTopology"],
        weightSpecs: manifest.weights,
        weightData,
      }),
    );
  } catch (error) {
    throw new ModelError(`${source} cannot be loaded: ${(error as Error).message}`, { cause: error });
  }
}

function weightsManifest(modelJson: Record<string, unknown>, source: string): tf.io.WeightsManifestConfig[number] {
  const manifest = (modelJson as Partial<tf.io.ModelJSON>).weightsManifest?.[0];
  if (modelJson["format"] !== "layers-model" || manifest === undefined || manifest.paths.length !== 1) {
    throw new ModelError(`${source} is not a TensorFlow.js layers model with one weights file`);
  }
  return manifest;
}

async function readModelFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(join(dir, name));
  } catch (error) {
    throw new ModelError(`cannot read ${join(dir, name)}: is MODEL_DIR a trained model directory?`, { cause: error });
  }
}
