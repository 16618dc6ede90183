import { jetstream } from "@nats-io/jetstream";
import { Kvm, KvWatchInclude, type KV, type KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../lib/infra/log.js";
import { encodeKey } from "../../lib/nats/keys.js";
import { FanAlertsSchema, type FanAlerts } from "./model.js";

/** The target's bucket unless told otherwise: one entry per site and fan. */
export const ALERTS_BUCKET = "fan_alerts";

export interface StoredFanAlerts {
  revision: number;
  state: FanAlerts;
}

export interface AlertStoreOptions {
  bucket: string;
  site: string;
  replicas: number;
  timeoutMs: number;
  log: Logger;
}

/** Entries read at once when the bucket is loaded: thousands of fans load in a few round trips, without flooding NATS. */
const LOAD_CONCURRENCY = 32;

/** `<site>.<fan>`: a site's fans are one watch filter, and two sites may share a NATS. */
export function stateKey(site: string, deviceID: string): string {
  return `${site}.${encodeKey(deviceID)}`;
}

/**
 * What the Alertmanager target wants, per fan, in a NATS key-value bucket of its own (created when
 * missing), cached in memory from a watch so that the resend loop reads no NATS and a second
 * notifier replica's writes show here within moments. Writes are compare-and-set on the entry's
 * revision: two replicas never overwrite each other's transition.
 */
export class AlertStore {
  readonly #options: AlertStoreOptions;
  readonly #cache = new Map<string, StoredFanAlerts>();
  #kv: KV | undefined;
  #stopWatch: (() => void) | undefined;
  /** close() was called: an open() under way stops at its next step and leaves nothing running. */
  #closed = false;

  constructor(
    private readonly nc: NatsConnection,
    options: AlertStoreOptions,
  ) {
    this.#options = options;
  }

  /**
   * Opens (or creates) the bucket, follows it, and loads this site's fans; rejects when NATS cannot.
   * Closed meanwhile, it stops where it is and leaves no watch behind.
   */
  async open(): Promise<void> {
    const { bucket, site, replicas, timeoutMs } = this.#options;
    const js = jetstream(this.nc, { timeout: timeoutMs });
    const kv = await new Kvm(js).create(bucket, { history: 1, replicas });
    if (this.#closed) return;
    this.#kv = kv;
    // Updates first, then what is there: an entry written in between is seen by one or the other,
    // and the higher revision wins either way.
    const watch = await kv.watch({ key: `${site}.>`, include: KvWatchInclude.UpdatesOnly });
    this.#stopWatch = () => watch.stop();
    if (this.#closed) {
      this.close();
      return;
    }
    void (async () => {
      for await (const entry of watch) this.#apply(entry);
    })().catch((error: unknown) =>
      this.#options.log.error(
        { event: "alert_state_watch_failed", err: (error as Error).message },
        "the watch of the Alertmanager state ended: a second notifier's changes are seen at its next write only",
      ),
    );
    const keys = await kv.keys(`${site}.>`);
    const names: string[] = [];
    for await (const key of keys) names.push(key);
    let next = 0;
    const reader = async () => {
      while (next < names.length && !this.#closed) {
        const entry = await kv.get(names[next++] ?? "");
        if (entry !== null) this.#apply(entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, names.length) }, reader));
  }

  get(key: string): StoredFanAlerts | undefined {
    return this.#cache.get(key);
  }

  /** Every fan of the site, as cached. */
  fans(): IterableIterator<StoredFanAlerts> {
    return this.#cache.values();
  }

  /** Reads one fan from NATS (after a compare-and-set conflict: someone else wrote it). */
  async read(key: string): Promise<StoredFanAlerts | undefined> {
    const entry = await this.#ready().get(key);
    if (entry === null) return undefined;
    this.#apply(entry);
    return this.#cache.get(key);
  }

  /**
   * Writes a fan's state if the entry is still at `revision` (undefined: if there is none); rejects
   * when someone else wrote it meanwhile (nats.js's "wrong last sequence") or NATS is unavailable.
   */
  async write(key: string, state: FanAlerts, revision: number | undefined): Promise<StoredFanAlerts> {
    const kv = this.#ready();
    const data = JSON.stringify(state);
    const next = revision === undefined ? await kv.create(key, data) : await kv.update(key, data, revision);
    const stored = { revision: next, state };
    const known = this.#cache.get(key);
    if (known === undefined || known.revision < next) this.#cache.set(key, stored);
    return stored;
  }

  close(): void {
    this.#closed = true;
    this.#stopWatch?.();
    this.#stopWatch = undefined;
  }

  #ready(): KV {
    if (this.#kv === undefined) throw new Error("the Alertmanager state bucket is not open");
    return this.#kv;
  }

  #apply(entry: KvEntry): void {
    const known = this.#cache.get(entry.key);
    if (known !== undefined && known.revision >= entry.revision) return;
    if (entry.operation !== "PUT") {
      this.#cache.delete(entry.key);
      return;
    }
    let parsed;
    try {
      parsed = FanAlertsSchema.safeParse(entry.json());
    } catch {
      parsed = undefined;
    }
    if (parsed?.success !== true) {
      this.#options.log.warn(
        { event: "alert_state_unreadable", key: entry.key },
        "an entry of the Alertmanager state bucket is not one fanwatch wrote: ignored",
      );
      return;
    }
    this.#cache.set(entry.key, { revision: entry.revision, state: parsed.data });
  }
}
