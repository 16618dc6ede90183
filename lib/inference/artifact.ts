import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { ZodError } from "zod";
import { ModelError } from "../errors.js";
import { ModelMetadataSchema, type ModelMetadata } from "./metadata.js";

/**
 * A model directory holds the standard TensorFlow.js layers format (model.json + weights.bin),
 * readable by any TF.js tool, plus our metadata.json. TF.js only reads files through tfjs-node,
 * which may be absent, so files are read and written here and handed over in memory.
 */
export const MODEL_FILE = "model.json";
export const WEIGHTS_FILE = "weights.bin";
export const METADATA_FILE = "metadata.json";

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

export async function loadModel(dir: string): Promise<{ model: tfl.LayersModel; metadata: ModelMetadata }> {
  const metadata = await readMetadata(dir);
  const modelJson = JSON.parse((await readModelFile(dir, MODEL_FILE)).toString("utf8")) as tf.io.ModelJSON;
  const manifest = modelJson.weightsManifest?.[0];
  if (modelJson.format !== "layers-model" || manifest === undefined || manifest.paths.length !== 1) {
    throw new ModelError(`${join(dir, MODEL_FILE)} is not a TensorFlow.js layers model with one weights file`);
  }
  const weights = await readModelFile(dir, manifest.paths[0] ?? WEIGHTS_FILE);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: manifest.weights, weightData }),
  );
  return { model, metadata };
}

async function readModelFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(join(dir, name));
  } catch (error) {
    throw new ModelError(`cannot read ${join(dir, name)}: is MODEL_DIR a trained model directory?`, { cause: error });
  }
}
