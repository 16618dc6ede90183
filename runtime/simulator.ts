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
 * Each fan draws from its own seeded stream and wears by its own count of readings, so the same
 * seed gives each fan the same readings however the timers of a loaded machine interleave (one
 * shared stream and wall-clock wear made two runs differ).
 */
interface FanState extends SimulatedFan {
  random: Random;
  sent: number;
}

/**
 * A simulated fleet: every fan publishes the reference payload to `topic` every `intervalMs`, the
 * fans spread evenly over the interval so the broker sees a steady stream rather than bursts.
 * Fan n (from 1) has deviceID "n"; the same seed gives the same readings.
 */
export class FleetSimulator {
  readonly fans: readonly SimulatedFan[];
  readonly #fans: readonly FanState[];
  #published = 0;
  #failed = 0;
  #timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly client: MqttClient,
    private readonly options: FleetOptions,
  ) {
    this.#fans = fleetProfiles(options.fans, options.faulty, options.degrading).map((profile, i) => ({ deviceID: String(i + 1), profile, random: seededRandom(options.seed * 100_003 + i), sent: 0 }));
    this.fans = this.#fans.map(({ deviceID, profile }) => ({ deviceID, profile }));
  }

  /** Readings handed to the MQTT client so far (and, at QoS 1, how many the broker refused). */
  get published(): number {
    return this.#published;
  }

  get failed(): number {
    return this.#failed;
  }

  start(): void {
    this.#fans.forEach((fan, i) => {
      const offset = Math.floor((i * this.options.intervalMs) / Math.max(1, this.#fans.length));
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
  #reading(fan: FanState, now: number): string {
    const wear = fan.profile === "degrading" ? (fan.sent * this.options.intervalMs) / this.options.degradeMs : 0;
    fan.sent++;
    return JSON.stringify({ deviceID: fan.deviceID, timeStamp: formatTime(new Date(now)), ...drawReadings(fan.profile, wear, fan.random) });
  }

  #publish(fan: FanState): void {
    this.#published++;
    this.client.publish(this.options.topic, this.#reading(fan, Date.now()), { qos: this.options.qos }, (error) => {
      if (error) this.#failed++;
    });
  }
}
