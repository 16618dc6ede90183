import type { IncomingMessage, ServerResponse } from "node:http";
import { BodyTooLargeError, FanwatchError, type ErrorCode } from "../../lib/errors.js";
import { readBody } from "../../lib/infra/http/body.js";
import { sendErrorCode } from "../../lib/infra/http/error-answer.js";
import { addressKey, AttemptThrottle } from "../../lib/infra/http/attempt-throttle.js";
import type { Logger } from "../../lib/infra/log.js";
import { canAct } from "../../lib/infra/signed-user.js";
import { noSignIns, type Access, type AccessStats, type SignInOutcome, type Visitor } from "./access.js";
import { cookie, readCookie, SESSION_COOKIE, SIGNIN_COOKIE } from "./cookies.js";
import { CSRF_HEADER, foreignOrigin, tokenMatches } from "./origin.js";
import { dummyHash, passwordFingerprint, verifyPassword } from "./password.js";
import type { TrustedProxies } from "./peers.js";
import { Sessions, token } from "./sessions.js";
import { safeNext, signInForm } from "./signin-form.js";
import { PAGE_CSP } from "../ui-files.js";
import type { UsersFile } from "./users.js";

/** A sign-in form is a name, a password and two tokens. */
const FORM_LIMIT = 4 * 1024;
/** Password checks at once at most: each takes scrypt's 32 MiB and a thread of libuv's four. */
const MAX_VERIFYING = 4;

export interface LocalAccessOptions {
  users: UsersFile;
  sessions: Sessions;
  proxies: TrustedProxies;
  /** PAGE_COOKIE_SECURE: Secure cookies even when the page does not see https (a proxy that does not say). */
  cookieSecure: boolean;
  log: Logger;
  /** Failed sign-ins per user name from one client address: 5, then a wait that doubles from 30 s up to 15 min. */
  userAtAddressThrottle?: AttemptThrottle;
  /**
   * Failed sign-ins per user name from anywhere: many (50), so that nobody can lock a named
   * engineer out from another machine, while a guesser spread over many addresses is still slowed.
   */
  userThrottle?: AttemptThrottle;
  /** Failed sign-ins per client address: more allowed, as a plant's clients may share one address. */
  addressThrottle?: AttemptThrottle;
}

/**
 * Sign-in "local": users from the users file, sessions in memory (docs/page.md). The form's POST
 * carries a token from its own cookie (login CSRF: another site cannot sign a visitor in as
 * someone else), is refused from another site's page, and is throttled per user and client
 * address, more loosely per user alone and per client address; an unknown name costs as much time
 * as a known one.
 */
export class LocalAccess implements Access {
  readonly mode = "local";
  readonly #o: LocalAccessOptions;
  readonly #userAtAddressThrottle: AttemptThrottle;
  readonly #userThrottle: AttemptThrottle;
  readonly #addressThrottle: AttemptThrottle;
  readonly #dummy = dummyHash();
  readonly #signIns = noSignIns();
  #verifying = 0;

  constructor(options: LocalAccessOptions) {
    this.#o = options;
    this.#userAtAddressThrottle = options.userAtAddressThrottle ?? new AttemptThrottle();
    this.#userThrottle = options.userThrottle ?? new AttemptThrottle({ maxFailures: 50 });
    this.#addressThrottle = options.addressThrottle ?? new AttemptThrottle({ maxFailures: 20 });
  }

