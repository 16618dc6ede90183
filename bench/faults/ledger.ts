import { isSensorNotice } from "../../lib/domain/sensor-notice.js";

/**
 * The fault suite's bookkeeping: every reading the load sends, every prediction and dead letter the
 * collector receives, matched one to one.
 *
 * A valid reading is fan `deviceID`'s k-th reading and carries the timeStamp t0 + k ms (ISO 8601),
 * so a prediction (which repeats deviceID and timeStamp) names its reading exactly, and a fan's
 * points in InfluxDB never share a time. Counting stays in typed arrays indexed by k: a 30-minute
 * soak at 5,000 readings/s is 9 million readings.
 * An invalid message carries a marker `bad-<n>` at the start of its payload, which dead letters
 * keep (they hold the first 1 KiB of the payload).
 */
export type InvalidKind =
  | "not-json"
  | "missing-field"
  | "non-numeric"
  | "out-of-range"
  | "bad-timestamp"
  | "oversized"
  | "non-utf8"
  | "proto-key";

export const MARKER = /bad-\d+/;

/** A health transition as received on fan/alarm: what the fan's health became, and when it arrived. */
export interface ReceivedTransition {
  event: string;
  state: string;
  alarmId: string | null;
  /** When health made it: reading time, or its clock for `silent` (ms since the epoch). */
  at: number;
  /** The fan's transition number (the last part of its id): a fan's latest transition has the highest. */
  seq: number;
  /** When the collector received it, ms since the ledger started. */
  arrived: number;
}

/** What the prediction path did over a stretch of time (the fault, the time before it). */
export interface PathWindow {
  /** Valid readings sent in the stretch, and a second. */
  sent: number;
  sentPerSecond: number;
  /** Of those, the ones whose first prediction arrived before the stretch ended. */
  predictedWithin: number;
  /** Publish to first prediction, over those sent in the stretch that were predicted at all. */
  latencyMs: { p50: number | null; p99: number | null };
}

interface Fan {
  /** Readings sent so far; k runs from 0 to sent - 1. */
  sent: number;
  /** When each reading was sent, ms since the ledger started. */
  sentAt: Uint32Array;
  /** When its first prediction arrived, ms since the ledger started (0: none yet). */
  firstPrediction: Uint32Array;
  /** Predictions received per reading (saturates at 255). */
  predictions: Uint8Array;
  /** Dead letters received per reading: a valid reading should never get one. */
  deadLetters: Uint8Array;
  /** Dead letters of its prediction (the writer refusing it): there should be none either. */
  predictionDeadLetters: Uint8Array;
}

interface Invalid {
  kind: InvalidKind;
  /** The broker refused it (a payload over its size cap): it never entered the pipeline. */
  refused: boolean;
  predictions: number;
  deadLetters: number;
  reasons: Set<string>;
}

export class Ledger {
  readonly started = Date.now();
  /** Time origin of the readings' timeStamps. */
  readonly t0 = this.started;
  readonly #fans = new Map<string, Fan>();
  readonly #invalid = new Map<string, Invalid>();
  #nextMarker = 0;
  validSent = 0;
  /** Dead letters by reason prefix (see reasonPrefix). */
  readonly deadLettersByReason = new Map<string, number>();
  deadLettersReceived = 0;
  deadLettersWithoutReason = 0;
  /** Dead letters whose payload names neither an invalid message nor a valid reading. */
  deadLettersUnidentified = 0;
  /** Predictions that name no reading the load sent. */
  predictionsUnidentified = 0;
  /** Valid readings with at least one prediction so far (kept as they arrive, for the drain). */
  readingsPredicted = 0;
  /** Invalid messages with at least one dead letter so far. */
  invalidDeadLettered = 0;
  /** Health transitions received on fan/alarm, by fan, in arrival order. */
  readonly transitions = new Map<string, ReceivedTransition[]>();
  /** Messages on fan/alarm that are not transitions. */
  transitionsUnreadable = 0;

  now(): number {
    return Date.now() - this.started;
  }

