import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.js";

/** Where OpenFaaS mounts secrets; `secret_mount_path`/`SECRET_MOUNT_PATH` override it. */
export const DEFAULT_SECRET_PATH = "/var/openfaas/secrets";

/** A secret file's content without its trailing newline, or undefined when there is no such file. */
export function readSecret(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

/** Like readSecret, for a secret that a setting made mandatory: missing is a configuration error. */
export function requireSecret(dir: string, name: string, because: string): string {
  const value = readSecret(join(dir, name));
  if (value === undefined) throw new ConfigError(`${because} but the secret ${join(dir, name)} cannot be read`);
  return value;
}
