import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE } from "./backup-format.js";

/** The backups `--into` makes: nats-<UTC time to the second>, so that names sort by age. */
const BACKUP_NAME = /^nats-\d{8}T\d{6}Z$/;

/** A new backup's directory under `parent`, named for `now`. */
export function datedBackupDir(parent: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return join(parent, `nats-${stamp}`);
}

/**
 * Deletes all but the newest `keep` finished backups under `parent`, and any unfinished one (no
 * manifest: a backup that failed or was cut off) older than the newest finished one. Only
 * directories named as datedBackupDir names them are touched. Returns the paths deleted.
 */
export async function pruneBackups(parent: string, keep: number): Promise<string[]> {
  const names = (await readdir(parent)).filter((n) => BACKUP_NAME.test(n)).sort();
  const finished: string[] = [];
  for (const name of names) if (await exists(join(parent, name, MANIFEST_FILE))) finished.push(name);
  const kept = new Set(finished.slice(-keep));
  const newest = finished.at(-1);
  const doomed = names.filter((n) => !kept.has(n) && newest !== undefined && n < newest);
  for (const name of doomed) await rm(join(parent, name), { recursive: true, force: true });
  return doomed.map((n) => join(parent, n));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
