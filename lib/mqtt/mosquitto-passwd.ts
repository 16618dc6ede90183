import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Mosquitto 2.0's password hashes (`mosquitto_passwd`, password_file, the dynamic security plugin):
 * `$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512 of the password, 64 bytes, base64>`, the salt
 * 12 random bytes used as they are (not their base64). Made here so that neither the CLI nor the
 * broker-auth sidecar needs the mosquitto_passwd binary, and a fan's password never has to exist
 * anywhere but on the fan: the registry keeps only this hash.
 */
export const MOSQUITTO_HASH_PATTERN = /^\$7\$(\d{1,9})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** mosquitto_passwd's count (Mosquitto 2.0's default); a verify takes about 0.1 ms with it. */
export const MOSQUITTO_ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

/** The `$7$…` hash of `password`, with a fresh salt. */
export function mosquittoHash(password: string, iterations: number = MOSQUITTO_ITERATIONS): string {
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(password, salt, iterations, HASH_BYTES, "sha512");
  return `$7$${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** The parts of a `$7$` hash, or undefined when `text` is not one. */
export function parseMosquittoHash(text: string): { iterations: number; salt: Buffer; hash: Buffer } | undefined {
  const match = MOSQUITTO_HASH_PATTERN.exec(text);
  if (match === null) return undefined;
  const iterations = Number(match[1]);
  const salt = Buffer.from(match[2] as string, "base64");
  const hash = Buffer.from(match[3] as string, "base64");
  if (iterations < 1 || salt.length === 0 || hash.length !== HASH_BYTES) return undefined;
  return { iterations, salt, hash };
}

/** Whether `password` is the one `hash` was made from (false for anything that is not a `$7$` hash). */
export function verifyMosquittoHash(password: string, hash: string): boolean {
  const parts = parseMosquittoHash(hash);
  if (parts === undefined) return false;
  const candidate = pbkdf2Sync(password, parts.salt, parts.iterations, HASH_BYTES, "sha512");
  return timingSafeEqual(candidate, parts.hash);
}

/** A strong password for a fan: 24 random bytes (192 bits), base64url so a device's config takes it as is. */
export function generatePassword(): string {
  return randomBytes(24).toString("base64url");
}
