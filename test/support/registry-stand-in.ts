import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A STAND-IN for an OCI registry (ghcr.io, Docker Hub, quay.io, a site's registry:2): no Docker
 * daemon or registry runs here. It speaks only the part of the distribution API that resolving a
 * tag uses: HEAD and GET of /v2/<repository>/manifests/<tag or digest>, answering an anonymous
 * request with 401 and a Bearer challenge whose realm hands out pull tokens (anonymously for
 * public repositories, for a user and password only for private ones), as ghcr.io and Docker Hub do.
 * One stand-in plays several registries: the `ns` query parameter (containerd's, and our --mirror's)
 * says which.
 */
export interface StandInImage {
  /** The registry the image is on (ghcr.io, docker.io). */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  /** Only this user and password may pull it. */
  readonly private?: boolean;
}

export interface RegistryStandIn {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** The digest it serves for an image: of its manifest list's bytes. */
  digestOf(registry: string, repository: string, tag: string): string | undefined;
  /** Every manifest request, with the Accept header it carried. */
  readonly requests: ReadonlyArray<{ method: string; path: string; accept: string; authorized: boolean }>;
  close(): Promise<void>;
}

export const STAND_IN_USER = { username: "release-bot", password: "s3cret-pull-token" };

const INDEX_TYPE = "application/vnd.oci.image.index.v1+json";

export async function startRegistryStandIn(images: readonly StandInImage[]): Promise<RegistryStandIn> {
  const manifests = new Map<string, { body: Buffer; digest: string; private: boolean }>();
  for (const image of images) {
    // A multi-platform index whose bytes differ per image, so each has its own digest.
    const body = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [], annotations: { image: key(image) } }),
    );
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    const entry = { body, digest, private: image.private === true };
    manifests.set(key(image), entry);
    manifests.set(key({ ...image, tag: digest }), entry);
  }
  const requests: Array<{ method: string; path: string; accept: string; authorized: boolean }> = [];
  const origin = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", origin());
    if (url.pathname === "/token") return token(url, req, res);
    const match = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (match === null) return end(res, 404, { errors: [{ code: "NAME_UNKNOWN" }] });
    const [, repository = "", reference = ""] = match;
    const registry = url.searchParams.get("ns") ?? "localhost";
    const scope = `repository:${registry}/${repository}:pull`;
    const authorized = req.headers.authorization === `Bearer ${tokenFor(scope)}`;
    requests.push({ method: req.method ?? "", path: url.pathname, accept: req.headers.accept ?? "", authorized });
    if (!authorized) {
      res.setHeader(
        "www-authenticate",
        `Bearer realm="${origin()}/token?ns=${registry}",service="stand-in",scope="repository:${repository}:pull"`,
      );
      return end(res, 401, { errors: [{ code: "UNAUTHORIZED" }] });
    }
    const manifest = manifests.get(key({ registry, repository, tag: reference }));
    if (manifest === undefined) return end(res, 404, { errors: [{ code: "MANIFEST_UNKNOWN" }] });
    res.setHeader("content-type", INDEX_TYPE);
    res.setHeader("docker-content-digest", manifest.digest);
    res.setHeader("content-length", manifest.body.length);
    res.writeHead(200);
    res.end(req.method === "HEAD" ? undefined : manifest.body);
  };

  /** Anonymous tokens for public repositories; private ones need STAND_IN_USER as Basic auth. */
  const token = (url: URL, req: IncomingMessage, res: ServerResponse) => {
    const registry = url.searchParams.get("ns") ?? "localhost";
    const repository = /^repository:(.+):pull$/.exec(url.searchParams.get("scope") ?? "")?.[1];
    if (repository === undefined) return end(res, 400, { errors: [{ code: "SCOPE_INVALID" }] });
    const scope = `repository:${registry}/${repository}:pull`;
    const isPrivate = [...manifests.entries()].some(
      ([k, m]) => m.private && k.startsWith(`${registry}/${repository}:`),
    );
    const basic = `Basic ${Buffer.from(`${STAND_IN_USER.username}:${STAND_IN_USER.password}`).toString("base64")}`;
    if (req.headers.authorization !== undefined && req.headers.authorization !== basic)
      return end(res, 401, { errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] });
    if (isPrivate && req.headers.authorization !== basic)
      return end(res, 403, { errors: [{ code: "DENIED", message: "requested access to the resource is denied" }] });
    return end(res, 200, { token: tokenFor(scope) });
  };

  const server: Server = createServer(handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: origin(),
    digestOf: (registry, repository, tag) => manifests.get(key({ registry, repository, tag }))?.digest,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function key(image: { registry: string; repository: string; tag: string }): string {
  return `${image.registry}/${image.repository}:${image.tag}`;
}

function tokenFor(scope: string): string {
  return createHash("sha256").update(`stand-in:${scope}`).digest("hex");
}

function end(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