  /** Registers fan `deviceID`'s next reading and returns its timeStamp. */
  nextReading(deviceID: string): string {
    let fan = this.#fans.get(deviceID);
    if (fan === undefined)
      this.#fans.set(
        deviceID,
        (fan = {
          sent: 0,
          sentAt: new Uint32Array(16),
          firstPrediction: new Uint32Array(16),
          predictions: new Uint8Array(16),
          deadLetters: new Uint8Array(16),
          predictionDeadLetters: new Uint8Array(16),
        }),
      );
    if (fan.sent === fan.sentAt.length) grow(fan);
    fan.sentAt[fan.sent] = this.now();
    this.validSent++;
    return new Date(this.t0 + fan.sent++).toISOString();
  }

  /** A fresh marker for an invalid message of `kind`. */
  nextInvalid(kind: InvalidKind): string {
    const marker = `bad-${this.#nextMarker++}`;
    this.#invalid.set(marker, { kind, refused: false, predictions: 0, deadLetters: 0, reasons: new Set() });
    return marker;
  }

  refusedByBroker(marker: string): void {
    const entry = this.#invalid.get(marker);
    if (entry !== undefined) entry.refused = true;
  }

  onPrediction(payload: Buffer): void {
    let p: { deviceID?: unknown; timeStamp?: unknown };
    try {
      p = JSON.parse(payload.toString()) as typeof p;
    } catch {
      this.predictionsUnidentified++;
      return;
    }
    // predict's notice of a reading outside its sensor's limits (the out-of-range ones) is no
    // prediction: that reading was dead-lettered, as the ledger expects.
    if (isSensorNotice(p)) return;
    const reading = this.#reading(p.deviceID, p.timeStamp);
    if (reading !== undefined) {
      const { fan, k } = reading;
      if (fan.predictions[k] === 0) {
        fan.firstPrediction[k] = Math.max(1, this.now());
        this.readingsPredicted++;
      }
      fan.predictions[k] = Math.min(255, (fan.predictions[k] ?? 0) + 1);
      return;
    }
    const invalid = this.#invalidNamed(String(p.deviceID));
    if (invalid !== undefined) invalid.predictions++;
    else this.predictionsUnidentified++;
  }

  onDeadLetter(payload: Buffer): void {
    this.deadLettersReceived++;
    let letter: { error?: unknown; topic?: unknown; payload?: unknown };
    try {
      letter = JSON.parse(payload.toString()) as typeof letter;
    } catch {
      this.deadLettersUnidentified++;
      return;
    }
    const reason =
      typeof letter.error === "string" && letter.error.trim() !== "" ? reasonPrefix(letter.error) : undefined;
    if (reason === undefined) this.deadLettersWithoutReason++;
    else this.deadLettersByReason.set(reason, (this.deadLettersByReason.get(reason) ?? 0) + 1);
    const text = typeof letter.payload === "string" ? letter.payload : "";
    const invalid = this.#invalidNamed(text);
    if (invalid !== undefined) {
      if (invalid.deadLetters++ === 0) this.invalidDeadLettered++;
      if (reason !== undefined) invalid.reasons.add(reason);
      return;
    }
    const reading = this.#readingInText(text);
    if (reading === undefined) {
      this.deadLettersUnidentified++;
      return;
    }
    const counts = letter.topic === "fan/anomaly" ? reading.fan.predictionDeadLetters : reading.fan.deadLetters;
    counts[reading.k] = Math.min(255, (counts[reading.k] ?? 0) + 1);
  }

  onTransition(payload: Buffer): void {
    let t: { deviceID?: unknown; event?: unknown; state?: unknown; alarmId?: unknown; at?: unknown; id?: unknown };
    try {
      t = JSON.parse(payload.toString()) as typeof t;
    } catch {
      this.transitionsUnreadable++;
      return;
    }
    const at = typeof t.at === "string" ? Date.parse(t.at) : Number.NaN;
    const seq = typeof t.id === "string" ? Number(t.id.slice(t.id.lastIndexOf(":") + 1)) : Number.NaN;
    if (
      Number.isNaN(seq) ||
      typeof t.deviceID !== "string" ||
      typeof t.event !== "string" ||
      typeof t.state !== "string" ||
      !(typeof t.alarmId === "string" || t.alarmId === null) ||
      Number.isNaN(at)
    ) {
      this.transitionsUnreadable++;
      return;
    }
    let list = this.transitions.get(t.deviceID);
    if (list === undefined) this.transitions.set(t.deviceID, (list = []));
    list.push({ event: t.event, state: t.state, alarmId: t.alarmId, at, seq, arrived: this.now() });
  }

  /** The timeStamp of fan `deviceID`'s last valid reading, or undefined if it sent none. */
  lastReadingOf(deviceID: string): string | undefined {
    const fan = this.#fans.get(deviceID);
    return fan === undefined || fan.sent === 0 ? undefined : new Date(this.t0 + fan.sent - 1).toISOString();
  }

  /** The fans of the steady load (and of the poison's extra devices). */
  get fanIDs(): string[] {
    return [...this.#fans.keys()];
  }

  /** The prediction path over [from, to) (ms since start): readings sent, predicted before `to`, latency. */
  window(from: number, to: number): PathWindow {
    let sent = 0;
    let predictedWithin = 0;
    const latencies: number[] = [];
    for (const fan of this.#fans.values()) {
      for (let k = 0; k < fan.sent; k++) {
        const sentAt = fan.sentAt[k] ?? 0;
        if (sentAt < from || sentAt >= to) continue;
        sent++;
        const first = fan.firstPrediction[k] ?? 0;
        if (first === 0) continue;
        if (first <= to) predictedWithin++;
        latencies.push(first - sentAt);
      }
    }
    latencies.sort((a, b) => a - b);
    const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null;
    return {
      sent,
      sentPerSecond: to > from ? Math.round((sent * 1000) / (to - from)) : 0,
      predictedWithin,
      latencyMs: { p50: pick(0.5), p99: pick(0.99) },
    };
  }

  /** Markers of invalid messages found in stored dead-letter payloads. */
  storedInvalid(payloads: Iterable<string>): Set<string> {
    const found = new Set<string>();
    for (const text of payloads) {
      const marker = MARKER.exec(text)?.[0];
      if (marker !== undefined && this.#invalid.has(marker)) found.add(marker);
    }
    return found;
  }

  /** The largest k sent before `at` (ms since start) over all fans, or -1. */
  lastIndexSentBefore(at: number): number {
    let last = -1;
    for (const fan of this.#fans.values()) {
      for (let k = fan.sent - 1; k > last; k--) {
        if ((fan.sentAt[k] ?? 0) <= at) {
          last = k;
          break;
        }
      }
    }
    return last;
  }

  /** Valid readings with k <= `index`, i.e. with a timeStamp up to t0 + index. */
  validUpTo(index: number): number {
    let n = 0;
    for (const fan of this.#fans.values()) n += Math.min(fan.sent, index + 1);
    return n;
  }

  /** Counts over every reading and invalid message; `faultEnd` in ms since start. */
  summary(faultEnd: number | undefined): LedgerSummary {
    let predicted = 0;
    let duplicates = 0;
    let validDeadLettered = 0;
    let predictionsDeadLettered = 0;
    let lastBacklog = 0;
    const latencies: number[] = [];
    for (const fan of this.#fans.values()) {
      for (let k = 0; k < fan.sent; k++) {
        const n = fan.predictions[k] ?? 0;
        const sentAt = fan.sentAt[k] ?? 0;
        if ((fan.deadLetters[k] ?? 0) > 0) validDeadLettered++;
        if ((fan.predictionDeadLetters[k] ?? 0) > 0) predictionsDeadLettered++;
        if (n === 0) continue;
        predicted++;
        duplicates += n - 1;
        const first = fan.firstPrediction[k] ?? 0;
        latencies.push(first - sentAt);
        if (faultEnd !== undefined && sentAt <= faultEnd) lastBacklog = Math.max(lastBacklog, first - faultEnd);
      }
    }
    latencies.sort((a, b) => a - b);
    const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null;
    const byKind: Record<string, number> = {};
    let refused = 0;
    let invalidPredicted = 0;
    let invalidWithoutDeadLetter = 0;
    let invalidWithoutReason = 0;
    for (const entry of this.#invalid.values()) {
      byKind[entry.kind] = (byKind[entry.kind] ?? 0) + 1;
      if (entry.refused) {
        refused++;
        continue;
      }
      if (entry.predictions > 0) invalidPredicted++;
      if (entry.deadLetters === 0) invalidWithoutDeadLetter++;
      else if (entry.reasons.size === 0) invalidWithoutReason++;
    }
    return {
      validSent: this.validSent,
      invalidSent: this.#invalid.size,
      invalidByKind: byKind,
      refusedByBroker: refused,
      predicted,
      duplicates,
      unpredicted: this.validSent - predicted,
      validDeadLettered,
      predictionsDeadLettered,
      invalidPredicted,
      invalidWithoutDeadLetter,
      invalidWithoutReason,
      latencyMs: { p50: pick(0.5), p99: pick(0.99), max: latencies.at(-1) ?? null },
      backlogClearedMs: faultEnd === undefined ? null : lastBacklog,
    };
  }

  /** Markers of the invalid messages the broker took (the ones that should be dead-lettered). */
  acceptedInvalid(): string[] {
    return [...this.#invalid].filter(([, e]) => !e.refused).map(([marker]) => marker);
  }

  #reading(deviceID: unknown, timeStamp: unknown): { fan: Fan; k: number } | undefined {
    if (typeof deviceID !== "string" || typeof timeStamp !== "string") return undefined;
    const fan = this.#fans.get(deviceID);
    const k = Date.parse(timeStamp) - this.t0;
    if (fan === undefined || !Number.isInteger(k) || k < 0 || k >= fan.sent) return undefined;
    return { fan, k };
  }

  #readingInText(text: string): { fan: Fan; k: number } | undefined {
    try {
      const value = JSON.parse(text) as { deviceID?: unknown; timeStamp?: unknown };
      return this.#reading(value.deviceID, value.timeStamp);
    } catch {
      return undefined;
    }
  }

  #invalidNamed(text: string): Invalid | undefined {
    const marker = MARKER.exec(text)?.[0];
    return marker === undefined ? undefined : this.#invalid.get(marker);
  }
}

