import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { makeTransition } from "../../test/support/notifier-events.js";
import { cpuByProcess, cpuMsPer1000, publishPaced } from "../support/load-step.js";
import { peakRssMb } from "../support/process-stats.js";
import { drain } from "./drain.js";
import { FloorConsumer } from "./floor.js";
import { alertCounts, episodeKey, Ledger } from "./ledger.js";
import { publishRecorded } from "./load.js";
import { NO_WAIT_TIMING, SHIPPED_TIMING, type Settings } from "./settings.js";
import { latency, ratio, type Latency } from "./stats.js";
import { NotifySystem, type Timing } from "./system.js";

export interface PathLatency extends Latency {
  /** p50 and p99 over the floor's (the same transitions' plain consumer receipt). */
  p50RatioToFloor: number | null;
  p99RatioToFloor: number | null;
  /** p50 and p99 minus the floor's. */
  p50AddedMs: number;
  p99AddedMs: number;
}

export interface LatencyResult {
  kind: "latency";
  scenario: "latency";
  rate: number;
  seconds: number;
  transitions: number;
  publishFailed: number;
  /** The baseline: publish → a plain durable pull consumer's receipt, same stream and server. */
  floor: Latency;
  /** Publish → the direct signed webhook's receipt. */
  webhook: PathLatency;
  /** Publish → Alertmanager → its webhook receiver, per grouping timing. */
  alertmanager: Record<string, PathLatency & { timing: Timing }>;
  /** CPU ms per 1,000 transitions over the measured stretch, and peak RSS (MB). */
  cpuMsPer1000: Record<string, number>;
  notifierPeakRssMb: number;
  totalMs: number;
}

const ALERTMANAGERS = [
  { name: "nowait", timing: NO_WAIT_TIMING },
  { name: "shipped", timing: SHIPPED_TIMING },
];

/**
 * Transitions paced at `rate` for `seconds`, each a new fan's alarm (so each opens an Alertmanager
 * group of its own and is notified after group_wait), timed from the publish into
 * FAN_HEALTH_EVENTS to: the floor consumer's receipt, the direct webhook's receipt, and each
 * Alertmanager's firing notification at its webhook receiver. Two Alertmanagers get every alert (the
 * notifier sends to every ALERTMANAGER_URL): one with no group_wait, one with the shipped 10 s.
 */
export async function runLatency(
  settings: Settings,
  logRoot: string,
  say: (line: string) => void,
): Promise<LatencyResult> {
  const started = Date.now();
  const logDir = join(logRoot, "latency");
  await mkdir(logDir, { recursive: true });
  const { rate, seconds } = settings.latency;
  say(
    `starting nats-server, 2 Alertmanagers (group_wait 0s and 10s), the receivers and fanwatch notifier (logs in ${logDir})`,
  );
  const system = await NotifySystem.start({ logDir, alertmanagers: ALERTMANAGERS, resend: "1m" });
  const floor = await FloorConsumer.start(system.nats.url, "local");
  try {
    // Warm-up (connections, JIT), not counted: a second's worth, each path's first sends.
    const warm = new Ledger();
    await publishPaced(rate, 1, (n) => publishRecorded(system.publisher, warm, makeTransition(`warm-${n}`)));
    await drain(() => warm.webhook(system.hook.requests).lost === 0, {
      capMs: 30_000,
      settleMs: 0,
      say,
      status: () => "warm-up",
    });

    const ledger = new Ledger();
    const requestsBefore = system.hook.requests.length;
    const callsBefore = system.amHooks.received.length;
    const cpuBefore = await cpuByProcess(system.pids());
    say(`${rate} transitions/s for ${seconds} s, each a new fan's alarm`);
    const sent = await publishPaced(rate, seconds, (n) =>
      publishRecorded(system.publisher, ledger, makeTransition(`lat-${n}`)),
    );
    const requests = () => system.hook.requests.slice(requestsBefore);
    const calls = (name: string) =>
      system.amHooks.received.slice(callsBefore).filter((c) => c.path.startsWith(`/${name}`));
    const notified = (name: string) => ledger.alertmanager(calls(name)).firing.missing === 0;
    const status = () =>
      `webhook ${ledger.webhook(requests()).distinct}/${sent}, ${ALERTMANAGERS.map(({ name }) => `${name} ${ledger.alertmanager(calls(name)).firing.notified}/${sent}`).join(", ")}`;
    // CPU is read once the paths without a grouping wait are done, before the shipped 10 s pass idle.
    await drain(
      () =>
        ledger.webhook(requests()).lost === 0 &&
        ledger.stored.every((p) => floor.received.has(p.transition.id)) &&
        notified("nowait"),
      { capMs: 30_000, settleMs: 0, say, status },
    );
    const cpu = cpuMsPer1000(cpuBefore, await cpuByProcess(system.pids()), sent);
    await drain(() => notified("shipped"), { capMs: 60_000, settleMs: 0, say, status });

    const stored = ledger.stored;
    const floorLatency = latency(stored.flatMap((p) => since(floor.received.get(p.transition.id), p.at)));
    const taken = Ledger.firstTaken(requests());
    const webhook = withFloor(latency(stored.flatMap((p) => since(taken.get(p.transition.id), p.at))), floorLatency);
    const alertmanager: LatencyResult["alertmanager"] = {};
    for (const { name, timing } of ALERTMANAGERS) {
      const counts = alertCounts(calls(name));
      const values = stored.flatMap((p) =>
        since(counts.get(episodeKey(p.transition.deviceID, p.transition.alarmId ?? ""))?.firstFiringAt, p.at),
      );
      alertmanager[name] = { timing, ...withFloor(latency(values), floorLatency) };
    }
    return {
      kind: "latency",
      scenario: "latency",
      rate,
      seconds,
      transitions: sent,
      publishFailed: ledger.publishFailed,
      floor: floorLatency,
      webhook,
      alertmanager,
      cpuMsPer1000: cpu,
      notifierPeakRssMb: await peakRssMb(system.notifier?.pid),
      totalMs: Date.now() - started,
    };
  } finally {
    await floor.stop().catch(() => {});
    await system.stop();
  }
}

/** `[at - from]` when `at` is known, else nothing (a receipt that never came is counted as missing, not timed). */
function since(at: number | undefined, from: number): number[] {
  return at === undefined ? [] : [at - from];
}

function withFloor(l: Latency, floor: Latency): PathLatency {
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    ...l,
    p50RatioToFloor: ratio(l.p50Ms, floor.p50Ms),
    p99RatioToFloor: ratio(l.p99Ms, floor.p99Ms),
    p50AddedMs: round(l.p50Ms - floor.p50Ms),
    p99AddedMs: round(l.p99Ms - floor.p99Ms),
  };
}
