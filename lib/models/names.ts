import { encodeKey } from "../nats/keys.js";

/** The Object Store bucket of model bundles: one object per version, named by its id. */
export const MODELS_BUCKET = "fan_models";
/** The KV bucket of active pointers, replica statuses and shadow comparisons. */
export const ACTIVE_BUCKET = "fan_models_active";
/** Revisions kept of each key: the pointer's history, what `fanwatch model list` shows of it. */
export const ACTIVE_HISTORY = 64;

export function pointerKey(site: string): string {
  return `pointer.${encodeKey(site)}`;
}

export function replicaKey(site: string, replica: string): string {
  return `replica.${encodeKey(site)}.${encodeKey(replica)}`;
}

/** Every replica status key of a site (a KV filter). */
export function replicaKeys(site: string): string {
  return `replica.${encodeKey(site)}.>`;
}

export function comparisonKey(site: string, shadow: string, replica: string): string {
  return `compare.${encodeKey(site)}.${encodeKey(shadow)}.${encodeKey(replica)}`;
}

/** Every comparison key of a site's shadow (a KV filter). */
export function comparisonKeys(site: string, shadow: string): string {
  return `compare.${encodeKey(site)}.${encodeKey(shadow)}.>`;
}
