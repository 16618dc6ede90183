import { FEATURES } from "../../lib/domain/features.js";
import {
  DEFAULT_SENSOR_LIMITS,
  findImplausible,
  type Implausible,
  type SensorLimits,
} from "../../lib/domain/plausibility.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import type { Refusal } from "./metrics.js";

/** A reading the gate dead-letters: why (the dead letter's `error`), its code and the metric's reason. */
export interface Refused {
  kind: "refuse";
  refusal: Refusal;
  code: string;
  reason: string;
}

/**
 * What becomes of one reading: `pass` (routed as ever), `refuse` (dead letter), `implausible`
 * (dead letter and a SensorNotice), `hold` (its fan is pending: quarantined), `unknown` (the
 * registry has no such fan: UNKNOWN_DEVICE_POLICY decides, which takes the registry's answer).
 */
export type Verdict =
  | { kind: "pass" }
  | Refused
  | { kind: "implausible"; id: string; found: Implausible; timeStamp: string | number | undefined }
  | { kind: "hold"; id: string }
  | { kind: "unknown"; id: string };

export const PASS: Verdict = Object.freeze({ kind: "pass" });

/** Where a topic stands: a reading topic or not (`none`), and for a per-fan topic the id it binds. */
export type TopicKind = { kind: "none" } | { kind: "bare" } | { kind: "fan"; id: string };

const NONE: TopicKind = Object.freeze({ kind: "none" });
const BARE: TopicKind = Object.freeze({ kind: "bare" });

/**
 * The checks of one reading against the registry, with no I/O: the connector's hot path is one
 * map lookup (the record), a topic comparison and four comparisons per reading.
 */
export class Gate {
  readonly #prefix: string;
  /** A record's limits merged over the defaults, made once per record (records are replaced, not changed). */
  readonly #limits = new WeakMap<FanRecord, SensorLimits>();
  /** One object for every reading refused on the bare topic. */
  readonly #unbound: Refused;

  constructor(
    private readonly options: {
      telemetryTopic: string;
      allowUnbound: boolean;
      record(id: string): FanRecord | undefined;
    },
  ) {
    this.#prefix = `${options.telemetryTopic}/`;
    this.#unbound = refuse(
      "unbound",
      "FANWATCH_IDENTITY_MISMATCH",
      `this site accepts readings only on ${options.telemetryTopic}/<deviceID>, where the broker binds the topic to the fan's credentials (ALLOW_UNBOUND_FANS is off)`,
    );
  }

  /** `fan/messages` → bare; `fan/messages/<id>` → that fan's; anything else is not gated. */
  topicKind(topic: string): TopicKind {
    if (topic === this.options.telemetryTopic) return BARE;
    if (!topic.startsWith(this.#prefix)) return NONE;
    const id = topic.slice(this.#prefix.length);
    return id === "" || id.includes("/") ? NONE : { kind: "fan", id };
  }

  /** The verdict on one reading (a batch's element, or the whole payload) published on `topic`. */
  judge(topic: TopicKind, reading: unknown): Verdict {
    if (topic.kind === "bare" && !this.options.allowUnbound) return this.#unbound;
    const id = deviceIdOf(reading);
    if (id === undefined)
      return refuse("invalid_id", "FANWATCH_DEVICE_ID_INVALID", "the reading has no deviceID (a string or a number)");
    if (topic.kind === "fan" && topic.id !== id)
      return refuse(
        "identity",
        "FANWATCH_IDENTITY_MISMATCH",
        `deviceID ${JSON.stringify(id.slice(0, 80))} is not the fan this topic belongs to (${JSON.stringify(topic.id)}): a fan publishes only as itself`,
      );
    return this.judgeRecord(id, this.options.record(id), reading);
  }

  /** The verdict for a reading of fan `id` given its record (the cache's, or the registry's answer). */
  judgeRecord(id: string, record: FanRecord | undefined, reading: unknown): Verdict {
    if (record === undefined) return { kind: "unknown", id };
    if (record.state === "pending") return { kind: "hold", id };
    if (record.state === "retired")
      return refuse(
        "retired",
        "FANWATCH_DEVICE_UNKNOWN",
        `fan ${JSON.stringify(id)} is retired: its readings are refused`,
      );
    const found = this.#implausible(reading as Record<string, unknown>, record);
    if (found === undefined) return PASS;
    const timeStamp = (reading as { timeStamp?: unknown }).timeStamp;
    return {
      kind: "implausible",
      id,
      found,
      timeStamp: typeof timeStamp === "string" || typeof timeStamp === "number" ? timeStamp : undefined,
    };
  }

  /**
   * A sensor outside its limits, when every sensor is a finite number. A reading with a missing or
   * non-numeric value is not judged here: predict refuses it with the field's own message.
   */
  #implausible(reading: Record<string, unknown>, record: FanRecord): Implausible | undefined {
    for (const sensor of FEATURES) {
      const value = reading[sensor];
      if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
    }
    return findImplausible(reading as Record<(typeof FEATURES)[number], number>, this.#limitsOf(record));
  }

  #limitsOf(record: FanRecord): SensorLimits {
    if (record.limits === undefined) return DEFAULT_SENSOR_LIMITS;
    let limits = this.#limits.get(record);
    if (limits === undefined) {
      limits = { ...DEFAULT_SENSOR_LIMITS, ...record.limits };
      this.#limits.set(record, limits);
    }
    return limits;
  }
}

/** The device id a reading claims, as predict reads it (a number becomes its string, a string is trimmed). */
export function deviceIdOf(reading: unknown): string | undefined {
  if (typeof reading !== "object" || reading === null) return undefined;
  const id = (reading as { deviceID?: unknown }).deviceID;
  if (typeof id === "string") {
    const trimmed = id.trim();
    return trimmed === "" ? undefined : trimmed;
  }
  return typeof id === "number" && Number.isFinite(id) ? String(id) : undefined;
}

export function refuse(refusal: Refusal, code: string, reason: string): Refused {
  return { kind: "refuse", refusal, code, reason };
}
