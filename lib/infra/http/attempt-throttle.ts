import { isIP } from "node:net";
import { unmapIpv4 } from "../net.js";

/**
 * Slows down password guessing: the local gateway's /system basic auth and the page's sign-in
 * count failed attempts per key (a client address, a user name) here. A key that failed
 * `maxFailures` times waits `firstWaitMs`; each further failure while it is remembered doubles the
 * wait, up to `maxWaitMs`. A success forgets the key. A key is forgotten too once `forgetAfterMs`
 * has passed since its last failure and the end of its wait, whichever is later: a slow guesser is
 * still counted, a person who mistyped yesterday starts afresh.
 *
 * Memory is bounded: at most `maxKeys` keys are remembered, and a new one pushes out the key that
 * failed least recently. A flood of addresses can therefore make the throttle forget an address,
 * but never grow it. (A Map keeps insertion order, so re-inserting on each failure is the whole
 * LRU; the lru-cache package would do the same, but is only a transitive dependency here.)
 */

export interface AttemptThrottleOptions {
  /** Failures a key may have before it waits. @default 5 */
  maxFailures?: number;
  /** The first wait, doubled for each further failure. @default 30_000 (30 s) */
  firstWaitMs?: number;
  /** The longest wait. @default 900_000 (15 min) */
  maxWaitMs?: number;
  /** How long a key's failures are remembered after its last failure or wait. @default maxWaitMs */
  forgetAfterMs?: number;
  /** Keys remembered at most. @default 10_000 */
  maxKeys?: number;
  /** Where the time comes from (milliseconds); tests pass a manual clock. @default Date.now */
  clock?: { now(): number };
}

export const DEFAULT_MAX_FAILURES = 5;
export const DEFAULT_FIRST_WAIT_MS = 30_000;
export const DEFAULT_MAX_WAIT_MS = 15 * 60_000;
export const DEFAULT_MAX_KEYS = 10_000;

/** Whether a key may try now, and if not, in how many whole seconds (the Retry-After value). */
export type AttemptVerdict = { allowed: true; retryAfterSeconds: 0 } | { allowed: false; retryAfterSeconds: number };

interface KeyRecord {
  failures: number;
  /** When its current wait ends (0: none yet). */
  waitUntil: number;
  /** When it failed last. */
  lastFailure: number;
}

const ALLOWED: AttemptVerdict = Object.freeze({ allowed: true, retryAfterSeconds: 0 });

export class AttemptThrottle {
  readonly #records = new Map<string, KeyRecord>();
  readonly #maxFailures: number;
  readonly #firstWaitMs: number;
  readonly #maxWaitMs: number;
  readonly #forgetAfterMs: number;
  readonly #maxKeys: number;
  readonly #clock: { now(): number };

  constructor(options: AttemptThrottleOptions = {}) {
    this.#maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
    this.#firstWaitMs = options.firstWaitMs ?? DEFAULT_FIRST_WAIT_MS;
    this.#maxWaitMs = Math.max(options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS, this.#firstWaitMs);
    this.#forgetAfterMs = options.forgetAfterMs ?? this.#maxWaitMs;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    this.#clock = options.clock ?? { now: () => Date.now() };
    for (const [name, value] of Object.entries({
      maxFailures: this.#maxFailures,
      firstWaitMs: this.#firstWaitMs,
      forgetAfterMs: this.#forgetAfterMs,
      maxKeys: this.#maxKeys,
    }))
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`AttemptThrottle: ${name} must be a whole number of at least 1, not ${value}`);
  }

  /** Whether `key` may try now. Asking changes nothing: only failures and successes do. */
  check(key: string): AttemptVerdict {
    const record = this.#current(key);
    if (record === undefined) return ALLOWED;
    const wait = record.waitUntil - this.#clock.now();
    return wait > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(wait / 1000) } : ALLOWED;
  }

  /** Counts a failed attempt of `key`, and says whether it may try again now. */
  recordFailure(key: string): AttemptVerdict {
    const now = this.#clock.now();
    const record = this.#current(key) ?? { failures: 0, waitUntil: 0, lastFailure: now };
    record.failures += 1;
    record.lastFailure = now;
    const beyond = record.failures - this.#maxFailures;
    if (beyond >= 0) record.waitUntil = now + Math.min(this.#firstWaitMs * 2 ** Math.min(beyond, 30), this.#maxWaitMs);
    // Re-inserted: the Map's first key is then always the one that failed least recently.
    this.#records.delete(key);
    if (this.#records.size >= this.#maxKeys) this.#records.delete(this.#records.keys().next().value as string);
    this.#records.set(key, record);
    return this.check(key);
  }

  /** A success: `key`'s failures are forgotten. */
  recordSuccess(key: string): void {
    this.#records.delete(key);
  }

  /** Keys remembered now (at most maxKeys). */
  get size(): number {
    return this.#records.size;
  }

  /** `key`'s record, unless it is old enough to forget (then it is dropped). */
  #current(key: string): KeyRecord | undefined {
    const record = this.#records.get(key);
    if (record === undefined) return undefined;
    if (this.#clock.now() - Math.max(record.lastFailure, record.waitUntil) < this.#forgetAfterMs) return record;
    this.#records.delete(key);
    return undefined;
  }
}

/**
 * The throttle's key for a client address: an IPv4 address as it is (also when written
 * IPv4-mapped, `::ffff:192.0.2.1`), an IPv6 address by its /64 network, since one machine
 * commonly holds a whole /64 and could otherwise try from a fresh address each time.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address === "") return "unknown";
  const plain = unmapIpv4(address);
  if (isIP(plain) !== 6) return plain;
  return `${expandIpv6(address).slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address, zeros filled in (a zone such as `%eth0` dropped). */
function expandIpv6(address: string): string[] {
  const [head = "", tail] = address.replace(/%.*$/, "").toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  // An IPv4 tail (64:ff9b::192.0.2.1) stands for two groups.
  const right = (tail === undefined || tail === "" ? [] : tail.split(":")).flatMap((group) =>
    group.includes(".") ? ["v4", "v4"] : [group],
  );
  const zeros = Array.from({ length: Math.max(0, 8 - left.length - right.length) }, () => "0");
  return [...left, ...zeros, ...right].map((group) => group.replace(/^0+(?=.)/, ""));
}
