/** TF.js backends in order of preference. Kept apart from backend.ts so that reading configuration does not load TensorFlow.js. */
export const BACKENDS = ["tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
