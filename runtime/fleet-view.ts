import type { MqttClient } from "mqtt";
import { FEATURES, type FeatureName } from "../lib/features.js";
import { parseUntrustedJson } from "../lib/json.js";
import { PredictionSchema } from "../lib/prediction.js";
import { parseTelemetry } from "../lib/telemetry.js";

/** Points of each sensor kept per fan for the page's charts. */
const HISTORY = 60;
/** Predictions a fan's state is judged on: single readings of a faulty fan often look healthy. */
const WINDOW = 10;
/**
 * The most fans tracked at once (and device ids waiting to become fans). The page draws a tile per
 * fan and every frame carries each fan's 4 × 60 points: 1,000 fans with full charts made a 1.4 MB
 * frame a second per open page and 3.1 MB of heap (measured), already more than a tablet wants.
 */
const MAX_FANS = 1_000;
/** A fan silent this long leaves the page (a fan reports every 2 s; 10 minutes is a long outage). */
const FORGET_AFTER_MS = 10 * 60_000;
const FEED = 30;

export type FanState = "unknown" | "ok" | "warning" | "fault";

export interface FanView {
  deviceID: string;
  state: FanState;
  /** The latest prediction's probability of a fault. */
  probability: number | null;
  /** Share of the last predictions that said fault. */
  faultShare: number;
  readings: number;
  history: Record<FeatureName, number[]>;
}

export interface FleetSnapshot {
  at: number;
  totals: { readings: number; predictions: number; deadLetters: number; fansInFault: number; fans: number };
  rates: { readingsPerSecond: number; predictionsPerSecond: number };
  fans: FanView[];
  feed: Array<{ deviceID: string; probability: number; at: number }>;
  deadLetters: Array<{ error: string; at: number }>;
}

interface Fan extends FanView {
  recent: number[];
  lastSeen: number;
}

export interface FleetViewOptions {
  maxFans?: number;
  forgetAfterMs?: number;
  /** The clock, injectable so that tests can let fans fall silent without waiting. */
  now?: () => number;
}

/**
 * What the fleet is doing, read from the broker like any other subscriber: the telemetry, the
 * predictions and the dead letters. The web page and the console's progress line show it.
 * A fan is "fault" when at least half of its last 10 predictions said so, "warning" from 20%.
 *
 * Memory is bounded whatever device ids arrive. A device id seen once is only a candidate (its id
 * and when it was seen, in a map capped like the fans, the oldest dropped first); its second reading
 * makes it a fan. When the page is full, newcomers wait as candidates and no fan is evicted: any
 * eviction rule lets a flood of forged ids, each sent twice, push the real fans out one by one,
 * whereas a full page only makes room as fans fall silent for `forgetAfterMs`. So a flood of new
 * ids (sent once, like the fault suite's 100,000) never touches the fans on the page, and a flood
 * repeated until the page is full can only take the free places.
 */
export class FleetView {
  readonly #fans = new Map<string, Fan>();
  /** Device ids seen once, by when; in insertion order, so the first is the oldest. */
  readonly #candidates = new Map<string, number>();
  readonly #feed: FleetSnapshot["feed"] = [];
  readonly #deadLetters: FleetSnapshot["deadLetters"] = [];
  readonly #maxFans: number;
  readonly #forgetAfterMs: number;
  readonly #now: () => number;
  #totals = { readings: 0, predictions: 0, deadLetters: 0 };
  #last: { at: number; readings: number; predictions: number };
  #rates = { readingsPerSecond: 0, predictionsPerSecond: 0 };

  constructor(
    private readonly topics: { telemetry: string; anomaly: string; deadletter: string },
    options: FleetViewOptions = {},
  ) {
    this.#maxFans = options.maxFans ?? MAX_FANS;
    this.#forgetAfterMs = options.forgetAfterMs ?? FORGET_AFTER_MS;
    this.#now = options.now ?? Date.now;
    this.#last = { at: this.#now(), readings: 0, predictions: 0 };
  }

  /** Feeds the view from a client (which reads only: the view never publishes). */
  async subscribe(client: MqttClient): Promise<void> {
    client.on("message", (topic, payload) => this.receive(topic, payload));
    await client.subscribeAsync([this.topics.telemetry, this.topics.anomaly, this.topics.deadletter], { qos: 0 });
  }

  /** Device ids seen once and waiting to become fans (at most the fans' cap). */
  get candidates(): number {
    return this.#candidates.size;
  }

