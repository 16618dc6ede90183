import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "../../lib/errors.js";
import { ROLES, type Role } from "../../lib/infra/signed-user.js";
import { parseHash, type ScryptHash } from "./password.js";

/**
 * The users file of sign-in "local" (PAGE_USERS_FILE, a Kubernetes Secret mounted as a file):
 * one user a line, `name:role:hash`, where role is viewer, engineer or admin and hash is
 * `fanwatch page hash-password`'s scrypt string. Blank lines and lines starting with `#` are
 * skipped. `fanwatch page add-user` writes it.
 */

export interface LocalUser {
  name: string;
  role: Role;
  hash: ScryptHash;
}

/** A user's name: what the timeline shows as who acted, so letters, digits and `.`, `_`, `-`, `@`. */
export const UserNameSchema = z
  .string()
  .regex(/^[\p{L}\p{N}._@-]{1,64}$/u, "a user name is 1 to 64 letters, digits, '.', '_', '-' or '@'");

export const RoleSchema = z.enum(ROLES, { message: `a role is one of ${ROLES.join(", ")}` });

/** The users a file's text lists, by name; a bad line is a ConfigError naming the line (never its hash). */
export function parseUsers(text: string, file: string): Map<string, LocalUser> {
  const users = new Map<string, LocalUser>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${file}, line ${i + 1}`;
    const [name = "", role = "", ...rest] = line.split(":");
    const parsedName = UserNameSchema.safeParse(name);
    if (!parsedName.success) throw new ConfigError(`${where}: ${parsedName.error.issues[0]?.message ?? "bad name"}`);
    const parsedRole = RoleSchema.safeParse(role);
    if (!parsedRole.success)
      throw new ConfigError(`${where}: ${JSON.stringify(role)} is not a role: ${ROLES.join(", ")}`);
    const hash = parseHash(rest.join(":"));
    if ("error" in hash) throw new ConfigError(`${where}: ${hash.error}`);
    if (users.has(name)) throw new ConfigError(`${where}: ${name} is listed twice`);
    users.set(name, { name, role: parsedRole.data, hash });
  }
  return users;
}

/** One line of the file. */
export function userLine(name: string, role: Role, hash: string): string {
  return `${name}:${role}:${hash}`;
}

/**
 * The users file, read again when it changes (a Secret's update reaches the pod's file within a
 * minute or so): adding, removing or demoting a user needs no restart, and a removed user's
 * sessions end at their next request. A file that turns bad keeps the last good users and logs why.
 */
export class UsersFile {
  #users: Map<string, LocalUser>;
  #stamp: string;
  #checkedAt = 0;

  constructor(
    readonly file: string,
    private readonly onError: (message: string) => void = () => {},
    private readonly recheckMs = 2_000,
  ) {
    this.#stamp = stamp(file);
    this.#users = parseUsers(read(file), file);
  }

  get(name: string): LocalUser | undefined {
    this.#refresh();
    return this.#users.get(name);
  }

  get size(): number {
    return this.#users.size;
  }

  #refresh(): void {
    const now = Date.now();
    if (now - this.#checkedAt < this.recheckMs) return;
    this.#checkedAt = now;
    try {
      const current = stamp(this.file);
      if (current === this.#stamp) return;
      this.#users = parseUsers(read(this.file), this.file);
      this.#stamp = current;
    } catch (error) {
      this.onError(error instanceof Error ? error.message : String(error));
    }
  }
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(
      `cannot read the users file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** What tells a changed file: a Secret's update swaps a symlink, so the size and time of what it points to. */
function stamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return "missing";
  }
}
