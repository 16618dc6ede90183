import { createHash } from "node:crypto";
import { z } from "zod";
import type { Credential } from "./credentials.js";
import { DIGEST, formatImageRef, type ImageRef } from "./image-ref.js";
import { RegistryError } from "./registry-errors.js";

/**
 * Resolves a tag to the digest the registry serves for it, over the OCI distribution API: a HEAD
 * of /v2/<repository>/manifests/<tag> whose Docker-Content-Digest names the manifest. The Accept
 * header lists the multi-platform forms first (OCI image index, Docker manifest list), so that a
 * multi-arch image pins to its index and each node still pulls its own platform.
 *
 * Registries answer an anonymous request with 401 and a WWW-Authenticate challenge: Bearer (ghcr.io,
 * Docker Hub, quay.io: fetch a pull token from the realm, with the credentials if there are any) or
 * Basic (a plain `registry:2`).
 */
export interface RegistryOptions {
  /** Per registry host (docker.io for Docker Hub): used for the token, or as Basic auth. */
  readonly credentials?: ReadonlyMap<string, Credential>;
  /**
   * Per registry host, the URL to ask instead (https://registry.site.lan:5000/ghcr.io): a site's
   * mirror as registries.yaml names it, its path the prefix of its rewrite, to check that it serves
   * each digest; http:// for one without TLS. As containerd does, the original registry goes along
   * as the `ns` query parameter.
   */
  readonly mirrors?: ReadonlyMap<string, string>;
  readonly timeoutMs?: number;
}

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

const DEFAULT_TIMEOUT_MS = 15_000;

const TokenAnswerSchema = z
  .object({ token: z.string().min(1).optional(), access_token: z.string().min(1).optional() })
  .refine((answer) => answer.token !== undefined || answer.access_token !== undefined, "no token in the answer");

/** Docker Hub's API is not on docker.io itself. */
function apiHost(registry: string): string {
  return registry === "docker.io" ? "registry-1.docker.io" : registry;
}

export async function resolveDigest(ref: ImageRef, options: RegistryOptions = {}): Promise<string> {
  const reference = ref.digest ?? ref.tag ?? "latest";
  const mirror = options.mirrors?.get(ref.registry);
  const url = mirror === undefined ? undefined : new URL(mirror);
  // A mirror URL's path is the prefix registries.yaml's rewrite gives (https://registry.site.lan:5000/ghcr.io).
  const prefix = url?.pathname.replace(/^\/+|\/+$/g, "") ?? "";
  const manifestUrl =
    url === undefined
      ? `https://${apiHost(ref.registry)}/v2/${ref.repository}/manifests/${reference}`
      : `${url.origin}/v2/${prefix === "" ? "" : `${prefix}/`}${ref.repository}/manifests/${reference}?ns=${encodeURIComponent(ref.registry)}`;
  const shown = formatImageRef(ref);
  // Who answered: the registry, or the mirror asked in its place.
  const where =
    url === undefined ? ref.registry : `${url.host}${url.pathname.replace(/\/+$/, "")} (mirror of ${ref.registry})`;
  const call = async (method: "HEAD" | "GET", authorization?: string): Promise<Response> => {
    const headers: Record<string, string> = { accept: MANIFEST_TYPES.join(", ") };
    if (authorization !== undefined) headers.authorization = authorization;
    return request(manifestUrl, { method, headers }, options, url?.host ?? ref.registry);
  };
  let answer = await call("HEAD");
  let authorization: string | undefined;
  if (answer.status === 401) {
    authorization = await authorize(answer.headers.get("www-authenticate"), ref, options);
    answer = await call("HEAD", authorization);
  }
  if (answer.status === 401 || answer.status === 403)
    throw new RegistryError(
      "refused",
      `${where} refused to let us read ${shown} (${answer.status}): it is private and --credentials has no login for ${ref.registry}, or that login may not pull ${ref.repository}`,
      { status: answer.status },
    );
  if (answer.status === 404)
    throw new RegistryError(
      "not-found",
      `${shown} is not in ${where} (404): no such ${ref.digest === undefined ? "tag" : "digest"} in ${ref.repository}; push it first, or check the name`,
      { status: 404 },
    );
  if (!answer.ok)
    throw new RegistryError("failed", `${where} answered ${answer.status} for ${shown}`, {
      status: answer.status,
    });
  const digest = answer.headers.get("docker-content-digest") ?? (await digestOfBody(await call("GET", authorization)));
  if (!DIGEST.test(digest))
    throw new RegistryError("failed", `${where} gave "${digest}" as the digest of ${shown}: not sha256:<hex>`);
  if (ref.digest !== undefined && digest !== ref.digest)
    throw new RegistryError("failed", `${where} serves ${digest} for ${shown}`);
  return digest;
}

