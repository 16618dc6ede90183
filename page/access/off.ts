import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { noSignIns, type Access, type AccessStats, type Visitor } from "./access.js";

/**
 * No sign-in: `npm start` on loopback, where whoever is on this machine may act (the browser asks
 * for a name for `by`). Posts still need the process's CSRF token, which only a page of this
 * origin can read from /ui/api/session: another site's page cannot act through the visitor's browser.
 * The caller refuses this mode on an address that is not loopback (settings.ts).
 */
export class OffAccess implements Access {
  readonly mode = "off";
  readonly #visitor: Visitor = { user: null, canAct: true, csrf: randomBytes(32).toString("base64url"), key: "" };

  visitor(): Visitor {
    return this.#visitor;
  }

  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path !== "/ui/signin" && path !== "/ui/signout") return false;
    res.writeHead(303, { location: "/ui/" }).end();
    return true;
  }

  stats(): AccessStats {
    return { sessions: 0, signIns: noSignIns() };
  }
}
