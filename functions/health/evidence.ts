import { jetstream, jetstreamManager, JetStreamApiCodes, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Counter, type Registry } from "prom-client";
import type { AlarmTransition, HealthRecord } from "../../lib/domain/health.js";
import type { Logger } from "../../lib/infra/log.js";
import {
  EVIDENCE_STREAM,
  EvidenceMessageSchema,
  ensureEvidenceStream,
  episodeEvidenceSubject,
  healthyEvidenceSubject,
  type EvidenceMessage,
  type EvidenceReading,
} from "../../lib/nats/evidence.js";
import { isApiError } from "../../lib/nats/jetstream.js";
import type { HealthInput } from "./evaluator.js";
import { episodeOpenedMs } from "./history-episodes.js";
import { isoTime } from "./iso-time.js";

/**
 * The evidence health keeps for training (lib/nats/evidence.ts, docs/health.md "Evidence"), from
 * the predictions it evaluates, after each fan's update:
 *
 * - `lead`: when an episode opens, the last EVIDENCE_LEAD_READINGS readings before it, once (its
 *   message id is the episode's), by the process whose write opened it;
 * - `during`: the readings while the episode is open (and cleared), up to EVIDENCE_EPISODE_MAX
 *   in all with the lead;
 * - `healthy`: the first reading of each minute while the fan is ok (message id: fan and minute).
 *
 * The lead is a ring of each fan's last readings in this process's memory: a restart, or a fan
 * whose readings are spread over replicas, gives a shorter lead (the healthy sample still holds
 * one a minute before it). Every write is duplicate-safe: a batch the connector sends again is
 * skipped by reading time (the ring's newest) or as a duplicate batch, and each message's id is
 * made of what it holds. A failure to store evidence never fails the invocation: it is counted
 * (health_evidence_failures_total) and logged.
 */
export const EVIDENCE_LEAD_READINGS = 60;
export const EVIDENCE_EPISODE_MAX = 660;
export const EVIDENCE_HEALTHY_EVERY_MS = 60_000;

export interface EvidenceOptions {
  site: string;
  /** HEALTH_HISTORY_MAX_AGE: the stream keeps evidence as long as the history. */
  maxAgeMs: number;
  replicas: number;
  timeoutMs: number;
  /** Health's NATS connection while it is up (the store's). */
  connection: () => NatsConnection | undefined;
  registry: Registry;
  log: Logger;
}

/** One fan's share of an invocation, after its update: what it read, and what its health became. */
export interface FanOutcome {
  deviceID: string;
  inputs: readonly HealthInput[];
  record: HealthRecord | undefined;
  transitions: readonly AlarmTransition[];
  /** The batch had been evaluated already: its evidence is stored, or was meant to be. */
  duplicate: boolean;
}

/** A reading with its time in ms, as the ring keeps it. */
type Timed = Omit<EvidenceReading, "at"> & { ms: number };

/** A stream missing (deleted by hand) is looked for again at most this often. */
const STREAM_CHECK_MS = 5_000;

export class EvidenceRecorder {
  readonly #options: EvidenceOptions;
  readonly #failures: Counter;
  readonly #stored: Counter;
  /** Each fan's last readings, newest last: the lead of its next episode. */
  readonly #ring = new Map<string, Timed[]>();
  /** Readings kept per episode, as far as this process knows (seeded from the stream's last message). */
  readonly #totals = new Map<string, Promise<{ total: number }>>();
  /** The episode each fan was last seen in: its count is forgotten once the fan leaves it. */
  readonly #episodeOf = new Map<string, string | null>();
  /** The minute of each fan's last healthy sample. */
  readonly #sampled = new Map<string, number>();
  #stream: Promise<void> | undefined;
  #streamCheckedAt = 0;

