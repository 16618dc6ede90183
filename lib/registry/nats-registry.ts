import { jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ContendedError, FanwatchError, StoreUnavailableError } from "../errors.js";
import type { Logger } from "../infra/log.js";
import { decodeKey, encodeKey } from "../nats/keys.js";
import { added, approved, pendingRecord, retired, sameRecord, withPasswordHash } from "./changes.js";
import { DeviceIdError } from "./errors.js";
import { deviceIdProblem, FanRecordSchema, type FanRecord, type FanState } from "./fan-record.js";
import type { FanDetails, FanRegistry, PendingOutcome } from "./registry.js";

/** The registry's bucket (docs/registry.md): one key per fan. */
export const REGISTRY_BUCKET = "fan_registry";
/**
 * Changes kept per fan: `nats kv history fan_registry <id>` shows who registered, approved and
 * retired it, the last ten times. The watch and reads see only the latest.
 */
export const REGISTRY_HISTORY = 10;
/** Compare-and-set attempts per write before giving up: two writers on one fan settle in two. */
const CAS_ATTEMPTS = 10;

type Listener = (id: string, record: FanRecord | undefined) => void;

/** A key as the watch last saw it: `record` undefined is a deleted key (kept so that an older write arriving late cannot bring it back). */
interface Known {
  revision: number;
  id: string;
  record: FanRecord | undefined;
}

export interface NatsRegistryOptions {
  /** @default REGISTRY_BUCKET */
  bucket?: string;
  /** Copies of the bucket in a NATS cluster when it is created here (NATS_KV_REPLICAS). @default 1 */
  replicas?: number;
  now?: () => Date;
  /** For records in the bucket that are not fans (written by hand): warned once each. */
  log?: Logger;
}

/**
 * The device registry in a NATS JetStream key-value bucket (`fan_registry`, key = the device id as
 * lib/nats/keys.ts encodes it: ids of letters, digits, `_` and `-` are their own key, "." becomes
 * `=2E`).
 *
 * One watch of the whole bucket (an ordered consumer, recreated by nats.js after a reconnect) keeps
 * every record in memory: list() and watch() are served from it, and markPending() decides from it
 * without a round trip: an id already known is "already-known", and with `maxPending` fans pending
 * the answer is "full" without asking NATS (100,000 forged ids cost 100,000 map lookups). The
 * bucket holds the registered fans and at most about `maxPending` pending ones, so the copy stays
 * as small as the fleet.
 *
 * Every write reads the key, changes the record and writes it back if the key is still at the
 * revision read (compare-and-set), again on a conflict: a person's approve and a connector's
 * markPending never lose each other. markPending creates the key only if it has none, so an id
 * someone registered meanwhile stays as they left it.
 *
 * The pending bound is kept per process: this process counts its own markPending calls in flight,
 * so a burst of new ids stops at the bound here, but two processes (connector replicas) both
 * below it may each add their last ones before they see each other's: the bound may be overshot by
 * the markPending calls in flight in the other processes at that moment, a few, never by a burst.
 */
export class NatsFanRegistry implements FanRegistry {
  readonly description: string;
  readonly #kv: KV;
  readonly #now: () => Date;
  readonly #log: Logger | undefined;
  /** By key: the watch names keys, and its echo of our own write is recognised by key and revision. */
  readonly #known = new Map<string, Known>();
  readonly #counts: Record<FanState, number> = { pending: 0, active: 0, retired: 0 };
  readonly #listeners = new Set<Listener>();
  /** markPending calls of this process between their check of the bound and their write's answer. */
  #reserved = 0;
  #stopWatch: (() => void) | undefined;
  /** Set when the registry opened its own connection (openFanRegistry): closed with it. */
  #ownConnection: NatsConnection | undefined;
  #closed = false;

  private constructor(kv: KV, description: string, options: NatsRegistryOptions) {
    this.#kv = kv;
    this.description = description;
    this.#now = options.now ?? (() => new Date());
    this.#log = options.log;
  }

  /**
   * Opens the bucket (creating it with `replicas` copies when it is missing; an existing one is
   * used as it is) and resolves once every record in it is in memory. Rejects when NATS cannot.
   */
  static async open(js: JetStreamClient, options: NatsRegistryOptions = {}): Promise<NatsFanRegistry> {
    const bucket = options.bucket ?? REGISTRY_BUCKET;
    const kv = await new Kvm(js).create(bucket, { history: REGISTRY_HISTORY, replicas: options.replicas ?? 1 });
    const registry = new NatsFanRegistry(kv, `NATS key-value bucket ${bucket}`, options);
    await registry.#follow();
    return registry;
  }

