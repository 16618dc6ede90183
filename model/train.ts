import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { HEALTHY_RANGES } from "../lib/domain/fan-ranges.js";
import { FEATURES } from "../lib/domain/features.js";
import { DataFormatError, UsageError } from "../lib/errors.js";
import { saveModel } from "../lib/inference/artifact.js";
import { initBackend } from "../lib/inference/backend.js";
import type { ModelMetadata } from "../lib/inference/metadata.js";
import { writeGoldenFile } from "../lib/models/bundle.js";
import type { PerSensor } from "../lib/domain/prediction.js";
import { seededRandom, shuffleInPlace } from "../simulation/rng.js";
import type { Dataset, LabelledReading } from "./dataset.js";
import { TRAIN_DEFAULTS } from "./defaults.js";
import { evaluatePredictions } from "./metrics.js";

export const LAYER_UNITS = [60, 30, 10, 1] as const;

export interface TrainOptions {
  dataset: Dataset;
  dataFile: string;
  outDir: string;
  epochs?: number;
  batchSize?: number;
  seed?: number;
  testSplit?: number;
  learningRate?: number;
  backend?: string;
  /** The command line that reproduces this run, recorded in metadata.json. */
  command?: string;
  onEpoch?: (progress: EpochProgress) => void;
}

export interface EpochProgress {
  epoch: number;
  epochs: number;
  loss: number;
  accuracy: number;
  testAccuracy: number;
  elapsedSeconds: number;
}

/**
 * Trains the reference architecture (Dense 60-30-10-1, relu, sigmoid out, Adam, binary
 * cross-entropy) on standardised features with a seeded split, shuffles and initialisers, so the
 * same data and seed give the same model. Writes the model directory and returns its metadata.
 */
export async function trainModel(options: TrainOptions): Promise<ModelMetadata> {
  const settings = trainSettings(options);
  const backend = await initBackend(options.backend);
  const started = performance.now();
  const random = seededRandom(settings.seed);
  const { train, test } = splitRows(options.dataset.rows, settings.testSplit, random);
  const scaler = fitScaler(train);

  const model = buildModel(settings.seed, options.learningRate ?? TRAIN_DEFAULTS.learningRate);
  const testX = toInput(test, scaler);
  const testY = test.map((r) => r.faulty);
  for (let epoch = 1; epoch <= settings.epochs; epoch++) {
    shuffleInPlace(train, random); // our own seeded shuffle: fit's shuffle uses Math.random
    const history = await fitOnce(model, train, scaler, settings.batchSize);
    options.onEpoch?.({
      epoch,
      epochs: settings.epochs,
      loss: Number(history.history["loss"]?.[0]),
      accuracy: Number(history.history["acc"]?.[0] ?? history.history["accuracy"]?.[0]),
      testAccuracy: evaluatePredictions(testY, predictProbabilities(model, testX), 0.5).accuracy,
      elapsedSeconds: (performance.now() - started) / 1000,
    });
  }

  const threshold = 0.5;
  const metrics = evaluatePredictions(testY, predictProbabilities(model, testX), threshold);
  testX.dispose();
  const metadata: ModelMetadata = {
    id: `fan-dense-${weightsHash(model).slice(0, 12)}`,
    createdAt: new Date().toISOString(),
    features: [...FEATURES],
    scaler,
    threshold,
    reference: healthyReference(),
    architecture: `Dense ${LAYER_UNITS.join("-")} (relu, relu, relu, sigmoid), standardised inputs`,
    training: {
      data: { file: options.dataFile, sha256: options.dataset.sha256, rows: options.dataset.rows.length },
      trainRows: train.length,
      testRows: test.length,
      ...settings,
      backend,
      tfjsVersion: tf.version_core,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      command: options.command ?? "",
    },
    metrics,
  };
  await saveModel(model, metadata, options.outDir);
  model.dispose();
  // The model's answers to the golden readings, on this backend: its bundle then has one id on every backend.
  await writeGoldenFile(options.outDir, backend);
  return metadata;
}

