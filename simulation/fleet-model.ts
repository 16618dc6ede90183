import { FEATURES, type FeatureName } from "../lib/domain/features.js";
import { seededRandom, type Random } from "./rng.js";
import {
  WEARING,
  drawReadings,
  fleetFan,
  fleetProfiles,
  hotRanges,
  ownRanges,
  type FanRanges,
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
  /** Wearing and sudden fans start at a random moment within this time (0: at the first reading)… */
  onsetMs: number;
  /** …after this much time (default 0): time for a fan to run healthy and be learnt first. */
  onsetAfterMs?: number;
  /** Each fan at its own level per sensor, with a smaller spread than the fleet's (fan-profiles.ts, ownRanges); default off. */
  ownLevels?: boolean;
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
  /** The sensors that wear towards their worn range: all four for degrading, vibration for bearing, the chosen ones for drifts. */
  drifting: FeatureName[];
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
    /** The ranges it draws from while healthy, and the sensors its wear moves. */
    readonly ranges: FanRanges = fleetFan(profile),
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
      drifting: [...ranges.drifting],
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
    return drawReadings(this.profile, wear, this.#random, failed, this.ranges);
  }
}

/** Sensor pairs for drift-pair fans, in an order in which two neighbours share no sensor. */
const PAIRS: ReadonlyArray<readonly [FeatureName, FeatureName]> = [
  ["rotation", "vibration"],
  ["temperature", "sound"],
  ["rotation", "temperature"],
  ["vibration", "sound"],
  ["rotation", "sound"],
  ["temperature", "vibration"],
];

/**
 * The sensors the k-th drift (or drift-pair) fan of a fleet drifts: four drift fans cover the four
 * sensors, six drift-pair fans the six pairs; the seed turns the order so that fleets with fewer
 * fans still see every pair over a few seeds.
 */
export function driftingSensors(profile: "drift" | "drift-pair", k: number, seed: number): FeatureName[] {
  return profile === "drift"
    ? [FEATURES[(k + seed) % FEATURES.length] as FeatureName]
    : [...(PAIRS[(k + seed) % PAIRS.length] as readonly FeatureName[])];
}

/**
 * Fan n (from 1) has deviceID "n". The onsets, and own levels, come from streams of their own, so
 * adding shapes, onsets or own levels left every fan's readings as they were for the same seed.
 */
export function createFleet(options: FleetModelOptions): SimulatedFan[] {
  const onsets = seededRandom(options.seed * 7_919 + 17);
  const onsetReadings = Math.floor(options.onsetMs / options.intervalMs);
  const firstOnset = Math.floor((options.onsetAfterMs ?? 0) / options.intervalMs);
  const degradeReadings = Math.max(1, Math.round(options.degradeMs / options.intervalMs));
  const seen = new Map<ProfileName, number>();
  return fleetProfiles(options.fans, options).map((profile, i) => {
    const onset = firstOnset + Math.floor(onsets() * onsetReadings);
    const seed = options.seed * 100_003 + i;
    const k = seen.get(profile) ?? 0;
    seen.set(profile, k + 1);
    const own = options.ownLevels === true ? ownRanges(seededRandom(levelSeed(seed))) : undefined;
    // A hot fan at its own levels keeps them, but for its temperature.
    const healthy = own === undefined ? fleetFan(profile).healthy : profile === "hot" ? hotRanges(own) : own;
    const drifting =
      profile === "drift" || profile === "drift-pair"
        ? driftingSensors(profile, k, options.seed)
        : fleetFan(profile).drifting;
    return new SimulatedFan(String(i + 1), profile, seed, onset, degradeReadings, { healthy, drifting });
  });
}

/** The seed of a fan's own-level stream: hashed, so that it is never another fan's readings seed. */
function levelSeed(seed: number): number {
  return Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
}
