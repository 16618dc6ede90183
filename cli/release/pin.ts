import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseDocument, stringify } from "yaml";
import { formatImageRef, qualifiedImageRef, type ImageRef } from "./image-ref.js";
import { planImages, type Release, type ReleasePlan } from "./plan.js";
import { resolveDigest, type RegistryOptions } from "./registry.js";
import type { SiteSources } from "./site-images.js";

/** Where `fanwatch release pin` writes, relative to the repository root. */
export const PIN_OUTPUTS = {
  /** The kustomize Component the size overlays include: every manifest image by digest. */
  component: "deploy/k3s/release/kustomization.yaml",
  /** Every image the site needs, by tag and digest: what to copy into the site registry or an air-gap tarball. */
  list: "deploy/k3s/release/images.txt",
  /** stack.yml with each function's image by digest, for `faas-cli deploy -f stack.pinned.yml`. */
  stack: "stack.pinned.yml",
} as const;

export interface PinProgress {
  resolving(done: number, total: number, image: string): void;
}

/** Each image's digest, keyed by its qualified reference, resolved one at a time (a release has about fifteen). */
export async function resolvePlan(
  plan: ReleasePlan,
  options: RegistryOptions,
  progress: PinProgress,
): Promise<Map<string, string>> {
  const images = planImages(plan);
  const digests = new Map<string, string>();
  for (const [i, ref] of images.entries()) {
    progress.resolving(i + 1, images.length, qualifiedImageRef(ref));
    digests.set(qualifiedImageRef(ref), await resolveDigest(ref, options));
  }
  return digests;
}

function pinned(ref: ImageRef, digests: ReadonlyMap<string, string>): ImageRef {
  const digest = digests.get(qualifiedImageRef(ref));
  if (digest === undefined) throw new Error(`no digest resolved for ${qualifiedImageRef(ref)}`);
  return { ...ref, digest };
}

/** Writes the three outputs; returns their paths relative to the root. */
export async function writePins(
  release: Release,
  plan: ReleasePlan,
  digests: ReadonlyMap<string, string>,
  sources: SiteSources,
): Promise<string[]> {
  const write = async (path: string, text: string) => {
    await mkdir(dirname(join(sources.root, path)), { recursive: true });
    await writeFile(join(sources.root, path), text);
  };
  await write(PIN_OUTPUTS.component, componentText(release, plan, digests));
  await write(PIN_OUTPUTS.list, listText(release, plan, digests));
  await write(PIN_OUTPUTS.stack, await pinnedStackText(plan, digests, sources));
  return Object.values(PIN_OUTPUTS);
}

function componentText(release: Release, plan: ReleasePlan, digests: ReadonlyMap<string, string>): string {
  const entries = new Map<string, Record<string, string>>();
  for (const image of plan.manifests) {
    const ref = pinned(image.ref, digests);
    const entry: Record<string, string> = { name: image.name };
    if (ref.name !== image.name) entry.newName = ref.name;
    // The tag stays beside the digest (name:tag@sha256:...) for whoever reads a pod; the digest decides the pull.
    if (ref.tag !== undefined) entry.newTag = ref.tag;
    entry.digest = ref.digest ?? "";
    entries.set(image.name, entry);
  }
  const images = [...entries.values()].sort((a, b) => (a.name ?? "").localeCompare(b.name ?? ""));
  return [
    `# Written by \`fanwatch release pin --tag ${release.tag}\` (docs/offline.md): every image of the`,
    "# manifests by digest, so that a site's registry mirror serves exactly what was released. The size",
    "# overlays include this Component; with `images: []` it pins nothing. Do not edit: run the command.",
    stringify({ apiVersion: "kustomize.config.k8s.io/v1alpha1", kind: "Component", images }).trimEnd(),
    "",
  ].join("\n");
}

function listText(release: Release, plan: ReleasePlan, digests: ReadonlyMap<string, string>): string {
  const usedBy = new Map<string, string[]>();
  for (const { ref, usedBy: where } of [...plan.manifests, ...plan.functions, ...plan.openfaas]) {
    const key = qualifiedImageRef(ref);
    usedBy.set(key, [...(usedBy.get(key) ?? []), where]);
  }
  const lines = planImages(plan).map((ref) => {
    const key = qualifiedImageRef(ref);
    return `${qualifiedImageRef(pinned(ref, digests))}  # ${(usedBy.get(key) ?? []).join("; ")}`;
  });
  return [
    `# Every image a fanwatch site pulls for release ${release.tag}, by tag and digest (fanwatch release pin).`,
    "# Copy each into the site registry, or save them into an air-gap tarball: docs/offline.md.",
    "# K3s's own images are in its k3s-airgap-images tarball, not here.",
    ...lines,
    "",
  ].join("\n");
}

/**
 * stack.yml with each function's image replaced by `<name>@<digest>`, its comments and ${VAR}s kept.
 * Without the tag: faas-netes CE checks the reference with go-containerregistry before deploying,
 * and a bare digest is the form every tool reads alike.
 */
async function pinnedStackText(
  plan: ReleasePlan,
  digests: ReadonlyMap<string, string>,
  sources: SiteSources,
): Promise<string> {
  const doc = parseDocument(await readFile(join(sources.root, sources.stack), "utf8"));
  for (const { fn, ref } of plan.functions) {
    const digest = pinned(ref, digests).digest;
    doc.setIn(["functions", fn, "image"], formatImageRef({ name: ref.name, tag: undefined, digest }));
    const node = doc.getIn(["functions", fn, "image"], true) as { comment?: string } | undefined;
    if (node !== undefined) node.comment = ` ${formatImageRef({ ...ref, digest: undefined })}`;
  }
  const header =
    "# Written by `fanwatch release pin` from stack.yml: the functions' images by digest (docs/offline.md).\n";
  return header + doc.toString({ lineWidth: 0 });
}
