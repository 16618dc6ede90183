import { timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { hostname } from "node:os";

/**
 * The header by which a runner that starts the function (the local gateway) proves a call came
 * through it. The runner gives the function a token for the run (FANWATCH_CALLER_TOKEN) and adds
 * it to every call it forwards; any other caller on this machine, a browser page included, lacks it.
 */
export const CALLER_TOKEN_HEADER = "x-fanwatch-caller";

/**
 * Why a request comes from another site's page, if it does. Browsers send `Sec-Fetch-Site` and,
 * on POSTs and cross-origin fetches, `Origin`; curl, faas-cli and the connector send neither. A
 * page on another port of this machine is "same-site" but another origin, so it is refused too.
 * The local gateway applies this same function (it imports it from here): one guard, one copy,
 * with its own rule for the names it answers (`isOwnHost`: theirs plus the ones GATEWAY_HOSTS lists).
 */
export function crossSiteReason(
  headers: IncomingHttpHeaders,
  isOwnHost: (header: string | undefined) => boolean = isOwnName,
): string | undefined {
  const site = headers["sec-fetch-site"];
  if (site === "cross-site" || site === "same-site") return `Sec-Fetch-Site: ${site}`;
  const origin = headers.origin;
  // DNS rebinding: a page of another site whose name now resolves to this machine is "same-origin"
  // to the browser, Origin and Host alike. Its name cannot be one of this machine's own.
  if ((site !== undefined || origin !== undefined) && !isOwnHost(headers.host)) {
    return `Host: ${headers.host ?? "(none)"}`;
  }
  if (origin === undefined) return undefined;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    host = undefined; // "null" (a sandboxed frame, a file) or garbage
  }
  return host !== undefined && host === headers.host ? undefined : `Origin: ${origin}`;
}

/**
 * Why a call is refused under a runner's token, if it is: without the token (or with another) it
 * did not come through the runner. Compared in constant time.
 */
export function callerRefusal(headers: IncomingHttpHeaders, token: string): string | undefined {
  const given = headers[CALLER_TOKEN_HEADER];
  if (typeof given !== "string") return "it did not come through the gateway that runs this function";
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b) ? undefined : "its caller token is not this run's";
}

/** A Host header naming this machine by address, `localhost` or its own host name. */
function isOwnName(header: string | undefined): boolean {
  if (header === undefined) return false;
  const name = header
    .replace(/:\d+$/, "")
    .replace(/^\[|\]$/g, "")
    .toLowerCase();
  const own = hostname().toLowerCase();
  return isIP(name) !== 0 || name === "localhost" || name === own || name === `${own}.local`;
}
