import { UsageError } from "../../lib/errors.js";

/**
 * An image reference as Kubernetes and containerd read it: `[registry/]repository[:tag][@digest]`.
 * A name whose first part has no dot or colon (and is not localhost) is on Docker Hub, and a
 * one-part Docker Hub name is under `library/` (docker.io/library/influxdb).
 */
export interface ImageRef {
  /** As written, without tag or digest: what a kustomize `images:` entry matches (`influxdb`). */
  readonly name: string;
  /** The registry's host[:port]; `docker.io` for Docker Hub. */
  readonly registry: string;
  /** The repository path in that registry (`library/influxdb`). */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

export const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

export function parseImageRef(text: string): ImageRef {
  const refuse = (why: string) => new UsageError(`image "${text}" is not a valid reference: ${why}`);
  const at = text.indexOf("@");
  const digest = at === -1 ? undefined : text.slice(at + 1);
  if (digest !== undefined && !DIGEST.test(digest)) throw refuse("the digest must be sha256:<64 hex digits>");
  const rest = at === -1 ? text : text.slice(0, at);
  // A colon after the last slash starts the tag; one before it is a registry's port.
  const colon = rest.lastIndexOf(":");
  const hasTag = colon > rest.lastIndexOf("/");
  const name = hasTag ? rest.slice(0, colon) : rest;
  const tag = hasTag ? rest.slice(colon + 1) : undefined;
  if (tag !== undefined && !TAG.test(tag)) throw refuse(`the tag "${tag}" is not a valid tag`);
  const [first = "", ...others] = name.split("/");
  // Docker Hub: no registry part (a first part without ".", ":" or "localhost"), or named as such.
  const hubNamed = others.length > 0 && (first === "docker.io" || first === "index.docker.io");
  const noRegistry = others.length === 0 || !(first.includes(".") || first.includes(":") || first === "localhost");
  const onHub = hubNamed || noRegistry;
  const registry = onHub ? "docker.io" : first;
  const path = hubNamed || !onHub ? others.join("/") : name;
  const repository = onHub && !path.includes("/") ? `library/${path}` : path;
  if (!REPOSITORY.test(repository)) throw refuse(`"${repository}" is not a valid repository name`);
  return { name, registry, repository, tag, digest };
}

/** `name:tag@digest` (or without the parts it lacks): the form a pinned manifest carries. */
export function formatImageRef(ref: Pick<ImageRef, "name" | "tag" | "digest">): string {
  return `${ref.name}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/** The fully qualified form (docker.io/library/influxdb:1.8.10-alpine), for lists other tools read. */
export function qualifiedImageRef(ref: ImageRef): string {
  return formatImageRef({ ...ref, name: `${ref.registry}/${ref.repository}` });
}
