/**
 * The files of a model directory: the standard TensorFlow.js layers format (model.json +
 * weights.bin), readable by any TF.js tool, plus our metadata.json. Kept apart from artifact.ts so
 * that naming them does not load TensorFlow.js.
 */
export const MODEL_FILE = "model.json";
export const WEIGHTS_FILE = "weights.bin";
export const METADATA_FILE = "metadata.json";
