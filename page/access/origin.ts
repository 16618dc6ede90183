import { timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** The header every POST to the page carries its CSRF token in. */
export const CSRF_HEADER = "x-csrf-token";

/**
 * Why a browser request comes from another site's page, if it does: Sec-Fetch-Site names another
 * site, or Origin is not this page's own (scheme aside: a TLS-terminating proxy changes it). A
 * client that is not a browser sends neither and passes; it still needs the CSRF token to post.
 */
export function foreignOrigin(headers: IncomingHttpHeaders): string | undefined {
  const site = headers["sec-fetch-site"];
  if (site === "cross-site" || site === "same-site") return `Sec-Fetch-Site: ${site}`;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    host = undefined; // "null" (a sandboxed frame, a file) or garbage
  }
  return host !== undefined && host === headers.host ? undefined : `Origin: ${origin}`;
}

/** Is `given` the expected token? Compared in constant time. */
export function tokenMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== "string" || expected === "") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Why a POST is refused as a forgery, if it is: another site's page sent it, or it lacks the token. */
export function csrfRefusal(headers: IncomingHttpHeaders, expected: string): string | undefined {
  const foreign = foreignOrigin(headers);
  if (foreign !== undefined) return `another site's page sent it (${foreign})`;
  if (!tokenMatches(headers[CSRF_HEADER], expected)) return `it lacks the session's X-CSRF-Token (GET /ui/api/session)`;
  return undefined;
}
