// npm run bench:notify — notifications from health's transitions to people (docs/notifier.md,
// docs/alertmanager.md), all real: nats-server, Debian's prometheus-alertmanager, `fanwatch
// notifier` as a process of its own, HTTP receivers; transitions appended to FAN_HEALTH_EVENTS as
// health does. Three parts, each on a fresh system:
//   latency  publish → the direct signed webhook, and → Alertmanager → its webhook receiver (group_wait
//            0s and the shipped 10s), p50/p99, against the floor: a plain durable pull consumer on the
//            same stream and server, timed on the same transitions;
//   faults   receiver down, notifier SIGKILLed mid-send, Alertmanager restarted, NATS restarted, each
//            under a load of alarm episodes opening and clearing: lost and duplicated notifications;
//   next-episode  fans whose alarm clears and comes back soon: each episode notified once, and its resolve;
//   fans     1,000 fans' alarms opening and clearing: one firing and one resolved notification each.
// Progress goes to stderr; stdout gets one JSON line per scenario and a summary line last. Exits 1
// when a fault scenario or the 1,000 fans lost or duplicated anything (after dedupe by key).
//   --short          shorter: 5 s of latency, the receiver down 10 s, restarts of 2 s
//   --scenarios a,b  only these: latency, receiver-down, notifier-killed, alertmanager-restarted,
//                    nats-restarted, next-episode, fans
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FAULTS, runFault, type FaultResult } from "./faults.js";
import { runLatency, type LatencyResult } from "./latency.js";
import { runNextEpisode, type NextEpisodeResult } from "./next-episode.js";
import { runScale, type ScaleResult } from "./scale.js";
import { FAULT_TIMING, FULL, SHORT } from "./settings.js";

const { values } = parseArgs({
  options: { short: { type: "boolean", default: false }, scenarios: { type: "string" } },
});
const settings = values.short ? SHORT : FULL;
const NAMES = ["latency", ...FAULTS.map((f) => f.name), "next-episode", "fans"];
const wanted = values.scenarios?.split(",") ?? NAMES;
const unknown = wanted.filter((name) => !NAMES.includes(name));
if (unknown.length > 0)
  throw new RangeError(`unknown scenarios ${unknown.join(", ")}; the scenarios are ${NAMES.join(", ")}`);

const progress = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const logRoot = await mkdtemp(join(tmpdir(), "fanwatch-bench-notify-"));
const started = Date.now();
progress(`bench:notify${values.short ? " --short" : ""}: ${wanted.join(", ")}; logs in ${logRoot}`);

let latency: LatencyResult | undefined;
const faults: FaultResult[] = [];
let nextEpisode: NextEpisodeResult | undefined;
let scale: ScaleResult | undefined;

