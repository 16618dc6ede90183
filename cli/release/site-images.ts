import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { UsageError } from "../../lib/errors.js";
import { parseStack } from "../../runtime/gateway/stack.js";
import { parseImageRef, type ImageRef } from "./image-ref.js";
import { chartImages, readHelmChart } from "./openfaas-chart.js";

/** An image the site pulls, and where it is named (for the progress lines and the list's comments). */
export interface SiteImage {
  readonly ref: ImageRef;
  readonly usedBy: string;
}

/** Where a release reads from, relative to the repository root. */
export interface SiteSources {
  readonly root: string;
  /** Kustomization directories whose render names the images (a previous release's digests in it are ignored). */
  readonly kustomizations: readonly string[];
  readonly stack: string;
  /** The manifest holding the OpenFaaS HelmChart. */
  readonly helmChart: string;
  /** A values.yaml of the OpenFaaS chart, for a version KNOWN_CHARTS lacks. */
  readonly chartValues?: string;
  /** kubectl (its `kustomize` renders) or a path to it. */
  readonly kubectl: string;
}

/**
 * The base, the size overlays and the simulator: what an overlay or a component adds (a backup
 * CronJob, a storage helper) is pulled too. Those not in the tree are skipped.
 */
export const DEFAULT_SOURCES: Omit<SiteSources, "root"> = {
  kustomizations: [
    "deploy/k3s/base",
    "deploy/k3s/one-node",
    "deploy/k3s/two-nodes",
    "deploy/k3s/three-nodes",
    "deploy/k3s/simulator",
  ],
  stack: "stack.yml",
  helmChart: "deploy/k3s/base/openfaas.yaml",
  kubectl: "kubectl",
};

const run = promisify(execFile);

/** Every container image a kustomization renders to, with the kind/name of what runs it. */
export async function manifestImages(root: string, dir: string, kubectl: string): Promise<SiteImage[]> {
  let stdout: string;
  try {
    ({ stdout } = await run(kubectl, ["kustomize", join(root, dir)], { maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT")
      throw new UsageError(
        `"${kubectl}" is not installed: it renders ${dir} (kubectl kustomize); pass --kubectl <path>`,
      );
    throw new UsageError(`${kubectl} kustomize ${dir} failed: ${(e.stderr ?? e.message).trim()}`, { cause: error });
  }
  const images: SiteImage[] = [];
  for (const doc of parseAllDocuments(stdout)) {
    const object = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
    if (object === null || typeof object !== "object") continue;
    for (const image of containerImages(object))
      images.push({ ref: parseImageRef(image), usedBy: `${dir}: ${object.kind}/${object.metadata?.name}` });
  }
  return images;
}

/** The `image` of every entry in any containers, initContainers or ephemeralContainers list, however deep (pods, templates, CronJobs). */
export function containerImages(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(containerImages);
  if (typeof node !== "object" || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) => {
    if (/^(containers|initContainers|ephemeralContainers)$/.test(key) && Array.isArray(value))
      return value.flatMap((c: unknown) => {
        const image = (c as { image?: unknown } | null)?.image;
        return typeof image === "string" ? [image] : [];
      });
    return containerImages(value);
  });
}

/** The functions' images in stack.yml, with REGISTRY and TAG as faas-cli would substitute them. */
export async function functionImages(
  root: string,
  stack: string,
  env: NodeJS.ProcessEnv,
): Promise<Array<SiteImage & { fn: string }>> {
  const parsed = parseStack(await readFile(join(root, stack), "utf8"), env);
  return Object.entries(parsed.functions).map(([fn, f]) => ({
    fn,
    ref: parseImageRef(f.image),
    usedBy: `${stack}: ${fn}`,
  }));
}

/** OpenFaaS CE's own images, for the chart version the HelmChart installs. */
export async function openfaasImages(sources: SiteSources): Promise<SiteImage[]> {
  const file = join(sources.root, sources.helmChart);
  const { version, values } = readHelmChart(await readFile(file, "utf8"), relative(sources.root, file));
  const chartValues =
    sources.chartValues === undefined
      ? undefined
      : {
          text: await readFile(sources.chartValues, "utf8").catch((error: unknown) => {
            throw new UsageError(`--chart-values: cannot read ${sources.chartValues}: ${(error as Error).message}`);
          }),
          file: sources.chartValues,
        };
  return chartImages(version, values, chartValues).map(({ key, image }) => ({
    ref: parseImageRef(image),
    usedBy: `OpenFaaS chart ${version}: ${key}`,
  }));
}

/** One entry per distinct reference, keeping the first place it is used. */
export function distinct<T extends SiteImage>(images: readonly T[]): T[] {
  const seen = new Map<string, T>();
  for (const image of images) {
    const key = `${image.ref.name}:${image.ref.tag ?? ""}@${image.ref.digest ?? ""}`;
    if (!seen.has(key)) seen.set(key, image);
  }
  return [...seen.values()];
}
