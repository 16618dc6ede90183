import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../lib/infra/log.js";
import { canAct, ROLES, type Role } from "../../lib/infra/signed-user.js";
import { noSignIns, type Access, type AccessStats, type Visitor } from "./access.js";
import type { TrustedProxies } from "./peers.js";
import { z } from "zod";

/**
 * A name the proxy gives: an OpenID Connect user name or e-mail address (`ana.lopez+plant@example.com`),
 * up to 128 characters like health's `by`. Letters, digits and `.`, `_`, `-`, `@`, `+` only: what
 * a timeline shows as who acted, never markup or a line break.
 */
export const ProxyUserNameSchema = z.string().regex(/^[\p{L}\p{N}._@+-]{1,128}$/u);

/** Who counts as signed in for the metric: a user the proxy named within this long. */
const RECENT_MS = 15 * 60_000;
/** Names remembered for the metric at most (the oldest seen is forgotten first). */
const MAX_RECENT = 10_000;

export interface ProxyAccessOptions {
  proxies: TrustedProxies;
  /** The header naming the user (oauth2-proxy: X-Forwarded-User, or X-Forwarded-Email). */
  userHeader: string;
  /** The header listing the user's groups, comma-separated (oauth2-proxy: X-Forwarded-Groups). */
  groupsHeader: string;
  /** Group → role; a user in several groups gets the highest of their roles. */
  roles: ReadonlyMap<string, Role>;
  /** The role of a user in no mapped group; undefined: such a user may not see the page. */
  defaultRole: Role | undefined;
  /** Where sign-out sends the browser: the proxy's own (oauth2-proxy: /oauth2/sign_out). */
  signOutUrl: string;
  log: Logger;
}

/**
 * Sign-in "proxy": an OpenID Connect proxy in front of the page (oauth2-proxy, say) signs people
 * in and names them in a header. The header is believed only from the proxy's address
 * (PAGE_TRUSTED_PROXIES): any other peer could write it. The page keeps no sessions: the proxy's
 * cookie is the session, and each user's CSRF token is derived from their name with a key of
 * this process's.
 */
export class ProxyAccess implements Access {
  readonly mode = "proxy";
  readonly #o: ProxyAccessOptions;
  readonly #csrfKey = randomBytes(32);
  /** Name → when the proxy last named them, oldest first (a Map keeps insertion order). */
  readonly #seen = new Map<string, number>();
  #untrustedLogged = false;

  constructor(options: ProxyAccessOptions) {
    this.#o = options;
  }

  visitor(req: IncomingMessage): Visitor | undefined {
    const header = req.headers[this.#o.userHeader];
    if (!this.#o.proxies.trusts(req)) {
      if (header !== undefined && !this.#untrustedLogged) {
        this.#untrustedLogged = true;
        this.#o.log.warn(
          { event: "identity_untrusted", peer: req.socket.remoteAddress },
          `${this.#o.userHeader} ignored: it came from an address not in PAGE_TRUSTED_PROXIES (logged once)`,
        );
      }
      return undefined;
    }
    const name = ProxyUserNameSchema.safeParse(typeof header === "string" ? header.trim() : "");
    if (!name.success) return undefined;
    const role = this.#role(String(req.headers[this.#o.groupsHeader] ?? ""));
    if (role === undefined) return undefined;
    this.#seen.delete(name.data);
    this.#seen.set(name.data, Date.now());
    if (this.#seen.size > MAX_RECENT) this.#seen.delete(this.#seen.keys().next().value as string);
    const csrf = createHmac("sha256", this.#csrfKey).update(name.data).digest("base64url");
    return { user: { name: name.data, role }, canAct: canAct(role), csrf, key: `user:${name.data}` };
  }

  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/ui/signin") res.writeHead(303, { location: "/ui/" }).end();
    else if (path === "/ui/signout") res.writeHead(303, { location: this.#o.signOutUrl }).end();
    else return false;
    return true;
  }

  /** `sessions`: the users the proxy named in the last 15 minutes (the proxy holds the sessions). */
  stats(): AccessStats {
    const since = Date.now() - RECENT_MS;
    for (const [name, at] of this.#seen) {
      if (at >= since) break;
      this.#seen.delete(name);
    }
    return { sessions: this.#seen.size, signIns: noSignIns() };
  }

  #role(groups: string): Role | undefined {
    let best = -1;
    for (const group of groups.split(",")) {
      const role = this.#o.roles.get(group.trim());
      if (role !== undefined) best = Math.max(best, ROLES.indexOf(role));
    }
    return best >= 0 ? ROLES[best] : this.#o.defaultRole;
  }
}
