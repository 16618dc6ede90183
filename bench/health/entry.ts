// The health function's per-prediction CPU in the rules and the stored entry, without servers:
// for a fleet fed as bench/health/load.ts feeds it (one prediction per fan write, a tenth of the
// fans faulty, with score's contributions), each prediction is evaluated on the fan's entry and the
// new entry serialised as the store writes it (JSON) and parsed as a replica reading it would.
// Reports µs per prediction for each part and the entry's size for a healthy and a faulty fan.
// Run: node dist/bench/health/entry.js (after npm run build); a few seconds; JSON on stdout.
import { evaluate, type HealthInput } from "../../functions/health/evaluator.js";
import { encodeEntry, type FanEntry } from "../../functions/health/store.js";
import type { Prediction } from "../../lib/domain/prediction.js";
import { seededRandom } from "../../simulation/rng.js";

const FANS = Number(process.env.BENCH_FANS ?? 1000);
const PREDICTIONS = Number(process.env.BENCH_PREDICTIONS ?? 200_000);
/** 4,000 predictions/s over 1,000 fans: a reading per fan every 250 ms. */
const STEP_MS = 250;
const T0 = Date.UTC(2026, 10, 27, 8);

const random = seededRandom(7);
const r1 = (x: number) => Math.round(x * 10) / 10;
const r6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * What predict publishes, shaped as bench/health/load.ts sends it (the faulty tenth carry a cause
 * and contributions), with values that vary from reading to reading at the precision the pipeline
 * gives them: readings to one decimal (the simulator), probabilities and contributions to six (score).
 */
function prediction(n: number): HealthInput {
  const fan = n % FANS;
  const wobble = random();
  const at = T0 + Math.floor(n / FANS) * STEP_MS;
  const base = { deviceID: `bench-${fan}`, timeStamp: at, model: "fan-v1" };
  const p: Prediction =
    fan % 10 === 9
      ? {
          ...base,
          fault: wobble < 0.91 ? 1 : 0,
          probability: r6(0.6 + 0.4 * wobble),
          reading: {
            rotation: r1(420 + 60 * wobble),
            temperature: r1(50 + 4 * wobble),
            vibration: r1(220 + 25 * wobble),
            sound: r1(55 + 4 * wobble),
          },
          cause: "vibration",
          contributions: {
            rotation: r6(0.4 * wobble),
            temperature: r6(1.1 - wobble / 3),
            vibration: r6(3.2 + wobble),
            sound: r6(0.2 * wobble),
          },
        }
      : {
          ...base,
          fault: 0,
          probability: r6(0.02 * wobble),
          reading: {
            rotation: r1(520 + 160 * wobble),
            temperature: r1(36 + 8 * wobble),
            vibration: r1(110 + 80 * wobble),
            sound: r1(46 + 5 * wobble),
          },
        };
  return { prediction: p, at };
}

const entries = new Map<string, FanEntry>();
const bytes = new Map<string, Uint8Array>();
let sequence = 0;

function pass(count: number): { evaluate: number; stringify: number; parse: number } {
  const inputs = Array.from({ length: count }, () => prediction(sequence++));
  let tEval = 0n;
  let tStringify = 0n;
  let tParse = 0n;
  let sink = 0;
  for (const input of inputs) {
    const id = input.prediction.deviceID;
    const t0 = process.hrtime.bigint();
    const { next } = evaluate(entries.get(id)?.health, id, [input], input.at);
    const t1 = process.hrtime.bigint();
    const entry: FanEntry = { health: next, outbox: [], recent: [] };
    const encoded = encodeEntry(entry);
    const t2 = process.hrtime.bigint();
    sink += (
      JSON.parse(Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).toString("utf8")) as FanEntry
    ).health.tracker.n;
    const t3 = process.hrtime.bigint();
    entries.set(id, entry);
    bytes.set(id, encoded);
    tEval += t1 - t0;
    tStringify += t2 - t1;
    tParse += t3 - t2;
  }
  if (sink < 0) console.error(sink);
  const us = (t: bigint) => Math.round(Number(t) / count / 10) / 100;
  return { evaluate: us(tEval), stringify: us(tStringify), parse: us(tParse) };
}

pass(PREDICTIONS / 2); // warm-up: JIT, and every fan past its first readings
const measured = pass(PREDICTIONS);
const size = (id: string) => bytes.get(id)?.byteLength;
console.log(
  JSON.stringify({
    fans: FANS,
    predictions: PREDICTIONS,
    usPerPrediction: {
      ...measured,
      total: Math.round((measured.evaluate + measured.stringify + measured.parse) * 100) / 100,
    },
    entryBytes: { healthy: size("bench-0"), faulty: size("bench-9") },
  }),
);
if (process.env.BENCH_SHOW_ENTRY === "1")
  for (const id of ["bench-0", "bench-9"])
    console.error(Buffer.from(bytes.get(id) ?? new Uint8Array()).toString("utf8"));
