import { CasConflictError } from "../../lib/errors.js";
import { encodeEntry, StoredFan, type FanEntry, type HealthStore } from "./store.js";

/**
 * Fan health in this process's memory, for `fanwatch start` without NATS: the bucket's
 * compare-and-set semantics (one revision counter for all keys, as a stream's sequence), so that
 * the function behaves the same with either store. Its state ends with the process.
 */
export class MemoryStore implements HealthStore {
  readonly durable = false;
  readonly description = "memory (not durable: state is lost when health stops)";
  readonly available = true;
  readonly #fans = new Map<string, StoredFan>();
  #sequence = 0;

  cached(deviceID: string): StoredFan | undefined {
    return this.#fans.get(deviceID);
  }

  fans(): Iterable<StoredFan> {
    return this.#fans.values();
  }

  async read(deviceID: string): Promise<StoredFan | undefined> {
    return this.#fans.get(deviceID);
  }

  async create(deviceID: string, entry: FanEntry): Promise<StoredFan> {
    if (this.#fans.has(deviceID)) throw new CasConflictError(`fan ${deviceID} exists already`);
    return this.#put(deviceID, entry);
  }

  async update(deviceID: string, entry: FanEntry, revision: number): Promise<StoredFan> {
    const current = this.#fans.get(deviceID);
    if (current?.revision !== revision)
      throw new CasConflictError(`fan ${deviceID} is at revision ${current?.revision ?? "none"}, not ${revision}`);
    return this.#put(deviceID, entry);
  }

  async close(): Promise<void> {}

  #put(deviceID: string, entry: FanEntry): StoredFan {
    // Bytes, as the bucket keeps them: a caller changing its object later changes nothing here.
    const stored = StoredFan.fromBytes(deviceID, ++this.#sequence, encodeEntry(entry), true);
    this.#fans.set(deviceID, stored);
    return stored;
  }
}