/** The options with their defaults, refused when impossible. */
function trainSettings(options: TrainOptions): { epochs: number; batchSize: number; seed: number; testSplit: number } {
  const epochs = options.epochs ?? TRAIN_DEFAULTS.epochs;
  const testSplit = options.testSplit ?? TRAIN_DEFAULTS.testSplit;
  if (!(testSplit > 0 && testSplit < 1)) throw new UsageError(`--test-split must be between 0 and 1, not ${testSplit}`);
  if (!Number.isInteger(epochs) || epochs < 1)
    throw new UsageError(`--epochs must be a whole number >= 1, not ${epochs}`);
  return {
    epochs,
    batchSize: options.batchSize ?? TRAIN_DEFAULTS.batchSize,
    seed: options.seed ?? TRAIN_DEFAULTS.seed,
    testSplit,
  };
}

/** A seeded shuffle of the rows, split into training and test rows. */
function splitRows(
  rows: readonly LabelledReading[],
  testSplit: number,
  random: () => number,
): { train: LabelledReading[]; test: LabelledReading[] } {
  const shuffled = shuffleInPlace([...rows], random);
  const testCount = Math.round(shuffled.length * testSplit);
  const test = shuffled.slice(0, testCount);
  const train = shuffled.slice(testCount);
  if (train.length === 0 || test.length === 0)
    throw new DataFormatError(
      `${shuffled.length} rows are too few to split into training and test readings: give more rows or change --test-split`,
    );
  return { train, test };
}

/** One epoch over the rows in their present order. */
async function fitOnce(
  model: tfl.Sequential,
  rows: readonly LabelledReading[],
  scaler: { mean: number[]; std: number[] },
  batchSize: number,
): Promise<tfl.History> {
  const x = toInput(rows, scaler);
  const y = tf.tensor2d(
    rows.map((r) => r.faulty),
    [rows.length, 1],
  );
  const history = await model.fit(x, y, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
  x.dispose();
  y.dispose();
  return history;
}

/**
 * The reading explanations are measured against: the centre of the healthy ranges the data is
 * drawn from, a reading no sensor would call faulty (docs/model.md).
 */
export function healthyReference(): PerSensor {
  return Object.fromEntries(FEATURES.map((f) => [f, (HEALTHY_RANGES[f].min + HEALTHY_RANGES[f].max) / 2])) as PerSensor;
}

function buildModel(seed: number, learningRate: number): tfl.Sequential {
  const model = tfl.sequential();
  LAYER_UNITS.forEach((units, i) => {
    model.add(
      tfl.layers.dense({
        units,
        activation: i === LAYER_UNITS.length - 1 ? "sigmoid" : "relu",
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + i }),
        ...(i === 0 ? { inputShape: [FEATURES.length] } : {}),
      }),
    );
  });
  model.compile({ optimizer: tf.train.adam(learningRate), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  return model;
}

function fitScaler(rows: readonly LabelledReading[]): { mean: number[]; std: number[] } {
  const mean = FEATURES.map((_, c) => rows.reduce((sum, r) => sum + r.features[c]!, 0) / rows.length);
  const std = FEATURES.map((_, c) => {
    const variance = rows.reduce((sum, r) => sum + (r.features[c]! - mean[c]!) ** 2, 0) / rows.length;
    return Math.sqrt(variance) || 1;
  });
  return { mean, std };
}

function toInput(rows: readonly LabelledReading[], scaler: { mean: number[]; std: number[] }): tf.Tensor2D {
  const width = FEATURES.length;
  const values = new Float32Array(rows.length * width);
  rows.forEach((r, i) =>
    r.features.forEach((v, c) => (values[i * width + c] = (v - scaler.mean[c]!) / scaler.std[c]!)),
  );
  return tf.tensor2d(values, [rows.length, width]);
}

function predictProbabilities(model: tfl.LayersModel, x: tf.Tensor2D): Float32Array {
  const output = model.predict(x) as tf.Tensor;
  const values = output.dataSync() as Float32Array;
  output.dispose();
  return values;
}

function weightsHash(model: tfl.LayersModel): string {
  const hash = createHash("sha256");
  for (const w of model.getWeights()) hash.update(new Uint8Array((w.dataSync() as Float32Array).buffer));
  return hash.digest("hex");
}