  visitor(req: IncomingMessage): Visitor | undefined {
    const session = this.#o.sessions.touch(readCookie(req, SESSION_COOKIE));
    if (session === undefined) return undefined;
    // The file's word, not the session's: a user removed or demoted there is so at once, and one
    // whose password changed signs in again with the new one.
    const user = this.#o.users.get(session.name);
    if (user === undefined || passwordFingerprint(user.hash) !== session.fingerprint) {
      this.#o.sessions.end(session.id);
      return undefined;
    }
    const signed = { name: user.name, role: user.role };
    return { user: signed, canAct: canAct(user.role), csrf: session.csrf, key: `user:${user.name}` };
  }

  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? "/", "http://page");
    if (url.pathname === "/ui/signin") {
      if (req.method === "POST") this.#settle(this.#signIn(req, res), res);
      else this.#form(req, res, 200, { next: safeNext(url.searchParams.get("next") ?? undefined) });
      return true;
    }
    if (url.pathname === "/ui/signout") {
      this.#settle(this.#signOut(req, res), res);
      return true;
    }
    return false;
  }

  /** A failure nobody expected is logged and answered 500 (a bug, not a wrong password), never left to crash the process. */
  #settle(work: Promise<void>, res: ServerResponse): void {
    work.catch((error: unknown) => {
      const err = error instanceof Error ? (error.stack ?? error.message) : String(error);
      this.#o.log.error({ event: "signin_error", err }, "sign-in failed unexpectedly");
      if (!res.headersSent)
        sendErrorCode(res, "FANWATCH_INTERNAL", "sign-in failed unexpectedly; the page's log says why");
      else res.destroy();
    });
  }

  stats(): AccessStats {
    return { sessions: this.#o.sessions.size, signIns: { ...this.#signIns } };
  }

  /** How many users the users file lists now. */
  get userCount(): number {
    return this.#o.users.size;
  }

  /** The form, with a fresh sign-in token in its cookie and its hidden field. */
  #form(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    fields: { next: string; name?: string; message?: string },
    headers: Record<string, string> = {},
  ): void {
    const csrf = token();
    res
      .writeHead(status, {
        ...headers,
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "x-frame-options": "DENY",
        "content-security-policy": PAGE_CSP,
        "set-cookie": cookie(SIGNIN_COOKIE, csrf, this.#secure(req), 3600),
      })
      .end(signInForm({ ...fields, csrf }));
  }

  async #signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refuse = (
      outcome: SignInOutcome,
      code: ErrorCode,
      message: string,
      fields: { next: string; name?: string },
      headers: Record<string, string> = {},
    ): void => {
      this.#signIns[outcome]++;
      const status = new FanwatchError(code, message).status ?? 400;
      if (wantsHtml(req)) this.#form(req, res, status, { ...fields, message }, headers);
      else sendErrorCode(res, code, message, { ...headers, "cache-control": "no-store" });
    };
    const foreign = foreignOrigin(req.headers);
    if (foreign !== undefined) {
      req.resume();
      return refuse("refused", "FANWATCH_CSRF_REFUSED", `sign-in refused: another site's page sent it (${foreign})`, {
        next: "/ui/",
      });
    }
    let form: URLSearchParams;
    try {
      form = new URLSearchParams((await readBody(req, FORM_LIMIT, "the sign-in form")).toString("utf8"));
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) return void res.destroy();
      return refuse("refused", "FANWATCH_BODY_TOO_LARGE", error.message, { next: "/ui/" });
    }
    const name = form.get("name") ?? "";
    const next = safeNext(form.get("next") ?? undefined);
    if (!tokenMatches(form.get("csrf") ?? undefined, readCookie(req, SIGNIN_COOKIE) ?? ""))
      return refuse(
        "refused",
        "FANWATCH_CSRF_REFUSED",
        "the sign-in form has expired or came from elsewhere: sign in again",
        { next, name },
      );

    const userKey = `user:${name}`;
    const address = addressKey(this.#o.proxies.clientAddress(req));
    const addressKeyed = `address:${address}`;
    // JSON: neither a name nor an address can forge the other's part of the key.
    const userAtAddressKey = JSON.stringify([name, address]);
    const wait = Math.max(
      this.#userAtAddressThrottle.check(userAtAddressKey).retryAfterSeconds,
      this.#userThrottle.check(userKey).retryAfterSeconds,
      this.#addressThrottle.check(addressKeyed).retryAfterSeconds,
    );
    if (wait > 0 || this.#verifying >= MAX_VERIFYING) {
      const seconds = Math.max(wait, 1);
      this.#o.log.warn(
        { event: "signin_throttled", user: name.slice(0, 64), retryAfter: seconds },
        "sign-in throttled",
      );
      return refuse(
        "throttled",
        "FANWATCH_TOO_MANY_ATTEMPTS",
        wait > 0
          ? `too many failed sign-ins: try again in ${seconds} s`
          : "too many sign-ins at once: try again in a second",
        { next, name },
        { "retry-after": String(seconds) },
      );
    }

    const user = this.#o.users.get(name);
    const password = form.get("password") ?? "";
    this.#verifying++;
    let matches: boolean;
    try {
      // An unknown name is checked against a dummy hash: the answer takes as long as for a known one.
      matches = (await verifyPassword(password, user?.hash ?? this.#dummy)) && user !== undefined;
    } finally {
      this.#verifying--;
    }
    if (!matches || user === undefined) {
      this.#userAtAddressThrottle.recordFailure(userAtAddressKey);
      this.#userThrottle.recordFailure(userKey);
      this.#addressThrottle.recordFailure(addressKeyed);
      this.#o.log.warn({ event: "signin_failed", user: name.slice(0, 64), address: addressKeyed }, "sign-in failed");
      return refuse("failure", "FANWATCH_UNAUTHENTICATED", "wrong name or password", { next, name });
    }
    this.#userAtAddressThrottle.recordSuccess(userAtAddressKey);
    this.#signIns.success++;
    const session = this.#o.sessions.create(user.name, passwordFingerprint(user.hash));
    this.#o.log.info({ event: "signed_in", user: user.name, role: user.role }, "signed in");
    const secure = this.#secure(req);
    res
      .writeHead(303, {
        location: next,
        "cache-control": "no-store",
        "set-cookie": [cookie(SESSION_COOKIE, session.id, secure), cookie(SIGNIN_COOKIE, "", secure, 0)],
      })
      .end();
  }

  /** Sign-out is a POST with the session's token (header or form field): another site cannot sign people out. */
  async #signOut(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST")
      return sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", "sign out with POST /ui/signout", { allow: "POST" });
    const id = readCookie(req, SESSION_COOKIE);
    const session = this.#o.sessions.touch(id);
    let given = req.headers[CSRF_HEADER];
    if (given === undefined) {
      try {
        given =
          new URLSearchParams((await readBody(req, FORM_LIMIT, "the sign-out form")).toString("utf8")).get("csrf") ??
          undefined;
      } catch {
        return void res.destroy();
      }
    } else req.resume();
    const foreign = foreignOrigin(req.headers);
    if (session !== undefined && (foreign !== undefined || !tokenMatches(given, session.csrf)))
      return sendErrorCode(res, "FANWATCH_CSRF_REFUSED", "sign-out refused: it lacks the session's CSRF token");
    this.#o.sessions.end(session?.id);
    if (session !== undefined) this.#o.log.info({ event: "signed_out", user: session.name }, "signed out");
    res
      .writeHead(303, { location: "/ui/signin", "set-cookie": cookie(SESSION_COOKIE, "", this.#secure(req), 0) })
      .end();
  }

  #secure(req: IncomingMessage): boolean {
    return this.#o.cookieSecure || this.#o.proxies.https(req);
  }
}

/** A browser's form submission wants the form back; a script or curl the JSON error. */
function wantsHtml(req: IncomingMessage): boolean {
  return (req.headers.accept ?? "").includes("text/html");
}