  /** Fans per state, as this process sees them now. */
  counts(): Record<FanState, number> {
    return { ...this.#counts };
  }

  /** Read from NATS: what a person asks for is the record as it is now, not as the watch last brought it. */
  async get(id: string): Promise<FanRecord | undefined> {
    if (deviceIdProblem(id) !== undefined) return undefined;
    const entry = await this.#read(encodeKey(id));
    return entry.record;
  }

  async list(state?: FanState): Promise<FanRecord[]> {
    const records: FanRecord[] = [];
    for (const { record } of this.#known.values())
      if (record !== undefined && (state === undefined || record.state === state)) records.push(record);
    return records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async add(id: string, details: FanDetails, by: string): Promise<FanRecord> {
    mustBeDeviceId(id);
    return this.#change(id, (before, at) => added(before, id, details, by, at));
  }

  async approve(id: string, by: string): Promise<FanRecord> {
    return this.#change(id, (before, at) => approved(before, id, by, at));
  }

  async retire(id: string, by: string): Promise<FanRecord> {
    return this.#change(id, (before, at) => retired(before, id, by, at));
  }

  async setPasswordHash(id: string, hash: string): Promise<FanRecord> {
    return this.#change(id, (before) => withPasswordHash(before, id, hash));
  }

  async markPending(id: string, maxPending: number): Promise<PendingOutcome> {
    mustBeDeviceId(id);
    const key = encodeKey(id);
    if (this.#known.get(key)?.record !== undefined) return "already-known";
    if (this.#counts.pending + this.#reserved >= maxPending) return "full";
    this.#reserved++;
    try {
      const record = pendingRecord(id, this.#now().toISOString());
      // create: only if the key has no value (a deleted key counts as none).
      const revision = await this.#kv.create(key, JSON.stringify(record));
      this.#apply(key, id, revision, record);
      return "pending";
    } catch (error) {
      if (isConflict(error)) return "already-known"; // registered or marked by someone else meanwhile
      throw this.#unavailable(`mark fan "${id}" pending`, error);
    } finally {
      this.#reserved--;
    }
  }

  async watch(onChange: Listener): Promise<{ stop(): Promise<void> }> {
    for (const { id, record } of this.#known.values()) if (record !== undefined) onChange(id, record);
    this.#listeners.add(onChange);
    return { stop: async () => void this.#listeners.delete(onChange) };
  }

  /** Stops the watch; closes the connection when the registry opened it (openFanRegistry). Safe to repeat. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#stopWatch?.();
    const nc = this.#ownConnection;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }

  /** Hands the connection it was opened on to the registry, to close with it. */
  own(nc: NatsConnection): this {
    this.#ownConnection = nc;
    return this;
  }

  /** Reads the record, applies `change` and writes it back at the revision read; again on a conflict. */
  async #change(id: string, change: (before: FanRecord | undefined, at: string) => FanRecord): Promise<FanRecord> {
    const key = deviceIdProblem(id) === undefined ? encodeKey(id) : undefined;
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      // An id the registry cannot hold has no record: `change` says so (DeviceUnknownError), or add refused it before.
      const before = key === undefined ? { revision: 0, record: undefined } : await this.#read(key);
      const next = change(before.record, this.#now().toISOString());
      if (key === undefined) throw new DeviceIdError(deviceIdProblem(id) as string);
      if (sameRecord(before.record, next)) return before.record as FanRecord; // nothing to write
      try {
        const data = JSON.stringify(next);
        // revision 0: the key has never had a value; a deleted key has its marker's revision.
        const revision =
          before.revision === 0 ? await this.#kv.create(key, data) : await this.#kv.update(key, data, before.revision);
        this.#apply(key, id, revision, next);
        return next;
      } catch (error) {
        if (!isConflict(error)) throw this.#unavailable(`write fan "${id}"`, error);
      }
    }
    throw new ContendedError(`fan "${id}" kept changing under ${CAS_ATTEMPTS} attempts to write it; try again`);
  }

  async #read(key: string): Promise<{ revision: number; record: FanRecord | undefined }> {
    let entry: KvEntry | null;
    try {
      entry = await this.#kv.get(key);
    } catch (error) {
      throw this.#unavailable("read the registry", error);
    }
    if (entry === null) return { revision: 0, record: undefined };
    return { revision: entry.revision, record: entry.operation === "PUT" ? this.#parse(entry) : undefined };
  }

  /** Fills the memory with every record, then follows the bucket; resolves once the memory is complete. */
  async #follow(): Promise<void> {
    const status = await this.#kv.status();
    const watch = await this.#kv.watch();
    this.#stopWatch = () => watch.stop();
    let loaded!: () => void;
    const complete = new Promise<void>((resolve) => (loaded = resolve));
    if (status.values === 0) loaded();
    void (async () => {
      for await (const entry of watch) {
        let id: string;
        try {
          id = decodeKey(entry.key);
        } catch {
          if (entry.delta === 0) loaded();
          continue; // a key that is not a fan of ours
        }
        this.#apply(entry.key, id, entry.revision, entry.operation === "PUT" ? this.#parse(entry) : undefined);
        if (entry.delta === 0) loaded();
      }
    })().catch((error: unknown) =>
      this.#log?.error(
        { event: "registry_watch_failed", err: (error as Error).message },
        "the registry's watch ended: changes by others are no longer seen",
      ),
    );
    await complete;
  }

  /** Takes a record the watch or our own write brought, unless a newer one is known already. */
  #apply(key: string, id: string, revision: number, record: FanRecord | undefined): void {
    const known = this.#known.get(key);
    if (known !== undefined && known.revision >= revision) return; // our own write's echo, or older
    if (known?.record !== undefined) this.#counts[known.record.state]--;
    if (record !== undefined) this.#counts[record.state]++;
    this.#known.set(key, { revision, id, record });
    for (const listener of this.#listeners) {
      try {
        listener(id, record);
      } catch (error) {
        this.#log?.error(
          { event: "registry_listener_failed", err: (error as Error).message, deviceID: id },
          "a registry listener threw",
        );
      }
    }
  }

  /** A value that is not a fan record (written by hand) is no fan: warned, and treated as absent. */
  #parse(entry: KvEntry): FanRecord | undefined {
    let parsed;
    try {
      parsed = FanRecordSchema.safeParse(entry.json());
    } catch {
      parsed = undefined;
    }
    if (parsed?.success === true) return parsed.data;
    this.#log?.warn(
      { event: "registry_record_unreadable", key: entry.key, revision: entry.revision },
      "a key of the registry's bucket holds no fan record fanwatch can read: treated as no fan",
    );
    return undefined;
  }

  #unavailable(what: string, error: unknown): FanwatchError {
    if (error instanceof FanwatchError) return error;
    return new StoreUnavailableError(
      `the device registry (${this.description}) failed to ${what}: ${(error as Error).message}; try again later`,
      { cause: error },
    );
  }
}