  /** Counts and rates only: what the console's status line shows, without copying every fan. */
  summary(): Pick<FleetSnapshot, "at" | "totals" | "rates"> {
    const now = this.#now();
    const seconds = (now - this.#last.at) / 1000;
    if (seconds >= 1) {
      this.#rates = { readingsPerSecond: round((this.#totals.readings - this.#last.readings) / seconds), predictionsPerSecond: round((this.#totals.predictions - this.#last.predictions) / seconds) };
      this.#last = { at: now, readings: this.#totals.readings, predictions: this.#totals.predictions };
      this.#forgetSilent(now);
    }
    let fansInFault = 0;
    for (const fan of this.#fans.values()) if (fan.state === "fault") fansInFault++;
    return { at: now, totals: { ...this.#totals, fansInFault, fans: this.#fans.size }, rates: this.#rates };
  }

  /** Everything the web page shows. */
  snapshot(): FleetSnapshot {
    const summary = this.summary();
    const fans = [...this.#fans.values()].sort((a, b) => a.deviceID.localeCompare(b.deviceID, "en", { numeric: true })).map(({ recent: _recent, lastSeen: _lastSeen, ...view }) => view);
    return { ...summary, fans, feed: [...this.#feed], deadLetters: [...this.#deadLetters] };
  }

  /** One message from the broker: a reading, a prediction or a dead letter. */
  receive(topic: string, payload: Buffer): void {
    let message: unknown;
    try {
      message = parseUntrustedJson(payload);
    } catch {
      message = undefined;
    }
    if (topic === this.topics.deadletter) return this.#deadLetter(message);
    if (topic === this.topics.anomaly) return this.#prediction(message);
    this.#totals.readings++;
    const parsed = parseTelemetry(message);
    if (!parsed.ok) return; // predict dead-letters it; the page shows that
    const fan = this.#admit(parsed.telemetry.deviceID);
    if (fan === undefined) return;
    fan.readings++;
    for (const f of FEATURES) {
      const points = fan.history[f];
      points.push(parsed.telemetry[f]);
      if (points.length > HISTORY) points.shift();
    }
  }


  #prediction(message: unknown): void {
    const parsed = PredictionSchema.safeParse(message);
    if (!parsed.success) return;
    this.#totals.predictions++;
    const p = parsed.data;
    // Predictions of a device id that is not a fan (yet) are counted, not kept.
    const fan = this.#fans.get(p.deviceID);
    if (fan === undefined) return;
    fan.lastSeen = this.#now();
    fan.probability = p.probability;
    fan.recent.push(p.fault);
    if (fan.recent.length > WINDOW) fan.recent.shift();
    fan.faultShare = round(fan.recent.reduce((a, b) => a + b, 0) / fan.recent.length);
    fan.state = fan.faultShare >= 0.5 ? "fault" : fan.faultShare >= 0.2 ? "warning" : "ok";
    if (p.fault === 1) {
      this.#feed.unshift({ deviceID: p.deviceID, probability: p.probability, at: this.#now() });
      if (this.#feed.length > FEED) this.#feed.pop();
    }
  }

  #deadLetter(message: unknown): void {
    this.#totals.deadLetters++;
    const error = typeof message === "object" && message !== null && "error" in message ? String(message.error) : "unreadable dead letter";
    this.#deadLetters.unshift({ error: error.slice(0, 200), at: this.#now() });
    if (this.#deadLetters.length > FEED) this.#deadLetters.pop();
  }

  /** The fan of a reading: known, admitted on its second reading if there is room, else none. */
  #admit(deviceID: string): Fan | undefined {
    const now = this.#now();
    const known = this.#fans.get(deviceID);
    if (known !== undefined) {
      known.lastSeen = now;
      return known;
    }
    if (!this.#candidates.has(deviceID) || this.#fans.size >= this.#maxFans) {
      this.#candidates.delete(deviceID); // re-inserted last: the oldest stays first
      this.#candidates.set(deviceID, now);
      if (this.#candidates.size > this.#maxFans) this.#candidates.delete(this.#candidates.keys().next().value as string);
      return undefined;
    }
    this.#candidates.delete(deviceID);
    const fan: Fan = { deviceID, state: "unknown", probability: null, faultShare: 0, readings: 0, recent: [], lastSeen: now, history: { rotation: [], temperature: [], vibration: [], sound: [] } };
    this.#fans.set(deviceID, fan);
    return fan;
  }

  #forgetSilent(now: number): void {
    for (const [id, fan] of this.#fans) if (now - fan.lastSeen > this.#forgetAfterMs) this.#fans.delete(id);
    for (const [id, seen] of this.#candidates) {
      if (now - seen <= this.#forgetAfterMs) break; // the rest are newer
      this.#candidates.delete(id);
    }
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
