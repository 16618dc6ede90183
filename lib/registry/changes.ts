import { FanRecordSchema, type FanRecord } from "./fan-record.js";
import { DeviceUnknownError } from "./errors.js";
import type { FanDetails } from "./registry.js";

/**
 * What each registry write makes of a fan's record, as pure functions of the record before it: a
 * compare-and-set retry applies the same change again to the record it reads then. Both
 * MemoryFanRegistry and NatsFanRegistry write through these, so the two follow one set of rules.
 */

/** A fan registered (or updated, or let in again) by `by`: FanRegistry.add. */
export function added(
  before: FanRecord | undefined,
  id: string,
  details: FanDetails,
  by: string,
  at: string,
): FanRecord {
  const limits = details.limits ?? before?.limits;
  return {
    id,
    name: details.name ?? before?.name ?? "",
    site: details.site ?? before?.site ?? "",
    location: details.location ?? before?.location ?? "",
    type: details.type ?? before?.type ?? "",
    tags: details.tags ?? before?.tags ?? [],
    state: "active",
    created: before?.created ?? at,
    // An active fan keeps who let it in; a pending or retired one is let in now, by `by`.
    approvedBy: before?.state === "active" ? before.approvedBy : by,
    approvedAt: before?.state === "active" ? before.approvedAt : at,
    ...(limits === undefined ? {} : { limits }),
    ...(before?.mqttPasswordHash === undefined ? {} : { mqttPasswordHash: before.mqttPasswordHash }),
  };
}

/** pending → active: FanRegistry.approve. */
export function approved(before: FanRecord | undefined, id: string, by: string, at: string): FanRecord {
  if (before?.state !== "pending")
    throw new DeviceUnknownError(
      before === undefined ? `no fan "${id}" in the registry` : `fan "${id}" is ${before.state}, not pending`,
    );
  return { ...before, state: "active", approvedBy: by, approvedAt: at };
}

/** Any state → retired: FanRegistry.retire. */
export function retired(before: FanRecord | undefined, id: string, by: string, at: string): FanRecord {
  if (before === undefined) throw new DeviceUnknownError(`no fan "${id}" in the registry`);
  return { ...before, state: "retired", retiredBy: by, retiredAt: at };
}

export function withPasswordHash(before: FanRecord | undefined, id: string, hash: string): FanRecord {
  if (before === undefined) throw new DeviceUnknownError(`no fan "${id}" in the registry`);
  return { ...before, mqttPasswordHash: hash };
}

/** A fan first heard of by its reading: FanRegistry.markPending. */
export function pendingRecord(id: string, at: string): FanRecord {
  return { id, name: "", site: "", location: "", type: "", tags: [], state: "pending", created: at };
}

/** The record in the schema's field order, so that two records with the same content compare equal as JSON. */
export function canonical(record: FanRecord): string {
  return JSON.stringify(FanRecordSchema.parse(record));
}

export function sameRecord(a: FanRecord | undefined, b: FanRecord | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonical(a) === canonical(b);
}
