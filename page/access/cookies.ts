import type { IncomingMessage } from "node:http";

/** The session cookie's name; the sign-in form's own cookie (its CSRF token) is SIGNIN_COOKIE. */
export const SESSION_COOKIE = "fanwatch_session";
export const SIGNIN_COOKIE = "fanwatch_signin";

/** A cookie's value from the request, or undefined. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * A Set-Cookie value for the page's cookies: HttpOnly (no script reads it), SameSite=Strict (no
 * other site's page sends it), Path=/ui, Secure when the page is served over https.
 * `maxAgeSeconds` 0 deletes it; undefined makes a cookie that ends with the browser session.
 */
export function cookie(name: string, value: string, secure: boolean, maxAgeSeconds?: number): string {
  return [
    `${name}=${value}`,
    "Path=/ui",
    "HttpOnly",
    "SameSite=Strict",
    ...(secure ? ["Secure"] : []),
    ...(maxAgeSeconds === undefined ? [] : [`Max-Age=${maxAgeSeconds}`]),
  ].join("; ");
}
