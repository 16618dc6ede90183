import { deviceIdProblem, type FanRecord, type FanState } from "./fan-record.js";
import { DeviceIdError, DeviceUnknownError } from "./errors.js";
import type { FanDetails, FanRegistry, PendingOutcome } from "./registry.js";

type Listener = (id: string, record: FanRecord | undefined) => void;

/** The registry in this process's memory: `fanwatch start` without NATS, and tests. */
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
    const at = this.now().toISOString();
    const before = this.#records.get(id);
    const record: FanRecord = {
      id,
      name: details.name ?? before?.name ?? "",
      site: details.site ?? before?.site ?? "",
      location: details.location ?? before?.location ?? "",
      type: details.type ?? before?.type ?? "",
      tags: details.tags ?? before?.tags ?? [],
      state: "active",
      created: before?.created ?? at,
      approvedBy: before?.state === "active" ? before.approvedBy : by,
      approvedAt: before?.state === "active" ? before.approvedAt : at,
      ...((details.limits ?? before?.limits) === undefined ? {} : { limits: details.limits ?? before?.limits }),
      ...(before?.mqttPasswordHash === undefined ? {} : { mqttPasswordHash: before.mqttPasswordHash }),
    };
    return this.#put(record);
  }

  async approve(id: string, by: string): Promise<FanRecord> {
    const before = this.#records.get(id);
    if (before?.state !== "pending")
      throw new DeviceUnknownError(
        before === undefined ? `no fan "${id}" in the registry` : `fan "${id}" is ${before.state}, not pending`,
      );
    return this.#put({ ...before, state: "active", approvedBy: by, approvedAt: this.now().toISOString() });
  }

  async retire(id: string, by: string): Promise<FanRecord> {
    const before = this.#records.get(id);
    if (before === undefined) throw new DeviceUnknownError(`no fan "${id}" in the registry`);
    return this.#put({ ...before, state: "retired", retiredBy: by, retiredAt: this.now().toISOString() });
  }

  async setPasswordHash(id: string, hash: string): Promise<FanRecord> {
    const before = this.#records.get(id);
    if (before === undefined) throw new DeviceUnknownError(`no fan "${id}" in the registry`);
    return this.#put({ ...before, mqttPasswordHash: hash });
  }

  async markPending(id: string, maxPending: number): Promise<PendingOutcome> {
    if (this.#records.has(id)) return "already-known";
    if (deviceIdProblem(id) !== undefined) throw new DeviceIdError(deviceIdProblem(id) as string);
    const pending = [...this.#records.values()].filter((r) => r.state === "pending").length;
    if (pending >= maxPending) return "full";
    this.#put({
      id,
      name: "",
      site: "",
      location: "",
      type: "",
      tags: [],
      state: "pending",
      created: this.now().toISOString(),
    });
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
