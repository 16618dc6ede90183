import { randomBytes } from "node:crypto";

/**
 * Signed-in sessions, kept in the page's memory: a random id in the cookie, nothing else. A
 * restart signs everyone out (they sign in again); one replica of the page is enough for a plant.
 * A session ends after `idleMs` without a request or `maxAgeMs` after sign-in, whichever is first,
 * and at sign-out. One user has at most `maxPerUser` (a new one ends that user's oldest), and
 * all together at most `maxSessions` (a new one pushes out the oldest): so one account signing in
 * again and again ends only its own sessions, never everyone's.
 */

export interface Session {
  id: string;
  name: string;
  /** Which password it was signed in with (passwordFingerprint): another one now ends it. */
  fingerprint: string;
  /** The token its POSTs carry in X-CSRF-Token. */
  csrf: string;
  createdAt: number;
  lastSeen: number;
}

export interface SessionOptions {
  idleMs: number;
  maxAgeMs: number;
  maxSessions?: number;
  maxPerUser?: number;
  now?: () => number;
}

export class Sessions {
  readonly #byId = new Map<string, Session>();
  readonly #options: Required<SessionOptions>;

  constructor(options: SessionOptions) {
    this.#options = { maxSessions: 10_000, maxPerUser: 20, now: Date.now, ...options };
  }

  /** A new session of `name`, signed in with the password of that `fingerprint`. */
  create(name: string, fingerprint: string): Session {
    const now = this.#options.now();
    this.#sweep(now);
    // A Map keeps insertion order: the first found is the oldest.
    const own = [...this.#byId.values()].filter((s) => s.name === name);
    for (const old of own.slice(0, Math.max(0, own.length - this.#options.maxPerUser + 1))) this.#byId.delete(old.id);
    if (this.#byId.size >= this.#options.maxSessions) this.#byId.delete(this.#byId.keys().next().value as string);
    const session: Session = { id: token(), name, fingerprint, csrf: token(), createdAt: now, lastSeen: now };
    this.#byId.set(session.id, session);
    return session;
  }

  /** The live session of this id, its idle clock restarted; undefined when unknown or expired. */
  touch(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const session = this.#byId.get(id);
    if (session === undefined) return undefined;
    const now = this.#options.now();
    if (this.#expired(session, now)) {
      this.#byId.delete(id);
      return undefined;
    }
    session.lastSeen = now;
    return session;
  }

  end(id: string | undefined): void {
    if (id !== undefined) this.#byId.delete(id);
  }

  get size(): number {
    this.#sweep(this.#options.now());
    return this.#byId.size;
  }

  #expired(session: Session, now: number): boolean {
    return now - session.lastSeen >= this.#options.idleMs || now - session.createdAt >= this.#options.maxAgeMs;
  }

  #sweep(now: number): void {
    for (const [id, session] of this.#byId) if (this.#expired(session, now)) this.#byId.delete(id);
  }
}

/** 256 random bits, URL-safe. */
export function token(): string {
  return randomBytes(32).toString("base64url");
}
