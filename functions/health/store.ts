import { z } from "zod";
import { AlarmTransitionSchema, type AlarmTransition } from "../../lib/domain/health.js";
import { FanHealthSchema, type FanHealth } from "./evaluator.js";

/** A transition written with the state that caused it and not yet known to be on the alarm topic. */
export interface OutboxItem {
  transition: AlarmTransition;
  /** When it was written (ms): after HEALTH_OUTBOX_RESEND_MS anyone who touches the fan sends it. */
  queuedAt: number;
  /**
   * JetStream has it in FAN_HEALTH_EVENTS already (the broker did not take it yet): a resend
   * publishes it only. Its message id would stop a second append only within the stream's
   * duplicate window, and a broker can be away for longer.
   */
  stored?: boolean;
}

/**
 * What one key of the bucket holds: the fan's health, the outbox of transitions not yet published
 * (so that a crash between the write and the publish loses none), and digests of the last batches
 * of predictions evaluated (so that a batch the connector sends again after a 503 or a timeout is
 * not counted twice).
 */
export interface FanEntry {
  health: FanHealth;
  outbox: OutboxItem[];
  recent: string[];
}

export const FanEntrySchema: z.ZodType<FanEntry> = z.object({
  health: FanHealthSchema,
  outbox: z.array(
    z.object({ transition: AlarmTransitionSchema, queuedAt: z.number(), stored: z.boolean().optional() }),
  ),
  recent: z.array(z.string()),
});

/**
 * One fan as the store last saw it: the entry this process wrote, as the object it wrote, or the
 * bytes of an entry read from the bucket (another replica's write, or what was there at start).
 *
 * The objects written here are kept: the fan's next write starts from them, and parsing the bytes
 * back (JSON.parse of 0.8-1.1 KB) was 15% of health's CPU at 4,000 predictions/s for 1,000 fans,
 * a write per prediction. Entries are never changed once made (the evaluator and the updater
 * build new ones), so the object is the bytes' exact equal. Bytes from elsewhere are parsed on
 * each use rather than kept parsed: most are used once, by the write that replaces them, and
 * the schema checks them once (other replicas, older versions).
 */
export class StoredFan {
  #trusted: boolean;
  #bytes: Uint8Array | undefined;
  readonly #entry: FanEntry | undefined;

  private constructor(
    readonly deviceID: string,
    readonly revision: number,
    bytes: Uint8Array | undefined,
    entry: FanEntry | undefined,
    trusted: boolean,
  ) {
    this.#bytes = bytes;
    this.#entry = entry;
    this.#trusted = trusted;
  }

  /** An entry this process wrote: kept as the object it is (never to be changed). */
  static written(deviceID: string, revision: number, entry: FanEntry): StoredFan {
    return new StoredFan(deviceID, revision, undefined, entry, true);
  }

  /** Bytes as the store holds them; `trusted` when this process wrote them (no schema check). */
  static fromBytes(deviceID: string, revision: number, bytes: Uint8Array, trusted: boolean): StoredFan {
    return new StoredFan(deviceID, revision, bytes, undefined, trusted);
  }

  /** The entry, or null when what is stored cannot be read (written by something else, or corrupt). */
  get entry(): FanEntry | null {
    if (this.#entry !== undefined) return this.#entry;
    const bytes = this.#bytes as Uint8Array;
    try {
      const value: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
      if (this.#trusted) return value as FanEntry;
      const parsed = FanEntrySchema.safeParse(value);
      if (!parsed.success) return null;
      this.#trusted = true;
      return parsed.data;
    } catch {
      return null;
    }
  }
}

/**
 * Where fan health lives: the NATS key-value bucket, or memory when fanwatch runs without NATS.
 * Both have the same compare-and-set semantics: create() fails when the key exists, update()
 * when the key's revision is no longer `revision`; either is a CasConflictError.
 */
export interface HealthStore {
  /** False for the memory store: its state ends with the process. */
  readonly durable: boolean;
  /** Where the state is, for logs. */
  readonly description: string;
  /** True while reads and writes can succeed (connected, bucket open, cache loaded). */
  readonly available: boolean;
  /** The fan as the cache last saw it, possibly behind the store by a write or two (CAS catches that). */
  cached(deviceID: string): StoredFan | undefined;
  /** Every fan in the cache. */
  fans(): Iterable<StoredFan>;
  /** Reads the fan from the store itself (and refreshes the cache). */
  read(deviceID: string): Promise<StoredFan | undefined>;
  create(deviceID: string, entry: FanEntry): Promise<StoredFan>;
  update(deviceID: string, entry: FanEntry, revision: number): Promise<StoredFan>;
  close(): Promise<void>;
}

/** Stored entries as JSON bytes, as the bucket holds them. */
export function encodeEntry(entry: FanEntry): Uint8Array {
  return Buffer.from(JSON.stringify(entry), "utf8");
}
