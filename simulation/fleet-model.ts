import { seededRandom, type Random } from "./rng.js";
import {
  WEARING,
  drawReadings,
  fleetProfiles,
  type FleetMix,
  type ProfileName,
  type Readings,
} from "./fan-profiles.js";

export interface FleetModelOptions extends FleetMix {
  fans: number;
  /** Time between two readings of one fan. */
  intervalMs: number;
  /** How long a wearing fan takes to go from healthy to worn out. */
  degradeMs: number;
  /** Wearing and sudden fans start at a random moment within this time (0: at the first reading). */
  onsetMs: number;
  seed: number;
}

/**
 * What really happens to a fan, for measuring the health rules: its shape, the reading at which it
 * starts to wear (wearing shapes) and the reading at which it has failed (fully worn, or the
 * sudden fault; 0 for a fan faulty from the start). Null when it never does.
 */
export interface FanTruth {
  deviceID: string;
  shape: ProfileName;
  wearStartsAtReading: number | null;
  failsAtReading: number | null;
}

/**
 * One simulated fan: its own seeded stream of readings, worn by its own count of readings, so the
 * same seed gives the same readings however a loaded machine's timers interleave the fans (one
 * shared stream and wall-clock wear made two runs differ). Used by the MQTT simulator and, at
 * accelerated time, by `npm run bench:health`.
 */
export class SimulatedFan {
  readonly truth: FanTruth;
  #random: Random;
  #sent = 0;

  constructor(
    readonly deviceID: string,
    readonly profile: ProfileName,
    seed: number,
    onsetReading: number,
    private readonly degradeReadings: number,
  ) {
    this.#random = seededRandom(seed);
    const wearing = WEARING.has(profile);
    this.truth = {
      deviceID,
      shape: profile,
      wearStartsAtReading: wearing ? onsetReading : null,
      failsAtReading:
        profile === "faulty"
          ? 0
          : profile === "sudden"
            ? onsetReading
            : wearing
              ? onsetReading + degradeReadings
              : null,
    };
  }

  /** Readings drawn so far. */
  get sent(): number {
    return this.#sent;
  }

  next(): Readings {
    const n = this.#sent++;
    const start = this.truth.wearStartsAtReading;
    const wear = start === null ? 0 : Math.max(0, n - start) / Math.max(1, this.degradeReadings);
    const failed = this.profile === "sudden" && n >= (this.truth.failsAtReading as number);
    return drawReadings(this.profile, wear, this.#random, failed);
  }
}

/**
 * Fan n (from 1) has deviceID "n". The onsets come from a stream of their own, so adding shapes or
 * onsets left every fan's readings as they were for the same seed.
 */
export function createFleet(options: FleetModelOptions): SimulatedFan[] {
  const onsets = seededRandom(options.seed * 7_919 + 17);
  const onsetReadings = Math.floor(options.onsetMs / options.intervalMs);
  const degradeReadings = Math.max(1, Math.round(options.degradeMs / options.intervalMs));
  return fleetProfiles(options.fans, options).map((profile, i) => {
    const onset = Math.floor(onsets() * onsetReadings);
    return new SimulatedFan(String(i + 1), profile, options.seed * 100_003 + i, onset, degradeReadings);
  });
}