if (wanted.includes("latency")) {
  latency = await runLatency(settings, logRoot, (line) => progress(`latency: ${line}`));
  console.log(JSON.stringify(latency));
  const am = Object.entries(latency.alertmanager)
    .map(([name, l]) => `${name} (group_wait ${l.timing.group_wait}) p50 ${l.p50Ms} / p99 ${l.p99Ms} ms`)
    .join("; ");
  progress(
    `latency: ${latency.transitions} transitions; floor p50 ${latency.floor.p50Ms} / p99 ${latency.floor.p99Ms} ms; webhook p50 ${latency.webhook.p50Ms} / p99 ${latency.webhook.p99Ms} ms (${latency.webhook.p50RatioToFloor}× / ${latency.webhook.p99RatioToFloor}× the floor); Alertmanager ${am}`,
  );
}
for (const fault of FAULTS.filter((f) => wanted.includes(f.name))) {
  const result = await runFault(fault, settings, logRoot, progress);
  faults.push(result);
  console.log(JSON.stringify(result));
  const { webhook: w, alertmanager: am } = result;
  progress(
    `${result.scenario}: ${result.ok ? "ok" : "FAILED"}; ${result.transitions.stored} transitions; webhook ${w.distinct}/${w.expected} (lost ${w.lost}, raw repeats ${w.rawRepeats}, duplicated after dedupe ${w.duplicatedAfterDedupe}); Alertmanager ${am.episodes} episodes: firing ${am.firing.notified} (missing ${am.firing.missing}, duplicated ${am.firing.duplicated}), resolved ${am.resolved.notified} (missing ${am.resolved.missing}, duplicated ${am.resolved.duplicated})${am.repeats.bodies + am.repeats.carried === 0 ? "" : ` (${am.repeats.bodies} notifications with nothing new, ${am.repeats.carried} mentions carried in a later one)`}${am.repeatedAcrossItsRestart === 0 ? "" : `; ${am.repeatedAcrossItsRestart} of them repeated by Alertmanager across its restart (in flight at SIGTERM)`}${am.examples.length === 0 ? "" : `; e.g. ${JSON.stringify(am.examples)}`}`,
  );
}
if (wanted.includes("next-episode")) {
  nextEpisode = await runNextEpisode(settings, logRoot, progress);
  console.log(JSON.stringify(nextEpisode));
  const am = nextEpisode.alertmanager;
  progress(
    `next-episode: ${nextEpisode.ok ? "ok" : "FAILED"}; ${am.episodes} episodes of ${nextEpisode.fans} fans: firing ${am.firing.notified} (missing ${am.firing.missing}, duplicated ${am.firing.duplicated}), resolved ${am.resolved.notified} (missing ${am.resolved.missing}, duplicated ${am.resolved.duplicated}); repeats: ${am.repeats.bodies} notifications with nothing new, ${am.repeats.carried} mentions carried in a later one${am.examples.length === 0 ? "" : `; e.g. ${JSON.stringify(am.examples[0])}`}`,
  );
}
if (wanted.includes("fans")) {
  scale = await runScale(settings, logRoot, progress);
  console.log(JSON.stringify(scale));
  progress(
    `fans: ${scale.ok ? "ok" : "FAILED"}; ${scale.fans} fans; webhook ${scale.webhook.distinct}/${scale.webhook.expected}, fans without 2 bodies ${scale.webhook.fansNotTwo}; Alertmanager firing ${scale.alertmanager.firing.notified}, resolved ${scale.alertmanager.resolved.notified}, fans without 1+1 ${scale.alertmanager.fansNotOnePlusOne}; times ${JSON.stringify(scale.timeMs)}`,
  );
}

const failed = [
  ...faults.filter((f) => !f.ok).map((f) => f.scenario),
  ...(nextEpisode?.ok === false ? ["next-episode"] : []),
  ...(scale?.ok === false ? ["fans"] : []),
];
console.log(
  JSON.stringify({
    kind: "summary",
    short: values.short,
    faultTiming: FAULT_TIMING,
    resend: settings.resend,
    latency:
      latency === undefined
        ? null
        : {
            floor: latency.floor,
            webhook: latency.webhook,
            alertmanager: latency.alertmanager,
          },
    faults: faults.map((f) => ({
      scenario: f.scenario,
      lost: f.lost,
      duplicated: f.duplicated,
      duplicatedByNotifier: f.duplicatedByNotifier,
      repeatedByAlertmanagerAcrossItsRestart: f.alertmanager.repeatedAcrossItsRestart,
      rawRepeats: f.webhook.rawRepeats,
      ok: f.ok,
    })),
    fans:
      scale === undefined
        ? null
        : {
            fans: scale.fans,
            firing: scale.alertmanager.firing.notified,
            resolved: scale.alertmanager.resolved.notified,
            fansNotOnePlusOne: scale.alertmanager.fansNotOnePlusOne,
            webhookFansNotTwo: scale.webhook.fansNotTwo,
            timeMs: scale.timeMs,
          },
    failed,
    totalMs: Date.now() - started,
  }),
);
progress(
  `done in ${Math.round((Date.now() - started) / 1000)} s${failed.length === 0 ? "" : `; FAILED: ${failed.join(", ")}`}`,
);
process.exitCode = failed.length === 0 ? 0 : 1;