  constructor(options: EvidenceOptions) {
    this.#options = options;
    this.#failures = new Counter({
      name: "health_evidence_failures_total",
      help: "Evidence messages (readings kept for training, FAN_EVIDENCE) that could not be stored; the health update went on",
      labelNames: ["part"],
      registers: [options.registry],
    });
    this.#stored = new Counter({
      name: "health_evidence_readings_total",
      help: "Readings stored as evidence in FAN_EVIDENCE, by part: lead (before an episode), during, healthy (one a minute)",
      labelNames: ["part"],
      registers: [options.registry],
    });
    for (const part of ["lead", "during", "healthy"]) {
      this.#failures.labels(part);
      this.#stored.labels(part);
    }
  }

  /** Stores the evidence of one fan's update; never rejects (a failure is counted and logged). */
  async record(fan: FanOutcome): Promise<void> {
    if (fan.duplicate || fan.record === undefined) return;
    const fresh = this.#remember(fan.deviceID, fan.inputs);
    const record = fan.record;
    const writes: Promise<void>[] = [];
    if (record.alarmId !== null) {
      const alarmId = record.alarmId;
      const opened = episodeOpenedMs(alarmId) ?? -Infinity;
      this.#follow(fan.deviceID, alarmId);
      // The transition that opened it is at the reading time its alarmId names (evaluator.ts).
      const opening = fan.transitions.some(
        (t) => t.alarmId === alarmId && (t.event === "warning" || t.event === "alarm") && Date.parse(t.at) === opened,
      );
      const during = fresh.readings.filter((r) => r.ms >= opened);
      if (opening) {
        const lead = [...fresh.lead(), ...fresh.readings.filter((r) => r.ms < opened)].slice(-EVIDENCE_LEAD_READINGS);
        if (lead.length > 0 || during.length > 0)
          writes.push(this.#episode(fan.deviceID, alarmId, "lead", lead, `lead:${alarmId}`, true));
      }
      if (during.length > 0) {
        const id = `during:${alarmId}:${during[0]?.ms}:${during.at(-1)?.ms}:${during.length}`;
        writes.push(this.#episode(fan.deviceID, alarmId, "during", during, id, false));
      }
    } else if (record.state === "ok") {
      this.#follow(fan.deviceID, null);
      for (const r of fresh.readings) {
        const minute = Math.floor(r.ms / EVIDENCE_HEALTHY_EVERY_MS);
        if (minute <= (this.#sampled.get(fan.deviceID) ?? -Infinity)) continue;
        this.#sampled.set(fan.deviceID, minute);
        writes.push(this.#healthy(fan.deviceID, r, minute));
      }
    }
    await Promise.all(writes);
  }

  #follow(deviceID: string, alarmId: string | null): void {
    const last = this.#episodeOf.get(deviceID);
    if (last === alarmId) return;
    if (last !== undefined && last !== null) this.#totals.delete(last);
    this.#episodeOf.set(deviceID, alarmId);
  }

  /**
   * Adds the fan's new readings (later than its newest one: a batch sent again adds none) to its
   * ring, and answers them with the ring as it was before them. On every fan of every invocation:
   * the ring is changed in place, and a reading's ISO time is made only when it is stored (strip).
   */
  #remember(deviceID: string, inputs: readonly HealthInput[]): { readings: Timed[]; lead: () => Timed[] } {
    let ring = this.#ring.get(deviceID);
    // Trimmed to its bound here rather than after the push, so that the lead is copied only when
    // an episode opens (record() asks for it before anything else can change the ring).
    if (ring !== undefined && ring.length > EVIDENCE_LEAD_READINGS)
      ring.splice(0, ring.length - EVIDENCE_LEAD_READINGS);
    let newest = ring?.at(-1)?.ms ?? -Infinity;
    const readings: Timed[] = [];
    for (const { prediction, at } of inReadingOrder(inputs)) {
      if (prediction.reading === undefined || !Number.isFinite(at) || at <= newest) continue;
      newest = at;
      const { probability, fault, model } = prediction;
      readings.push({ ms: at, ...prediction.reading, probability, fault, ...(model === undefined ? {} : { model }) });
    }
    const before = ring?.length ?? 0;
    if (readings.length > 0) {
      if (ring === undefined) this.#ring.set(deviceID, (ring = []));
      ring.push(...readings);
    }
    const kept = ring;
    return { readings, lead: () => (kept === undefined ? [] : kept.slice(0, before)) };
  }

  async #episode(
    deviceID: string,
    alarmId: string,
    part: "lead" | "during",
    readings: Timed[],
    msgId: string,
    opening: boolean,
  ): Promise<void> {
    const subject = episodeEvidenceSubject(this.#options.site, deviceID, alarmId);
    try {
      const known = this.#totals.get(alarmId) ?? this.#seed(subject, opening);
      this.#totals.set(alarmId, known);
      const counter = await known;
      const room = EVIDENCE_EPISODE_MAX - counter.total;
      if (room <= 0) return;
      const kept = readings.slice(0, room);
      counter.total += kept.length;
      await this.#publish(subject, msgId, {
        deviceID,
        alarmId,
        part,
        readings: kept.map(strip),
        total: counter.total,
      });
      this.#stored.inc({ part }, kept.length);
    } catch (error) {
      this.#totals.delete(alarmId); // seeded afresh from the stream next time
      this.#failed(part, deviceID, error);
    }
  }

  async #healthy(deviceID: string, reading: Timed, minute: number): Promise<void> {
    try {
      await this.#publish(healthyEvidenceSubject(this.#options.site, deviceID), `healthy:${deviceID}:${minute}`, {
        deviceID,
        alarmId: null,
        part: "healthy",
        readings: [strip(reading)],
        total: 1,
      });
      this.#stored.inc({ part: "healthy" });
    } catch (error) {
      this.#failed("healthy", deviceID, error);
    }
  }

  /** The episode's count so far: 0 for one this process opened, else its subject's last message's total. */
  async #seed(subject: string, opening: boolean): Promise<{ total: number }> {
    if (opening) return { total: 0 };
    const jsm = await jetstreamManager(this.#nc(), { timeout: this.#options.timeoutMs });
    const last = await jsm.streams.getMessage(EVIDENCE_STREAM, { last_by_subj: subject }).catch((error: unknown) => {
      if (isApiError(error, JetStreamApiCodes.NoMessageFound) || isApiError(error, JetStreamApiCodes.StreamNotFound))
        return null;
      throw error;
    });
    const parsed = last === null ? undefined : EvidenceMessageSchema.safeParse(JSON.parse(last.string()));
    return { total: parsed?.success === true ? parsed.data.total : 0 };
  }

  async #publish(subject: string, msgId: string, message: EvidenceMessage): Promise<void> {
    const nc = this.#nc();
    await this.#ensureStream(nc);
    const js: JetStreamClient = jetstream(nc, { timeout: this.#options.timeoutMs });
    try {
      await js.publish(subject, JSON.stringify(message), {
        msgID: `${this.#options.site}:${msgId}`,
        timeout: this.#options.timeoutMs,
      });
    } catch (error) {
      // A stream deleted by hand is made again (at most every STREAM_CHECK_MS).
      if (Date.now() - this.#streamCheckedAt >= STREAM_CHECK_MS) this.#stream = undefined;
      throw error;
    }
  }

  #ensureStream(nc: NatsConnection): Promise<void> {
    this.#stream ??= (async () => {
      this.#streamCheckedAt = Date.now();
      const jsm = await jetstreamManager(nc, { timeout: this.#options.timeoutMs });
      await ensureEvidenceStream(jsm, { maxAgeMs: this.#options.maxAgeMs, replicas: this.#options.replicas });
    })();
    const made = this.#stream;
    made.catch(() => {
      if (this.#stream === made) this.#stream = undefined;
    });
    return made;
  }

  #nc(): NatsConnection {
    const nc = this.#options.connection();
    if (nc === undefined) throw new Error("NATS is unreachable");
    return nc;
  }

  #failed(part: string, deviceID: string, error: unknown): void {
    this.#failures.inc({ part });
    this.#options.log.warn(
      { event: "evidence_unstored", part, deviceID, err: (error as Error).message },
      "readings kept as evidence could not be stored in FAN_EVIDENCE; the fan's health is updated all the same",
    );
  }
}

/** The inputs by reading time: as they come, unless the connector's batch had them out of order. */
function inReadingOrder(inputs: readonly HealthInput[]): readonly HealthInput[] {
  for (let i = 1; i < inputs.length; i++)
    if ((inputs[i] as HealthInput).at < (inputs[i - 1] as HealthInput).at)
      return [...inputs].sort((a, b) => a.at - b.at);
  return inputs;
}

function strip(reading: Timed): EvidenceReading {
  const { ms, rotation, temperature, vibration, sound, probability, fault, model } = reading;
  const stored: EvidenceReading = { at: isoTime(ms), rotation, temperature, vibration, sound, probability, fault };
  // The model that scored it: a reading of an episode can be traced, like its alarm, to the model behind it.
  if (model !== undefined) stored.model = model;
  return stored;
}
