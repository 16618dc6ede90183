// scratch: own-level drift fans through the real model and evaluate() (not committed)
import { evaluate, type FanHealth } from "../../functions/health/evaluator.js";
import { readHealthPolicy } from "../../functions/health/policy.js";
import { FEATURES } from "../../lib/domain/features.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { HEALTHY_RANGES } from "../../lib/domain/fan-ranges.js";
import { seededRandom } from "../../simulation/rng.js";
import { driftingSides, fitOf } from "../../functions/health/drift.js";
import { spreadOf } from "../../functions/health/baseline.js";
import type { Prediction } from "../../lib/domain/prediction.js";

const WORN: Record<string, number> = { rotation: 450, temperature: 50, vibration: 225, sound: 56 };
const policy = readHealthPolicy();
const model = await ScoringModel.load("model/artifact", { backend: "wasm" });
const START = Date.UTC(2026, 0, 1);
const out: any[] = [];
const periods = (process.env.PERIODS ?? "900,3600,10800,43200").split(",").map(Number);
const seeds = Number(process.env.SEEDS ?? 3);
for (let seed = 1; seed <= seeds; seed++)
  for (const period of periods)
    for (const drifting of [["rotation"], ["temperature"], ["vibration"], ["sound"], ["vibration", "temperature"], ["rotation", "sound"]]) {
      const rnd = seededRandom(seed * 1000 + period + drifting.length * 7 + FEATURES.indexOf(drifting[0] as any));
      const own = Object.fromEntries(FEATURES.map((f) => {
        const r = HEALTHY_RANGES[f]; const w = r.max - r.min;
        const hw = w * (0.05 + 0.05 * rnd());
        const level = r.min + 0.15 * w + hw + rnd() * (0.7 * w - 2 * hw);
        return [f, { level, hw }];
      })) as any;
      const onset = 1800 + Math.floor(rnd() * 1800);
      const fails = onset + period;
      let state: FanHealth | undefined;
      let dbg: any = null; let warnIdx: number | null = null, alarmIdx: number | null = null, warn: any = null, falseW = 0;
      const total = fails + 3600;
      const readings: any[] = [];
      for (let i = 0; i < total; i++) {
        const wear = Math.max(0, Math.min(1, (i - onset) / period));
        const reading: any = {};
        for (const f of FEATURES) {
          const o = own[f]; const lvl = drifting.includes(f) ? o.level + (WORN[f]! - o.level) * wear : o.level;
          reading[f] = Math.round((lvl - o.hw + 2 * o.hw * rnd()) * 10) / 10;
        }
        readings.push(reading);
      }
      const probs = model.probabilities(readings.map((r) => FEATURES.map((f) => r[f])));
      for (let i = 0; i < total; i++) {
        const reading = readings[i];
        const p: Prediction = { ...model.toVerdict(probs[i]!), deviceID: "x", reading } as Prediction;
        if (p.fault === 1) { const e = model.predictExplained([FEATURES.map((f) => reading[f])])[0]!; p.cause = e.cause; p.contributions = e.contributions; }
        const at = START + i * 2000;
        const r = evaluate(state, "x", [{ prediction: p, at }], at, policy);
        state = r.next;
        for (const t of r.transitions) {
          if (t.event === "warning" && warnIdx === null) { if (i < onset) falseW++; else { warnIdx = i; warn = t;
            const tr = state!.tracker; const side = driftingSides(tr.drift!, policy)[0]!; const fit = fitOf(tr.drift!, side, tr.n - 1);
            const f = FEATURES[side >> 1]!; const sp = spreadOf(tr.baseline!, side >> 1, policy);
            const trueRate = Math.abs(WORN[f]! - own[f].level) / period / sp;
            dbg = { f, fitRate: fit?.rate, trueRate, fitN: fit?.n, level: fit?.level, trueLevel: Math.abs(WORN[f]! - own[f].level) * (i - onset) / period / sp, sp, hwOverSp: own[f].hw / sp };
          } }
          if (t.event === "alarm" && alarmIdx === null && i >= onset) alarmIdx = i;
        }
        if (alarmIdx !== null) break;
      }
      const pos = warnIdx === null || alarmIdx === null ? null : (warnIdx - onset) / (alarmIdx - onset);
      const ratio = warn?.eta && alarmIdx !== null && warnIdx !== null ? (Date.parse(warn.eta) - Date.parse(warn.at)) / ((alarmIdx - warnIdx) * 2000) : null;
      const actual = alarmIdx === null ? null : START + alarmIdx * 2000;
      const inside = warn?.etaInterval && actual !== null ? actual >= Date.parse(warn.etaInterval.from) && actual <= Date.parse(warn.etaInterval.to) : null;
      out.push({ seed, period, drifting: drifting.join("+"), pos, ratio, inside, basis: warn?.basis, sensors: warn?.sensors?.join("+"), falseW, dbg, runUp: alarmIdx === null ? null : alarmIdx - onset });
    }
const q = (a: number[], p: number) => { const s = a.slice().sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
for (const o of out) if (process.env.V) console.log(JSON.stringify(o));
for (const period of [...periods, 0]) {
  const sel = out.filter((o) => period === 0 || o.period === period);
  const pos = sel.map((o) => o.pos ?? 1); const ratios = sel.map((o) => o.ratio).filter((x) => x !== null);
  const ins = sel.filter((o) => o.inside !== null);
  console.log(period || "all", "n", sel.length, "pos med", q(pos, 0.5)?.toFixed(2), "max", Math.max(...pos).toFixed(2), "ratio p10/50/90", [0.1, 0.5, 0.9].map((p) => q(ratios, p)?.toFixed(2)).join("/"), "cover", (ins.filter((o) => o.inside).length / Math.max(1, ins.length)).toFixed(2), "basis", sel.filter((o) => o.basis === "baseline").length, "named", sel.filter(o=>o.sensors===o.drifting || (o.sensors && o.drifting.split("+").every((s: string)=>o.sensors.includes(s)))).length, "falseW", sel.reduce((n, o) => n + o.falseW, 0));
}
model.dispose();