export interface OpenRegistryOptions extends NatsRegistryOptions {
  url: string;
  /** The client name the server shows. @default fanwatch-registry-<pid> */
  name?: string;
  /** Per JetStream request. @default 5000 */
  timeoutMs?: number;
}

/**
 * Connects to NATS (reconnecting for ever once connected: an outage fails reads and writes with
 * FANWATCH_STORE_UNAVAILABLE until NATS is back) and opens the registry on that connection, which
 * close() then closes. Rejects when NATS cannot be reached or has no JetStream.
 */
export async function openFanRegistry(options: OpenRegistryOptions): Promise<NatsFanRegistry> {
  const { connect } = await import("@nats-io/transport-node");
  const timeout = options.timeoutMs ?? 5_000;
  const nc = await connect({
    servers: options.url,
    name: options.name ?? `fanwatch-registry-${process.pid}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    timeout,
  }).catch((error: unknown) => {
    throw new StoreUnavailableError(`cannot reach NATS for the device registry: ${(error as Error).message}`, {
      cause: error,
    });
  });
  try {
    return (await NatsFanRegistry.open(jetstream(nc, { timeout }), options)).own(nc);
  } catch (error) {
    await nc.close();
    throw error instanceof FanwatchError
      ? error
      : new StoreUnavailableError(`cannot open the device registry in NATS: ${(error as Error).message}`, {
          cause: error,
        });
  }
}

function mustBeDeviceId(id: string): void {
  const problem = deviceIdProblem(id);
  if (problem !== undefined) throw new DeviceIdError(problem);
}

/** JetStream's "wrong last sequence": the key moved on since it was read (kv.create: it has a value). */
function isConflict(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