export interface LedgerSummary {
  validSent: number;
  invalidSent: number;
  invalidByKind: Record<string, number>;
  refusedByBroker: number;
  /** Valid readings with at least one prediction. */
  predicted: number;
  /** Predictions beyond the first for a reading (at least once allows them). */
  duplicates: number;
  unpredicted: number;
  /** Valid readings that were dead-lettered (an outage mistaken for bad input). */
  validDeadLettered: number;
  /** Valid readings whose prediction was dead-lettered (by the writer: InfluxDB refused it). */
  predictionsDeadLettered: number;
  invalidPredicted: number;
  invalidWithoutDeadLetter: number;
  invalidWithoutReason: number;
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
  /** From the fault's end until the last reading sent before it got its first prediction (of those that got one). */
  backlogClearedMs: number | null;
}

/**
 * A dead letter's reason without its particulars, for grouping: its first two colon-separated
 * parts (three when the first names the component that refused it, `influx-writer: sound: missing`),
 * each cut at its first comma, quoted values and numbers blanked out.
 */
export function reasonPrefix(error: string): string {
  const parts = error
    .replace(/"[^"]*"?|'[^']*'?/g, "…")
    .replace(/\d+/g, "N")
    .split(": ")
    .map((p) => (p.split(",")[0] ?? "").trim());
  const component = /^[a-z]+(-[a-z]+)+$/.test(parts[0] ?? "") ? 1 : 0;
  return parts
    .slice(0, component + 2)
    .join(": ")
    .slice(0, 80);
}

function grow(fan: Fan): void {
  const size = fan.sentAt.length * 2;
  const sentAt = new Uint32Array(size);
  sentAt.set(fan.sentAt);
  const first = new Uint32Array(size);
  first.set(fan.firstPrediction);
  const bytes = (old: Uint8Array) => {
    const grown = new Uint8Array(size);
    grown.set(old);
    return grown;
  };
  Object.assign(fan, {
    sentAt,
    firstPrediction: first,
    predictions: bytes(fan.predictions),
    deadLetters: bytes(fan.deadLetters),
    predictionDeadLetters: bytes(fan.predictionDeadLetters),
  });
}
