import * as tf from "@tensorflow/tfjs-core";

import { ConfigError } from "../errors.js";
import { BACKENDS, type BackendName } from "./backend-names.js";

/**
 * Picks the fastest TF.js backend that loads here: tfjs-node (native TensorFlow, an optional
 * dependency whose install downloads a binary) where installed, else WebAssembly, else pure JS.
 * `preferred` (TFJS_BACKEND) forces one and fails loudly if it cannot load.
 */
export async function initBackend(preferred?: string): Promise<BackendName> {
  // PROD turns off TF.js debug checks and its "install tfjs-node" console banner, which would
  // otherwise break our one-JSON-object-per-line logs.
  tf.env().set("PROD", true);
  if (preferred !== undefined && preferred !== "") {
    if (!(BACKENDS as readonly string[]).includes(preferred)) {
      throw new ConfigError(`TFJS_BACKEND must be one of ${BACKENDS.join(", ")}, not "${preferred}"`);
    }
    const name = preferred as BackendName;
    if (!(await tryBackend(name)))
      throw new ConfigError(
        `TFJS_BACKEND is "${name}" but that TF.js backend could not be loaded here: pick another (${BACKENDS.join(", ")}) or unset it`,
      );
    return name;
  }
  for (const name of BACKENDS) {
    if (await tryBackend(name)) return name;
  }
  throw new Error("no TF.js backend could be loaded");
}

async function tryBackend(name: BackendName): Promise<boolean> {
  try {
    if (name === "tensorflow") {
      // A variable keeps TypeScript from requiring the optional package's types at build time.
      const tfjsNode = "@tensorflow/tfjs-node";
      await import(tfjsNode);
    } else if (name === "wasm") {
      await import("@tensorflow/tfjs-backend-wasm");
    } else {
      await import("@tensorflow/tfjs-backend-cpu");
    }
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}
