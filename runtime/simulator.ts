import type { MqttClient } from "mqtt";
import { seededRandom, type Random } from "../lib/rng.js";
import { formatTime } from "../lib/timestamp.js";
import { drawReadings, fleetProfiles, type ProfileName } from "./fan-profiles.js";

export interface FleetOptions {
  fans: number;
  faulty: number;
  degrading: number;
  /** Time between two readings of one fan. */
  intervalMs: number;
  /** How long a degrading fan takes to go from healthy to worn out. */
  degradeMs: number;
  qos: 0 | 1;
  seed: number;
  topic: string;
}

export interface SimulatedFan {
  deviceID: string;
  profile: ProfileName;
}

/**
 * A simulated fleet: every fan publishes the reference payload to `topic` every `intervalMs`, the
 * fans spread evenly over the interval so the broker sees a steady stream rather than bursts.
 * Fan n (from 1) has deviceID "n"; the same seed gives the same readings.
 */
export class FleetSimulator {
  readonly fans: readonly SimulatedFan[];
  #published = 0;
  #failed = 0;
  #timers: NodeJS.Timeout[] = [];
  readonly #random: Random;
  #startedAt = 0;

  constructor(
    private readonly client: MqttClient,
    private readonly options: FleetOptions,
  ) {
    this.fans = fleetProfiles(options.fans, options.faulty, options.degrading).map((profile, i) => ({ deviceID: String(i + 1), profile }));
    this.#random = seededRandom(options.seed);
  }

  /** Readings handed to the MQTT client so far (and, at QoS 1, how many the broker refused). */
  get published(): number {
    return this.#published;
  }

  get failed(): number {
    return this.#failed;
  }

  start(): void {
    this.#startedAt = Date.now();
    this.fans.forEach((fan, i) => {
      const offset = Math.floor((i * this.options.intervalMs) / Math.max(1, this.fans.length));
      const first = setTimeout(() => {
        this.#publish(fan);
        this.#timers.push(setInterval(() => this.#publish(fan), this.options.intervalMs));
      }, offset);
      this.#timers.push(first);
    });
  }

  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers = [];
  }

  /** The next reading of a fan, as the reference simulator sends it. */
  reading(fan: SimulatedFan, now: number): string {
    const wear = fan.profile === "degrading" ? (now - this.#startedAt) / this.options.degradeMs : 0;
    return JSON.stringify({ deviceID: fan.deviceID, timeStamp: formatTime(new Date(now)), ...drawReadings(fan.profile, wear, this.#random) });
  }

  #publish(fan: SimulatedFan): void {
    this.#published++;
    this.client.publish(this.options.topic, this.reading(fan, Date.now()), { qos: this.options.qos }, (error) => {
      if (error) this.#failed++;
    });
  }
}
