import type { FanRecord, FanState } from "./fan-record.js";
import type { FanRegistry } from "./registry.js";

export type RegistryCounts = Record<FanState, number>;

/**
 * The registry as this process sees it, kept current by a watch: one map lookup per message, never
 * a read per message (the connector checks every reading against it). `onChange` listeners hear
 * each record that changed, after the map has it.
 */
export class RegistryCache {
  readonly #records = new Map<string, FanRecord>();
  readonly #listeners = new Set<(id: string, record: FanRecord | undefined) => void>();
  #watch: { stop(): Promise<void> } | undefined;

  constructor(readonly registry: FanRegistry) {}

  /** Resolves once every record there is now is in the cache. */
  async start(): Promise<void> {
    this.#watch = await this.registry.watch((id, record) => {
      if (record === undefined) this.#records.delete(id);
      else this.#records.set(id, record);
      for (const listener of this.#listeners) listener(id, record);
    });
  }

  get(id: string): FanRecord | undefined {
    return this.#records.get(id);
  }

  /** Fans per state. */
  counts(): RegistryCounts {
    const counts: RegistryCounts = { pending: 0, active: 0, retired: 0 };
    for (const record of this.#records.values()) counts[record.state]++;
    return counts;
  }

  records(): FanRecord[] {
    return [...this.#records.values()];
  }

  onChange(listener: (id: string, record: FanRecord | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async stop(): Promise<void> {
    await this.#watch?.stop();
    this.#watch = undefined;
    this.#listeners.clear();
  }
}
