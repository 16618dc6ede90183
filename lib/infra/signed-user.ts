import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { defineSettings } from "./settings.js";

/**
 * Who acts, as the page tells health: the signed-in user in a header signed with a secret only the
 * page and health hold (docs/page.md, "Acting in someone's name"). Another caller inside the cluster
 * can reach health but cannot make this header, so it cannot act in someone's name. The signature
 * covers the user, the role, an expiry a minute ahead and the SHA-256 of the exact body sent: a
 * header copied on its way carries only that one action, and only for a minute.
 */

export const ROLES = ["viewer", "engineer", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** May this role change anything (acknowledge, shelve, comment, record findings)? */
export function canAct(role: Role): boolean {
  return role === "engineer" || role === "admin";
}

export interface SignedUser {
  name: string;
  role: Role;
}

/** The header the page sets on its calls to health. */
export const USER_HEADER = "x-fanwatch-user";

/** How long a signature holds. The page signs every call afresh, so this only bounds a replay. */
export const USER_SIGNATURE_TTL_MS = 60_000;

/** The shared secret: in the page and in health, the same value (a Kubernetes or OpenFaaS secret). */
export const USER_SIGNING_SETTINGS = defineSettings({
  PAGE_USER_SECRET: {
    env: ["PAGE_USER_SECRET"],
    help: "the secret the page signs the signed-in user with and health checks it with (at least 32 characters); set in health, every action must carry a valid signed user",
    secret: "fanwatch-page-user-secret",
    sensitive: true,
    schema: z.string().min(32, "must be at least 32 characters").optional(),
  },
});

const VERSION = "v1";
const Payload = z.object({
  n: z.string().min(1).max(128),
  r: z.enum(ROLES),
  e: z.number().int(),
  b: z.string(),
});

/** The header's value for this user sending `body` (the exact bytes), valid until `now + USER_SIGNATURE_TTL_MS`. */
export function signUser(user: SignedUser, secret: string, body: string | Buffer, now = Date.now()): string {
  const fields = { n: user.name, r: user.role, e: now + USER_SIGNATURE_TTL_MS, b: bodyDigest(body) };
  const payload = Buffer.from(JSON.stringify(fields)).toString("base64url");
  return `${VERSION}.${payload}.${mac(`${VERSION}.${payload}`, secret)}`;
}

/**
 * The user a header names for this request's `body`, or why it is not to be believed (missing,
 * malformed, forged, expired, or signed for another body).
 */
export function verifyUser(
  header: string | undefined,
  secret: string,
  body: string | Buffer,
  now = Date.now(),
): { user: SignedUser } | { error: string } {
  if (header === undefined || header === "") return { error: `no ${USER_HEADER} header` };
  const parts = header.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION) return { error: `${USER_HEADER} is malformed` };
  const [version, payload, signature] = parts as [string, string, string];
  const expected = Buffer.from(mac(`${version}.${payload}`, secret));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { error: `${USER_HEADER} carries a wrong signature` };
  let parsed: z.infer<typeof Payload>;
  try {
    parsed = Payload.parse(JSON.parse(Buffer.from(payload, "base64url").toString("utf8")));
  } catch {
    return { error: `${USER_HEADER} is malformed` };
  }
  if (parsed.e <= now) return { error: `${USER_HEADER} has expired` };
  if (parsed.b !== bodyDigest(body)) return { error: `${USER_HEADER} was signed for another body` };
  return { user: { name: parsed.n, role: parsed.r } };
}

function bodyDigest(body: string | Buffer): string {
  return createHash("sha256").update(body).digest("base64url");
}

function mac(text: string, secret: string): string {
  return createHmac("sha256", secret).update(text).digest("base64url");
}
