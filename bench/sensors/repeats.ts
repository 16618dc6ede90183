import { FEATURES } from "../../lib/domain/features.js";
import { drawReadings, type ProfileName } from "../../simulation/fan-profiles.js";
import { seededRandom } from "../../simulation/rng.js";

/**
 * How often a healthy simulated sensor repeats its value by chance (docs/health.md, "Sensor
 * issues"): the simulator's readings have one decimal, so two in a row can be equal. Draws
 * READINGS readings of each profile and counts, per sensor, readings equal to the one before and
 * the longest run of equal values: what HEALTH_STUCK_READINGS must stay clear of.
 * `node dist/bench/sensors/repeats.js [readings]`
 */
const readings = Number(process.argv[2] ?? 10_000_000);
const profiles: ProfileName[] = ["healthy", "faulty"];
for (const profile of profiles) {
  const random = seededRandom(24);
  const last = new Map<string, number>();
  const run = new Map<string, number>();
  const repeats = new Map<string, number>();
  const longest = new Map<string, number>();
  const runsAtLeast = new Map<string, number[]>();
  for (let i = 0; i < readings; i++) {
    const r = drawReadings(profile, 0, random);
    for (const f of FEATURES) {
      const same = last.get(f) === r[f];
      const length = same ? (run.get(f) ?? 1) + 1 : 1;
      run.set(f, length);
      last.set(f, r[f]);
      if (same) repeats.set(f, (repeats.get(f) ?? 0) + 1);
      longest.set(f, Math.max(longest.get(f) ?? 1, length));
      const counts = runsAtLeast.get(f) ?? [0, 0, 0, 0, 0, 0];
      if (length >= 2 && length <= 6) counts[length - 1]! += 1;
      runsAtLeast.set(f, counts);
    }
  }
  for (const f of FEATURES) {
    const counts = runsAtLeast.get(f)!;
    console.log(
      `${profile} ${f}: ${(((repeats.get(f) ?? 0) / readings) * 100).toFixed(3)}% of readings repeat the one before; ` +
        `runs reaching 2/3/4/5/6: ${counts.slice(1).join("/")}; longest ${longest.get(f)} in ${readings.toLocaleString("en")} readings`,
    );
  }
}
