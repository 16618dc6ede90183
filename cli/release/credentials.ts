import { readFile } from "node:fs/promises";
import { z } from "zod";
import { ConfigError } from "../../lib/errors.js";

/** A user name and password (or token) for one registry host. */
export interface Credential {
  readonly username: string;
  readonly password: string;
}

/**
 * The `auths` of a Docker config.json (what `docker login`, `podman login --authfile`, `crane auth
 * login` and `oras login` write): per registry either `auth`, base64 of `user:password`, or the two
 * fields. Credential helpers (`credsStore`) are not read: their secrets are not in the file.
 */
const AuthFileSchema = z.object({
  auths: z.record(
    z.string(),
    z.object({
      auth: z.string().optional(),
      username: z.string().optional(),
      password: z.string().optional(),
    }),
  ),
});

/** Docker Hub's entry is keyed by its old index URL in files `docker login` wrote. */
const HUB_KEYS = ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"];

export async function readCredentials(file: string): Promise<ReadonlyMap<string, Credential>> {
  const text = await readFile(file, "utf8").catch((error: unknown) => {
    throw new ConfigError(`--credentials: cannot read ${file}: ${(error as Error).message}`, { cause: error });
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`--credentials: ${file} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = AuthFileSchema.safeParse(json);
  if (!parsed.success)
    throw new ConfigError(
      `--credentials: ${file} has no {"auths": {"<registry>": {"auth": ...}}} (a Docker config.json)`,
    );
  const credentials = new Map<string, Credential>();
  for (const [key, entry] of Object.entries(parsed.data.auths)) {
    const credential = entryCredential(entry);
    if (credential === undefined) continue;
    const host = HUB_KEYS.includes(key) ? "docker.io" : key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    credentials.set(host, credential);
  }
  return credentials;
}

function entryCredential(entry: z.infer<typeof AuthFileSchema>["auths"][string]): Credential | undefined {
  if (entry.username !== undefined && entry.password !== undefined)
    return { username: entry.username, password: entry.password };
  if (entry.auth === undefined) return undefined;
  const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon === -1 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
