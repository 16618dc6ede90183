import { deviceIdProblem, type FanRecord, type FanState } from "./fan-record.js";
import { added, approved, pendingRecord, retired, withPasswordHash } from "./changes.js";
import { DeviceIdError } from "./errors.js";
import type { FanDetails, FanRegistry, PendingOutcome } from "./registry.js";

type Listener = (id: string, record: FanRecord | undefined) => void;

/** The registry in this process's memory: `fanwatch start` without NATS, and tests. Its writes apply
 * the change rules of changes.ts, as NatsFanRegistry's do. */
export class MemoryFanRegistry implements FanRegistry {
  readonly #records = new Map<string, FanRecord>();
  readonly #listeners = new Set<Listener>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  async get(id: string): Promise<FanRecord | undefined> {
    return this.#records.get(id);
  }

  async list(state?: FanState): Promise<FanRecord[]> {
    return [...this.#records.values()]
      .filter((r) => state === undefined || r.state === state)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async add(id: string, details: FanDetails, by: string): Promise<FanRecord> {
    const problem = deviceIdProblem(id);
    if (problem !== undefined) throw new DeviceIdError(problem);
    return this.#put(added(this.#records.get(id), id, details, by, this.now().toISOString()));
  }

  async approve(id: string, by: string): Promise<FanRecord> {
    return this.#put(approved(this.#records.get(id), id, by, this.now().toISOString()));
  }

  async retire(id: string, by: string): Promise<FanRecord> {
    return this.#put(retired(this.#records.get(id), id, by, this.now().toISOString()));
  }

  async setPasswordHash(id: string, hash: string): Promise<FanRecord> {
    return this.#put(withPasswordHash(this.#records.get(id), id, hash));
  }

  async markPending(id: string, maxPending: number): Promise<PendingOutcome> {
    if (this.#records.has(id)) return "already-known";
    if (deviceIdProblem(id) !== undefined) throw new DeviceIdError(deviceIdProblem(id) as string);
    const pending = [...this.#records.values()].filter((r) => r.state === "pending").length;
    if (pending >= maxPending) return "full";
    this.#put(pendingRecord(id, this.now().toISOString()));
    return "pending";
  }

  async watch(onChange: Listener): Promise<{ stop(): Promise<void> }> {
    for (const [id, record] of this.#records) onChange(id, record);
    this.#listeners.add(onChange);
    return { stop: async () => void this.#listeners.delete(onChange) };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  #put(record: FanRecord): FanRecord {
    this.#records.set(record.id, record);
    for (const listener of this.#listeners) listener(record.id, record);
    return record;
  }
}