/** Some registries leave Docker-Content-Digest off a HEAD: the digest is then that of the manifest's bytes. */
async function digestOfBody(answer: Response): Promise<string> {
  if (!answer.ok) throw new RegistryError("failed", `GET of the manifest answered ${answer.status}`);
  const body = Buffer.from(await answer.arrayBuffer());
  return answer.headers.get("docker-content-digest") ?? `sha256:${createHash("sha256").update(body).digest("hex")}`;
}

/** The Authorization header that answers the registry's challenge, or a RegistryError saying why there is none. */
async function authorize(challenge: string | null, ref: ImageRef, options: RegistryOptions): Promise<string> {
  const credential = options.credentials?.get(ref.registry);
  const basic =
    credential === undefined
      ? undefined
      : `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
  const scheme = challenge?.split(" ")[0]?.toLowerCase();
  if (scheme === "basic") {
    if (basic !== undefined) return basic;
    throw new RegistryError(
      "refused",
      `${ref.registry} wants a login to read ${ref.repository}, and --credentials has none for ${ref.registry}`,
      { status: 401 },
    );
  }
  const params = challengeParams(challenge ?? "");
  const realm = params.get("realm");
  if (scheme !== "bearer" || realm === undefined)
    throw new RegistryError(
      "refused",
      `${ref.registry} answered 401 without a challenge we can answer: "${challenge}"`,
      {
        status: 401,
      },
    );
  const tokenUrl = new URL(realm);
  const service = params.get("service");
  if (service !== undefined) tokenUrl.searchParams.set("service", service);
  tokenUrl.searchParams.set("scope", `repository:${ref.repository}:pull`);
  const headers: Record<string, string> = basic === undefined ? {} : { authorization: basic };
  const answer = await request(tokenUrl.href, { method: "GET", headers }, options, tokenUrl.host);
  if (answer.status === 401 || answer.status === 403)
    throw new RegistryError(
      "refused",
      `${tokenUrl.host} refused a pull token for ${ref.repository} (${answer.status})${basic === undefined ? "" : `: check the login for ${ref.registry} in --credentials`}`,
      { status: answer.status },
    );
  if (!answer.ok)
    throw new RegistryError("failed", `${tokenUrl.host} answered ${answer.status} to a token request`, {
      status: answer.status,
    });
  const parsed = TokenAnswerSchema.safeParse(await answer.json().catch(() => undefined));
  if (!parsed.success) throw new RegistryError("failed", `${tokenUrl.host} answered a token request without a token`);
  return `Bearer ${parsed.data.token ?? parsed.data.access_token}`;
}

/** `Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="..."` to its parameters. */
export function challengeParams(challenge: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const match of challenge.matchAll(/(\w+)="([^"]*)"/g)) params.set(match[1] ?? "", match[2] ?? "");
  return params;
}

async function request(url: string, init: RequestInit, options: RegistryOptions, host: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new RegistryError(
      "unreachable",
      `cannot reach the registry ${host} at ${new URL(url).origin}: ${why} (check the network, the proxy, or the --mirror for it)`,
      { cause: error },
    );
  }
}
