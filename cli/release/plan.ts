import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../../lib/errors.js";
import { formatImageRef, parseImageRef, qualifiedImageRef, type ImageRef } from "./image-ref.js";
import {
  distinct,
  functionImages,
  manifestImages,
  openfaasImages,
  type SiteImage,
  type SiteSources,
} from "./site-images.js";

/** The name deploy/k3s's manifests give our service image; a release renames and retags it. */
export const OUR_IMAGE = "ghcr.io/fanwatch/fanwatch";

/** Which release: the tag our images were pushed with, and the registry path they were pushed to. */
export interface Release {
  readonly tag: string;
  /** REGISTRY of stack.yml: our images are <registry>/fanwatch and <registry>/<function>. */
  readonly registry: string;
}

/** One image of the manifests: the name they give it, and the reference the release pins it to. */
export interface ManifestImage extends SiteImage {
  /** What a kustomize `images:` entry matches: the name as the base renders it. */
  readonly name: string;
}

export interface ReleasePlan {
  readonly manifests: readonly ManifestImage[];
  readonly functions: ReadonlyArray<SiteImage & { fn: string }>;
  readonly openfaas: readonly SiteImage[];
}

/**
 * Every image the site needs for this release, read from the sources without any network: the
 * manifests' (ours retagged), the functions' (stack.yml with REGISTRY and TAG), OpenFaaS CE's.
 */
export async function planRelease(release: Release, sources: SiteSources): Promise<ReleasePlan> {
  checkTag(release.tag);
  const ours = parseImageRef(`${release.registry}/fanwatch:${release.tag}`);
  const dirs = sources.kustomizations.filter((dir) => existsSync(join(sources.root, dir, "kustomization.yaml")));
  if (dirs.length === 0)
    throw new UsageError(
      `none of ${sources.kustomizations.join(", ")} is in ${sources.root}: is --root the repository?`,
    );
  const rendered = distinct(
    (await Promise.all(dirs.map((dir) => manifestImages(sources.root, dir, sources.kubectl)))).flat(),
  );
  const manifests = rendered.map((image) => {
    const isOurs = image.ref.name === OUR_IMAGE || image.ref.name === ours.name;
    if (!isOurs && image.ref.tag === undefined)
      throw new UsageError(`${image.usedBy} runs "${image.ref.name}" without a tag: name a version in the manifest`);
    // An overlay renders the last release's pins (name:tag@digest): the tag is resolved again.
    return { ...image, name: image.ref.name, ref: isOurs ? ours : { ...image.ref, digest: undefined } };
  });
  const names = new Map<string, string>();
  for (const image of manifests) {
    const seen = names.get(image.name);
    const shown = formatImageRef(image.ref);
    if (seen !== undefined && seen !== shown)
      throw new UsageError(
        `the manifests run ${image.name} as both ${seen} and ${shown}: one kustomize images: entry cannot pin both; use one version`,
      );
    names.set(image.name, shown);
  }
  const functions = await functionImages(sources.root, sources.stack, {
    REGISTRY: release.registry,
    TAG: release.tag,
  });
  return { manifests, functions, openfaas: await openfaasImages(sources) };
}

/** A tag that names a release: never stack.yml's development default, never latest. */
export function checkTag(tag: string): void {
  if (tag === "dev" || tag === "latest")
    throw new UsageError(
      `--tag ${tag} is a moving tag, not a release: tag the images with the release (fanwatch release tag prints <version>-<commit>)`,
    );
  parseImageRef(`x:${tag}`);
}

/** Every distinct reference of the plan, fully qualified, in the order a mirror should copy them. */
export function planImages(plan: ReleasePlan): ImageRef[] {
  const all = [...plan.manifests, ...plan.functions, ...plan.openfaas];
  const seen = new Map<string, ImageRef>();
  for (const { ref } of all) seen.set(qualifiedImageRef(ref), ref);
  return [...seen.values()];
}
