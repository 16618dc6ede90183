import { randomBytes } from "node:crypto";

/**
 * Signed-in sessions, kept in the page's memory: a random id in the cookie, nothing else. A
 * restart signs everyone out (they sign in again); one replica of the page is enough for a plant.
 * A session ends after `idleMs` without a request or `maxAgeMs` after sign-in, whichever is first,
 * and at sign-out. At most `maxSessions` are kept: a new one pushes out the oldest.
 */

export interface Session {
  id: string;
  name: string;
  /** The token its POSTs carry in X-CSRF-Token. */
  csrf: string;
  createdAt: number;
  lastSeen: number;
}

export interface SessionOptions {
  idleMs: number;
  maxAgeMs: number;
  maxSessions?: number;
  now?: () => number;
}

export class Sessions {
  readonly #byId = new Map<string, Session>();
  readonly #options: Required<SessionOptions>;

  constructor(options: SessionOptions) {
    this.#options = { maxSessions: 10_000, now: Date.now, ...options };
  }

  create(name: string): Session {
    const now = this.#options.now();
    this.#sweep(now);
    if (this.#byId.size >= this.#options.maxSessions) this.#byId.delete(this.#byId.keys().next().value as string);
    const session: Session = { id: token(), name, csrf: token(), createdAt: now, lastSeen: now };
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

  /** Ends every session of a user (a changed password is signed in afresh). */
  endAllOf(name: string): void {
    for (const [id, session] of this.#byId) if (session.name === name) this.#byId.delete(id);
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
