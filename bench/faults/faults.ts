// npm run bench:faults — the fault suite (docs/reliability.md): the whole pipeline as real processes
// (Mosquitto from the shipped config, InfluxDB 1.x, nats-server with the device registry, score,
// predict, the connector checking readings against the registry, the InfluxDB writer; the health
// path for the NATS scenarios), a steady load of readings from registered fans (1% malformed), one
// fault per scenario on a fresh system, then a quiet drain; every reading is matched to its
// prediction, its stored point and its dead letter, every forged device ID to its refusal or its
// quarantine, and with health every fan to its record.
// Progress goes to stderr; stdout gets one JSON line per scenario and a summary line last.
//   --rate N             messages/s of the steady load (default 2000; 5000 with --soak)
//   --fans N             fans the load cycles through (default 200)
//   --fault-seconds N    how long score, predict and InfluxDB stay down; caps the overload (default 60)
//   --scenarios a,b      run only these (default: all; see bench/faults/scenarios.ts)
//   --distinct-devices N device IDs the registry does not know, in the poison scenario (default 100000)
//   --short              the settings of the test (200/s from 20 fans, 5 s faults, 1,000 new device IDs,
//                        REGISTRY_MAX_PENDING 100)
//   --soak MINUTES       instead: steady load for MINUTES with no fault; reports the RSS slopes
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FULL, runScenario, SHORT, summaryLine, type RunOptions, type Scenario, type ScenarioResult } from "./run.js";
import { SCENARIOS } from "./scenarios.js";

const { values } = parseArgs({
  options: {
    rate: { type: "string" },
    fans: { type: "string" },
    "fault-seconds": { type: "string" },
    scenarios: { type: "string" },
    "distinct-devices": { type: "string" },
    short: { type: "boolean", default: false },
    soak: { type: "string" },
  },
});
const base = values.short ? SHORT : FULL;
const number = (name: string, text: string | number | undefined): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number, got ${text}`);
  return n;
};
const soakMinutes = values.soak === undefined ? undefined : number("soak", values.soak);
const progress = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const options: RunOptions = {
  ...base,
  rate: number("rate", values.rate ?? (soakMinutes === undefined ? base.rate : 5000)),
  fans: number("fans", values.fans ?? base.fans),
  faultMs:
    soakMinutes === undefined
      ? number("fault-seconds", values["fault-seconds"] ?? base.faultMs / 1000) * 1000
      : soakMinutes * 60_000,
  ...(soakMinutes === undefined ? {} : { beforeMs: 0, afterMs: 0 }),
  distinctDevices: number("distinct-devices", values["distinct-devices"] ?? base.distinctDevices),
  logDir: await mkdtemp(join(tmpdir(), "fanwatch-faults-")),
  progress,
  ...(soakMinutes === undefined ? {} : { rssTimelineMs: 10_000 }),
};

const wanted = values.scenarios?.split(",");
const unknown = wanted?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
if (unknown.length > 0)
  throw new RangeError(
    `unknown scenarios ${unknown.join(", ")}; the scenarios are ${SCENARIOS.map((s) => s.name).join(", ")}`,
  );
const baseline = SCENARIOS.find((s) => s.noFault === true) as Scenario;
const selected =
  soakMinutes !== undefined
    ? [{ ...baseline, name: "soak", fault: `none: ${soakMinutes} minutes of steady load` }]
    : SCENARIOS.filter((s) => wanted === undefined || wanted.includes(s.name));

progress(
  `fault suite: ${selected.map((s) => s.name).join(", ")} at ${options.rate}/s from ${options.fans} fans, faults of ${options.faultMs / 1000} s; logs in ${options.logDir}`,
);
const results: ScenarioResult[] = [];
for (const scenario of selected) {
  const result = await runScenario(scenario, options);
  results.push(result);
  console.log(JSON.stringify(result));
  progress(`${result.scenario}: ${summaryLine(result).replaceAll("; ", "\n  ")}`);
  for (const sentence of result.missed) progress(`  MISSED: ${sentence}`);
}
console.log(
  JSON.stringify({
    kind: "summary",
    rate: options.rate,
    faultMs: options.faultMs,
    passed: results.filter((r) => r.missed.length === 0).map((r) => r.scenario),
    failed: results.filter((r) => r.missed.length > 0).map((r) => r.scenario),
  }),
);
