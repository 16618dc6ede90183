import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { AlarmTransition } from "../../lib/domain/health.js";
import type { Logger } from "../../lib/infra/log.js";
import { ensureHealthEventsStream, healthEventSubject } from "../../lib/nats/health-events.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { backoffDelay } from "../../lib/infra/retry.js";
import { decodeKey, encodeKey } from "../../lib/nats/keys.js";
import { KvWriter } from "./kv-writer.js";
import { CasConflictError, StoreUnavailableError } from "../../lib/errors.js";
import { encodeEntry, StoredFan, type FanEntry, type HealthStore } from "./store.js";

export interface NatsStoreOptions {
  url: string;
  bucket: string;
  /** Copies of the bucket's stream in a NATS cluster (1 for a single server). */
  replicas: number;
  /** How long one read or write may take before it counts as NATS being unavailable. */
  requestTimeoutMs: number;
  /** HEALTH_HISTORY_MAX_AGE: how long the event stream FAN_HEALTH_EVENTS keeps transitions. */
  historyMaxAgeMs: number;
  log: Logger;
}

/** A stream that went missing (deleted by hand) is looked for again at most this often. */
const STREAM_CHECK_MS = 5_000;

/**
 * Fan health in a NATS JetStream key-value bucket, one key per fan (keys.ts), written with
 * compare-and-set on the key's revision.
 *
 * A watch on the whole bucket keeps a cache of every fan: invocations evaluate against it without
 * a read (a stale entry only costs a CAS conflict and one read), and GET and the silence timer
 * use it. The watch is an ordered consumer, which nats.js recreates after a reconnect or a gap.
 *
 * Opening never fails: the connection and the bucket are retried in the background for as long
 * as it takes, and until they are there (or while NATS is unreachable) `available` is false and
 * reads and writes throw StoreUnavailableError, which the function answers with a 503.
 *
 * It also holds health's event stream (lib/nats/health-events.ts), created or brought to its
 * limits at open: appendEvents() adds transitions to it (FanUpdater does, beside the publish on
 * the alarm topic).
 */
export class NatsStore implements HealthStore {
  readonly durable = true;
  readonly description: string;
  readonly #options: NatsStoreOptions;
  /**
   * By key rather than device ID: the watch echoes every write, this process's own included, and
   * an echo is recognised by key and revision without decoding the key.
   */
  readonly #cache = new Map<string, StoredFan>();
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #writer: KvWriter | undefined;
  #connected = false;
  #loaded = false;
  #closed = false;
  /** When the event stream was last looked for after a failed append (ms), so that a missing stream is created again. */
  #streamCheckedAt = 0;
  readonly #opened: Promise<void>;

  constructor(options: NatsStoreOptions) {
    this.#options = options;
    this.description = `NATS key-value bucket ${options.bucket} at ${redactUrl(options.url)}`;
    this.#opened = this.#open();
  }

  /** Resolves once the bucket is open and its fans are in the cache (never rejects). */
  opened(): Promise<void> {
    return this.#opened;
  }

  get available(): boolean {
    return this.#connected && this.#loaded && !this.#closed;
  }

  /** The connection while the store is available: health's history and evidence use it for their streams. */
  get connection(): NatsConnection | undefined {
    return this.available ? this.#nc : undefined;
  }

  cached(deviceID: string): StoredFan | undefined {
    return this.#cache.get(encodeKey(deviceID));
  }

  fans(): Iterable<StoredFan> {
    return this.#cache.values();
  }

  async read(deviceID: string): Promise<StoredFan | undefined> {
    const kv = this.#ready();
    let entry;
    try {
      entry = await kv.get(encodeKey(deviceID));
    } catch (error) {
      throw this.#unavailable("read", error);
    }
    if (entry === null || entry.operation !== "PUT") {
      this.#cache.delete(encodeKey(deviceID));
      return undefined;
    }
    return this.#remember(StoredFan.fromBytes(deviceID, entry.revision, entry.value.slice(), false));
  }

