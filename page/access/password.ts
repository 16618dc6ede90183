import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";

/**
 * Password hashes for the users file: Node's scrypt with a random 16-byte salt, written as one
 * self-describing string, `scrypt$<N>$<r>$<p>$<salt, base64url>$<hash, base64url>`, so that the
 * cost can be raised later and older entries still verify. No package: node:crypto has scrypt,
 * and a package with native code would download or build a binary at install.
 */

/** N = 2^15, r = 8, p = 1: about 32 MiB and a few tens of ms a hash, OWASP's scrypt floor raised. */
export const SCRYPT_COST = { N: 2 ** 15, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Bounds on a hash string's parameters: a users file cannot make a sign-in take gigabytes. */
const MAX_N = 2 ** 20;
const MAX_RP = 16;

export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/**
 * Names a password hash without holding it: a session keeps this, and ends once the user's hash in
 * the users file has another (the password was changed, so whoever knew the old one is out).
 */
export function passwordFingerprint({ salt, key }: ScryptHash): string {
  return createHash("sha256").update(salt).update(key).digest("base64url");
}

/** A new hash of `password` (a fresh salt each time). */
export async function hashPassword(
  password: string,
  cost: { N: number; r: number; p: number } = SCRYPT_COST,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, { ...cost, salt, key: Buffer.alloc(KEY_BYTES) });
  return ["scrypt", cost.N, cost.r, cost.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** The parts of a hash string, or why it is not one (a users file's message says which line). */
export function parseHash(text: string): ScryptHash | { error: string } {
  const parts = text.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt")
    return { error: "the password hash is not scrypt$N$r$p$salt$hash (make one with `fanwatch page hash-password`)" };
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!Number.isInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0)
    return { error: `the hash's N must be a power of 2 up to ${MAX_N}` };
  if (![r, p].every((v) => Number.isInteger(v) && v >= 1 && v <= MAX_RP))
    return { error: `the hash's r and p must be whole numbers from 1 to ${MAX_RP}` };
  const salt = Buffer.from(parts[4] as string, "base64url");
  const key = Buffer.from(parts[5] as string, "base64url");
  if (salt.length < 8 || key.length < 16) return { error: "the hash's salt or key is too short" };
  return { N, r, p, salt, key };
}

/** Does `password` match `hash`? The comparison takes the same time however much matches. */
export async function verifyPassword(password: string, hash: ScryptHash): Promise<boolean> {
  const key = await derive(password, hash);
  return key.length === hash.key.length && timingSafeEqual(key, hash.key);
}

function derive(password: string, { N, r, p, salt, key }: ScryptHash): Promise<Buffer> {
  // maxmem above the 128·N·r bytes scrypt needs, which Node's 32 MiB default only just misses at N = 2^15.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, key.length, options, (error, derived) =>
      error === null ? resolve(derived) : reject(error),
    ),
  );
}

/** A hash no password matches, verified for unknown users so that they take as long as known ones. */
export function dummyHash(): ScryptHash {
  return { ...SCRYPT_COST, salt: randomBytes(SALT_BYTES), key: randomBytes(KEY_BYTES) };
}
