import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import { ModelError } from "../errors.js";
import { FEATURES } from "../features.js";
import { loadModel } from "./artifact.js";
import type { BackendName } from "./backend-names.js";
import { initBackend } from "./backend.js";
import type { ModelMetadata } from "./metadata.js";

export interface Prediction {
  fault: 0 | 1;
  probability: number;
}

type Activation = "relu" | "linear" | "sigmoid";
interface DenseStep {
  kernel: tf.Tensor2D;
  bias: tf.Tensor1D;
  activation: Activation;
}

/**
 * A trained fan-fault model ready to score. The layers model is compiled once into a chain of fused
 * matMul+bias+activation kernels: on the wasm backend that scores 1,000 readings in well under a
 * millisecond, about ten times faster than LayersModel.predict with its per-call bookkeeping.
 */
export class ScoringModel {
  readonly metadata: ModelMetadata;
  readonly backend: BackendName;
  readonly #steps: DenseStep[];
  readonly #mean: Float32Array;
  readonly #scale: Float32Array;

  private constructor(metadata: ModelMetadata, backend: BackendName, steps: DenseStep[]) {
    this.metadata = metadata;
    this.backend = backend;
    this.#steps = steps;
    this.#mean = Float32Array.from(metadata.scaler.mean);
    this.#scale = Float32Array.from(metadata.scaler.std, (s) => 1 / s);
  }

  static async load(dir: string, options: { backend?: string } = {}): Promise<ScoringModel> {
    const backend = await initBackend(options.backend);
    const { model, metadata } = await loadModel(dir);
    const expected = FEATURES.join(",");
    if (metadata.features.join(",") !== expected) {
      throw new ModelError(`model features are [${metadata.features.join(", ")}], expected [${expected}]`);
    }
    const scoring = new ScoringModel(metadata, backend, compileDenseStack(model));
    model.dispose();
    scoring.probabilities([[600, 40, 150, 48]]); // first call compiles kernels; pay it before traffic
    return scoring;
  }

  get threshold(): number {
    return this.metadata.threshold;
  }

  /** Fault probabilities for raw (unscaled) readings in FEATURES order, in one tensor call. */
  probabilities(rows: ReadonlyArray<ArrayLike<number>>): Float32Array {
    const width = FEATURES.length;
    const input = new Float32Array(rows.length * width);
    rows.forEach((row, r) => {
      for (let c = 0; c < width; c++) {
        input[r * width + c] = ((row[c] as number) - (this.#mean[c] as number)) * (this.#scale[c] as number);
      }
    });
    const output = tf.tidy(() => {
      let h: tf.Tensor2D = tf.tensor2d(input, [rows.length, width]);
      for (const step of this.#steps) {
        h = tf.fused.matMul({ a: h, b: step.kernel, bias: step.bias, activation: step.activation }) as tf.Tensor2D;
      }
      return h;
    });
    const values = output.dataSync() as Float32Array;
    output.dispose();
    return values;
  }

  predict(rows: ReadonlyArray<ArrayLike<number>>): Prediction[] {
    return Array.from(this.probabilities(rows), (p) => this.toPrediction(p));
  }

  toPrediction(probability: number): Prediction {
    return { fault: probability >= this.threshold ? 1 : 0, probability: Math.round(probability * 1e6) / 1e6 };
  }

  dispose(): void {
    for (const step of this.#steps) {
      step.kernel.dispose();
      step.bias.dispose();
    }
  }
}

function compileDenseStack(model: tfl.LayersModel): DenseStep[] {
  const steps: DenseStep[] = [];
  for (const layer of model.layers) {
    const config = layer.getConfig();
    const activation = config["activation"];
    if (layer.getClassName() !== "Dense" || (activation !== "relu" && activation !== "linear" && activation !== "sigmoid")) {
      throw new ModelError(`unsupported layer ${layer.getClassName()} (${String(activation)}): the runtime scores Dense relu/linear/sigmoid stacks`);
    }
    const [kernel, bias] = layer.getWeights();
    if (kernel === undefined || bias === undefined) throw new ModelError(`layer ${layer.name} has no bias`);
    steps.push({ kernel: tf.keep(kernel.clone()) as tf.Tensor2D, bias: tf.keep(bias.clone()) as tf.Tensor1D, activation });
  }
  if (steps.length === 0) throw new ModelError("the model has no layers");
  return steps;
}
