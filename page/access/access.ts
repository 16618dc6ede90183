import type { IncomingMessage, ServerResponse } from "node:http";
import type { SignedUser } from "../../lib/infra/signed-user.js";

/**
 * How people sign in to the page (docs/page.md): "off" only on loopback (`npm start`: anyone on
 * this machine acts), "local" with the users file, "proxy" behind an OpenID Connect proxy.
 */
export const SIGN_IN_MODES = ["off", "local", "proxy"] as const;
export type SignInMode = (typeof SIGN_IN_MODES)[number];

/** Who makes a request, as the page's API and its streams see it. */
export interface Visitor {
  /** The signed-in user; null with sign-in off (the browser then asks for a name for `by`). */
  user: SignedUser | null;
  canAct: boolean;
  /** The token every POST must carry in X-CSRF-Token: the session's, or the process's with sign-in off. */
  csrf: string;
  /** Whom the per-user limits (event streams) count against: the user's name, or "" with sign-in off. */
  key: string;
}

/** One way of signing in: who a request comes from, and the routes of signing in and out. */
export interface Access {
  readonly mode: SignInMode;
  /** The visitor, or undefined when sign-in is on and this request carries no valid session or identity. */
  visitor(req: IncomingMessage): Visitor | undefined;
  /** Serves /ui/signin and /ui/signout (GET and POST); false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Numbers for /metrics: open sessions and sign-ins by outcome. */
  stats(): AccessStats;
}

export interface AccessStats {
  sessions: number;
  signIns: Record<SignInOutcome, number>;
}

export const SIGN_IN_OUTCOMES = ["success", "failure", "throttled", "refused"] as const;
export type SignInOutcome = (typeof SIGN_IN_OUTCOMES)[number];

export function noSignIns(): Record<SignInOutcome, number> {
  return { success: 0, failure: 0, throttled: 0, refused: 0 };
}
