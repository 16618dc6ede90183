import type { FanRecord, FanState } from "./fan-record.js";

/** What a person (or an import, or the `open` policy) fills in when registering a fan. */
export type FanDetails = Partial<Pick<FanRecord, "name" | "site" | "location" | "type" | "tags" | "limits">>;

/** The outcome of a reading from an id the registry does not know, as UNKNOWN_DEVICE_POLICY decides. */
export type PendingOutcome = "pending" | "already-known" | "full";

/**
 * The device registry (KV bucket `fan_registry`, one record per fan; docs/registry.md). NATS KV in
 * production and under `fanwatch start` with nats-server; memory otherwise. Every write is a
 * compare-and-set on the record's revision, so two writers (the connector marking a fan pending, a
 * person approving it) never lose each other's change.
 */
export interface FanRegistry {
  /** The fan's record, or undefined. */
  get(id: string): Promise<FanRecord | undefined>;
  /** Every record, sorted by id; `state` filters. */
  list(state?: FanState): Promise<FanRecord[]>;
  /**
   * Registers a fan as `active` (approved by `by`). A pending fan becomes active with the details
   * given; an active one is updated; a retired one is active again. Throws DeviceIdError for an id
   * the registry cannot hold.
   */
  add(id: string, details: FanDetails, by: string): Promise<FanRecord>;
  /** pending → active; throws DeviceUnknownError (FANWATCH_DEVICE_UNKNOWN) when the fan is not pending. */
  approve(id: string, by: string): Promise<FanRecord>;
  /** Any state → retired (a pending fan so refused); throws DeviceUnknownError when there is no such fan. */
  retire(id: string, by: string): Promise<FanRecord>;
  /** Stores the fan's MQTT password hash (`$7$…`); throws DeviceUnknownError when there is no such fan. */
  setPasswordHash(id: string, hash: string): Promise<FanRecord>;
  /**
   * A reading came from an id the registry does not know: registers it `pending` unless
   * `maxPending` fans already are ("full"), or someone registered it meanwhile ("already-known").
   */
  markPending(id: string, maxPending: number): Promise<PendingOutcome>;
  /**
   * Calls `onChange` with every record now (`initial`), then with each change as it happens, until
   * the returned stop() is called: the connector's, health's and the page's cache. A deleted key
   * is reported as `undefined` with its id.
   */
  watch(onChange: (id: string, record: FanRecord | undefined) => void): Promise<{ stop(): Promise<void> }>;
  close(): Promise<void>;
}