  async create(deviceID: string, entry: FanEntry): Promise<StoredFan> {
    const kv = this.#ready();
    try {
      const revision = await kv.create(encodeKey(deviceID), encodeEntry(entry));
      return this.#remember(StoredFan.written(deviceID, revision, entry));
    } catch (error) {
      throw this.#failed("create", deviceID, error);
    }
  }

  async update(deviceID: string, entry: FanEntry, revision: number): Promise<StoredFan> {
    this.#ready();
    const writer = this.#writer as KvWriter;
    try {
      const next = await writer.update(encodeKey(deviceID), encodeEntry(entry), revision);
      return this.#remember(StoredFan.written(deviceID, next, entry));
    } catch (error) {
      throw this.#failed("update", deviceID, error);
    }
  }

  /**
   * Appends transitions to FAN_HEALTH_EVENTS, one subject per site and fan, each with its id as
   * the message id (stored once however often it is sent within the duplicate window); resolves
   * once JetStream acknowledged every one. A failure is a StoreUnavailableError (503).
   */
  async appendEvents(transitions: readonly AlarmTransition[]): Promise<void> {
    this.#ready();
    const writer = this.#writer as KvWriter;
    try {
      await Promise.all(
        transitions.map((t) =>
          writer.append(healthEventSubject(t.site, t.deviceID), Buffer.from(JSON.stringify(t), "utf8"), t.id),
        ),
      );
    } catch (error) {
      this.#checkStream();
      throw error instanceof StoreUnavailableError ? error : this.#unavailable("append to the event stream", error);
    }
  }

