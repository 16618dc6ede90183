import { access, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { mosquittoHash, parseMosquittoHash } from "./mosquitto-passwd.js";
import type { FanRecord } from "../registry/fan-record.js";
import { renderBrokerAuth, type BrokerAuthFiles, type ServiceUser } from "./broker-auth.js";

/** The names broker-auth writes in its output folder (mosquitto.conf names the same). */
export const AUTH_FILES = { passwd: "passwd", acl: "acl", dynsec: "dynamic-security.json" } as const;

/**
 * The service users: one file per user in `dir` (a mounted Secret: connector, predict, telegraf,
 * ...), holding its password or its `$7$` hash. A plain password is hashed once here, so the
 * password file never holds it. Names starting with `.` (the Secret's own ..data links) are skipped.
 */
export async function readServiceUsers(dir: string): Promise<ServiceUser[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith(".") && (e.isFile() || e.isSymbolicLink()))
    .map((e) => e.name)
    .sort();
  const users: ServiceUser[] = [];
  for (const name of names) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
      throw new Error(`service user ${JSON.stringify(name)}: a username holds letters, digits, ".", "_" and "-" only`);
    const secret = (await readFile(join(dir, name), "utf8")).replace(/\r?\n$/, "");
    if (secret.length === 0) throw new Error(`service user ${name}: its file is empty`);
    users.push({ name, hash: parseMosquittoHash(secret) === undefined ? mosquittoHash(secret) : secret });
  }
  return users;
}

/**
 * Writes the three files into `dir`, each atomically (a temporary file renamed over the old one), so
 * that a broker reloading at any moment reads either the old or the new file, never half of one.
 * Mode 0600: the broker and broker-auth run as the same user.
 */
export async function writeBrokerAuth(dir: string, files: BrokerAuthFiles): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const key of ["dynsec", "acl", "passwd"] as const) {
    const target = join(dir, AUTH_FILES[key]);
    const temporary = `${target}.${process.pid}.tmp`;
    await writeFile(temporary, files[key], { mode: 0o600 });
    await rename(temporary, target);
  }
}

/** Whether `dir` holds the three files (a fallback copy). */
export async function hasBrokerAuth(dir: string): Promise<boolean> {
  try {
    for (const name of Object.values(AUTH_FILES)) await access(join(dir, name));
    return true;
  } catch {
    return false;
  }
}

/** Copies the three files from `from` into `to`, each atomically. */
export async function copyBrokerAuth(from: string, to: string): Promise<void> {
  const read = (key: keyof typeof AUTH_FILES) => readFile(join(from, AUTH_FILES[key]), "utf8");
  const [passwd, acl, dynsec] = await Promise.all([read("passwd"), read("acl"), read("dynsec")]);
  await writeBrokerAuth(to, { passwd, acl, dynsec, fanUsers: [], withoutCredentials: [] });
}

export interface BuildOptions {
  /** The service users' folder (readServiceUsers). */
  usersDir: string;
  /** The services' ACL file (deploy/mosquitto/acl). */
  aclFile: string;
  outDir: string;
  topic: string;
  allowUnboundFans: boolean;
}

/** `fanwatch broker-auth` without --watch: the three files from the registry as it is now. */
export async function buildBrokerAuth(
  options: BuildOptions,
  fans: readonly FanRecord[],
): Promise<BrokerAuthFiles & { services: ServiceUser[] }> {
  const services = await readServiceUsers(options.usersDir);
  const files = renderBrokerAuth({
    services,
    fans,
    servicesAcl: await readFile(options.aclFile, "utf8"),
    topic: options.topic,
    allowUnboundFans: options.allowUnboundFans,
  });
  await writeBrokerAuth(options.outDir, files);
  return { ...files, services };
}
