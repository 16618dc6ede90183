import type { MqttClient } from "mqtt";
import { FEATURES, type FeatureName } from "../lib/features.js";
import { parseUntrustedJson } from "../lib/json.js";
import { PredictionSchema } from "../lib/prediction.js";
import { parseTelemetry } from "../lib/telemetry.js";

/** Points of each sensor kept per fan for the page's charts. */
const HISTORY = 60;
/** Predictions a fan's state is judged on: single readings of a faulty fan often look healthy. */
const WINDOW = 10;
/** Above this many fans, readings from new device ids are counted but not tracked. */
const MAX_FANS = 5_000;
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
}

/**
 * What the fleet is doing, read from the broker like any other subscriber: the telemetry, the
 * predictions and the dead letters. The web page and the console's progress line show it.
 * A fan is "fault" when at least half of its last 10 predictions said so, "warning" from 20%.
 */
export class FleetView {
  readonly #fans = new Map<string, Fan>();
  readonly #feed: FleetSnapshot["feed"] = [];
  readonly #deadLetters: FleetSnapshot["deadLetters"] = [];
  #totals = { readings: 0, predictions: 0, deadLetters: 0 };
  #last = { at: Date.now(), readings: 0, predictions: 0 };
  #rates = { readingsPerSecond: 0, predictionsPerSecond: 0 };

  constructor(
    private readonly client: MqttClient,
    private readonly topics: { telemetry: string; anomaly: string; deadletter: string },
  ) {
    client.on("message", (topic, payload) => this.#receive(topic, payload));
  }

  async subscribe(): Promise<void> {
    await this.client.subscribeAsync([this.topics.telemetry, this.topics.anomaly, this.topics.deadletter], { qos: 0 });
  }

  /** Counts and rates only: what the console's status line shows, without copying every fan. */
  summary(): Pick<FleetSnapshot, "at" | "totals" | "rates"> {
    const now = Date.now();
    const seconds = (now - this.#last.at) / 1000;
    if (seconds >= 1) {
      this.#rates = { readingsPerSecond: round((this.#totals.readings - this.#last.readings) / seconds), predictionsPerSecond: round((this.#totals.predictions - this.#last.predictions) / seconds) };
      this.#last = { at: now, readings: this.#totals.readings, predictions: this.#totals.predictions };
    }
    let fansInFault = 0;
    for (const fan of this.#fans.values()) if (fan.state === "fault") fansInFault++;
    return { at: now, totals: { ...this.#totals, fansInFault, fans: this.#fans.size }, rates: this.#rates };
  }

  /** Everything the web page shows. */
  snapshot(): FleetSnapshot {
    const fans = [...this.#fans.values()].sort((a, b) => a.deviceID.localeCompare(b.deviceID, "en", { numeric: true })).map(({ recent: _recent, ...view }) => view);
    return { ...this.summary(), fans, feed: [...this.#feed], deadLetters: [...this.#deadLetters] };
  }

  #receive(topic: string, payload: Buffer): void {
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
    const fan = this.#fan(parsed.telemetry.deviceID);
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
    const fan = this.#fan(p.deviceID);
    if (fan === undefined) return;
    fan.probability = p.probability;
    fan.recent.push(p.fault);
    if (fan.recent.length > WINDOW) fan.recent.shift();
    fan.faultShare = round(fan.recent.reduce((a, b) => a + b, 0) / fan.recent.length);
    fan.state = fan.faultShare >= 0.5 ? "fault" : fan.faultShare >= 0.2 ? "warning" : "ok";
    if (p.fault === 1) {
      this.#feed.unshift({ deviceID: p.deviceID, probability: p.probability, at: Date.now() });
      if (this.#feed.length > FEED) this.#feed.pop();
    }
  }

  #deadLetter(message: unknown): void {
    this.#totals.deadLetters++;
    const error = typeof message === "object" && message !== null && "error" in message ? String(message.error) : "unreadable dead letter";
    this.#deadLetters.unshift({ error: error.slice(0, 200), at: Date.now() });
    if (this.#deadLetters.length > FEED) this.#deadLetters.pop();
  }

  #fan(deviceID: string): Fan | undefined {
    let fan = this.#fans.get(deviceID);
    if (fan === undefined && this.#fans.size < MAX_FANS) {
      fan = { deviceID, state: "unknown", probability: null, faultShare: 0, readings: 0, recent: [], history: { rotation: [], temperature: [], vibration: [], sound: [] } };
      this.#fans.set(deviceID, fan);
    }
    return fan;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