  /** Drains the connection (writes under way finish); the watch ends with it. Safe to repeat. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    this.#writer?.close(); // what is still unanswered fails now rather than at its timeout
  }

  async #open(): Promise<void> {
    const { log, url, bucket } = this.#options;
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        this.#nc ??= await this.#connect();
        const js = jetstream(this.#nc, { timeout: this.#options.requestTimeoutMs });
        // Creates the bucket if it is missing, opens it otherwise; replicas racing here all get the same one.
        this.#kv = await new Kvm(js).create(bucket, { history: 1, replicas: this.#options.replicas });
        await this.#ensureStream(this.#nc);
        this.#writer ??= new KvWriter(this.#nc, bucket, this.#options.requestTimeoutMs);
        await this.#watch(this.#kv);
        log.info(
          { event: "store_ready", bucket, nats: redactUrl(url), fans: this.#cache.size },
          `fan health in ${this.description}: ${this.#cache.size} fans`,
        );
        return;
      } catch (error) {
        if (this.#closed) return;
        const delay = backoffDelay({ baseMs: 500, capMs: 10_000 }, Math.min(attempt, 10));
        log.warn(
          {
            event: "store_unavailable",
            nats: redactUrl(url),
            err: (error as Error).message,
            retryInMs: Math.round(delay),
          },
          "cannot open the health bucket yet; health answers 503 until it can",
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async #ensureStream(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: this.#options.requestTimeoutMs });
    await ensureHealthEventsStream(jsm, {
      maxAgeMs: this.#options.historyMaxAgeMs,
      replicas: this.#options.replicas,
    });
  }

  /**
   * After a failed append: creates the stream again should it be gone (deleted by hand), in the
   * background and at most every STREAM_CHECK_MS; the transition waits in its fan's outbox meanwhile.
   */
  #checkStream(): void {
    const nc = this.#nc;
    if (nc === undefined || !this.#connected || this.#closed || Date.now() - this.#streamCheckedAt < STREAM_CHECK_MS)
      return;
    this.#streamCheckedAt = Date.now();
    this.#ensureStream(nc).catch((error: unknown) =>
      this.#options.log.warn(
        { event: "event_stream_unavailable", err: (error as Error).message },
        "cannot reach the event stream FAN_HEALTH_EVENTS; transitions wait in their fans' outboxes",
      ),
    );
  }

  async #connect(): Promise<NatsConnection> {
    const { log, url } = this.#options;
    // Reconnects forever: an outage of NATS is answered with 503s, never by exiting.
    // noAsyncTraces: nats.js otherwise builds two Error objects per request, for their stack
    // traces should it time out; profiled at 1,800 writes/s, that was 20% of health's CPU.
    const nc = await connect({
      servers: url,
      name: `fanwatch-health-${process.pid}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      waitOnFirstConnect: true,
      timeout: this.#options.requestTimeoutMs,
      noAsyncTraces: true,
    });
    this.#connected = true;
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") {
          this.#connected = false;
          log.warn({ event: "nats_disconnected" }, "NATS unreachable: health answers 503 until it is back");
        } else if (status.type === "reconnect") {
          this.#connected = true;
          log.info({ event: "nats_reconnected" }, "NATS reachable again");
        }
      }
    })();
    void nc.closed().then((error) => {
      this.#connected = false;
      if (!this.#closed) log.error({ event: "nats_closed", err: error?.message }, "the NATS connection closed");
    });
    return nc;
  }

  /** Fills the cache with every fan, then follows the bucket; resolves once the cache is complete. */
  async #watch(kv: KV): Promise<void> {
    const status = await kv.status();
    const watch = await kv.watch();
    let loaded!: () => void;
    const complete = new Promise<void>((resolve) => (loaded = resolve));
    if (status.values === 0) loaded();
    void (async () => {
      for await (const entry of watch) {
        this.#apply(entry);
        if (entry.delta === 0) loaded();
      }
    })().catch((error: unknown) =>
      this.#options.log.error({ event: "watch_failed", err: (error as Error).message }, "the bucket watch ended"),
    );
    await complete;
    this.#loaded = true;
  }

  /** A value is copied out of the message: a view would keep the whole socket chunk it arrived in alive. */
  #apply(entry: KvWatchEntry): void {
    const known = this.#cache.get(entry.key);
    if (known !== undefined && known.revision >= entry.revision) return; // this process's own write, known already
    if (entry.operation !== "PUT") {
      this.#cache.delete(entry.key);
      return;
    }
    let deviceID: string;
    try {
      deviceID = known?.deviceID ?? decodeKey(entry.key);
    } catch {
      return; // a key that is not a fan of ours
    }
    this.#cache.set(entry.key, StoredFan.fromBytes(deviceID, entry.revision, entry.value.slice(), false));
  }

  #remember(fan: StoredFan): StoredFan {
    const key = encodeKey(fan.deviceID);
    const known = this.#cache.get(key);
    if (known === undefined || known.revision < fan.revision) this.#cache.set(key, fan);
    return fan;
  }

  #ready(): KV {
    if (this.#closed) throw new StoreUnavailableError("the health store is closing");
    if (this.#kv === undefined || !this.#loaded)
      throw new StoreUnavailableError(`the health bucket is not open yet (${this.description}); try again later`);
    if (!this.#connected)
      throw new StoreUnavailableError(`NATS is unreachable (${redactUrl(this.#options.url)}); try again later`);
    return this.#kv;
  }

  #failed(operation: string, deviceID: string, error: unknown): Error {
    if (error instanceof CasConflictError || error instanceof StoreUnavailableError) return error;
    if (
      error instanceof JetStreamApiError &&
      (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
        error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
    ) {
      return new CasConflictError(`fan ${deviceID} was written by someone else`, { cause: error });
    }
    // kv.create answers a key that exists with the error of its first attempt, the one above.
    return this.#unavailable(operation, error);
  }

  #unavailable(operation: string, error: unknown): StoreUnavailableError {
    return new StoreUnavailableError(
      `the health store failed to ${operation}: ${(error as Error).message}; try again later`,
      { cause: error },
    );
  }
}
