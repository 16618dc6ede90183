import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { eventually } from "../../test/support/eventually.js";
import { drain } from "./drain.js";
import { Ledger, type AlertmanagerCount, type WebhookCount } from "./ledger.js";
import { EpisodeLoad } from "./load.js";
import { FAULT_TIMING, type Settings } from "./settings.js";
import { sleep } from "./stats.js";
import { NotifySystem } from "./system.js";

export interface FaultContext {
  system: NotifySystem;
  settings: Settings;
  say: (line: string) => void;
  /** Set by a fault that stops Alertmanager: from SIGTERM until it exited. */
  alertmanagerStopping?: { from: number; to: number };
}

export interface Fault {
  name: string;
  /** What happens, in words, for the report. */
  fault: string;
  /** How long the load's episodes stay open (longer where a longer hold-up comes). */
  episodeSeconds(settings: Settings): number;
  /** Injects the fault; resolves once it is over, with what is worth reporting about it. */
  inject(context: FaultContext): Promise<Record<string, unknown>>;
}

export interface FaultResult {
  kind: "fault";
  scenario: string;
  fault: string;
  /** The episode load: transitions a second, how long each episode stayed open, fans (one episode each). */
  load: { rate: number; episodeSeconds: number; fans: number };
  transitions: { published: number; stored: number; publishFailed: number };
  faultMs: number;
  /** When the fault started and ended (to read the examples' times against). */
  faultWindow: { start: string; end: string };
  details: Record<string, unknown>;
  webhook: WebhookCount;
  alertmanager: AlertmanagerCount;
  /**
   * Lost and duplicated (after dedupe by key at the webhook; any second notification of an episode's
   * firing or resolve at Alertmanager's receiver). `duplicatedByNotifier` leaves out Alertmanager's
   * own repeats across its restart (alertmanager.repeatedAcrossItsRestart); `ok` is judged on it.
   */
  lost: number;
  duplicated: number;
  duplicatedByNotifier: number;
  /** From the fault's end until every transition published before it was taken by the webhook. */
  webhookCaughtUpMs: number | null;
  /** From the end of the load until everything had arrived (null: not within the cap). */
  drainMs: number | null;
  totalMs: number;
  logDir: string;
  ok: boolean;
}

const AM = "am";

export const FAULTS: Fault[] = [
  {
    name: "receiver-down",
    fault: "the direct webhook's receiver down (connections refused) while transitions keep coming",
    episodeSeconds: (s) => s.faults.episodeSeconds,
    async inject({ system, settings, say }) {
      const ms = settings.faults.receiverDownMs;
      say(`receiver down for ${ms / 1000} s`);
      await system.hook.stop();
      await sleep(ms);
      await system.hook.listen();
      say("receiver back");
      return { downMs: ms };
    },
  },
  {
    name: "notifier-killed",
    fault: "fanwatch notifier SIGKILLed while the receiver holds a request (a send in flight), then started again",
    episodeSeconds: (s) => s.faults.killEpisodeSeconds,
    async inject({ system, say }) {
      const { hook } = system;
      hook.mode = "hold";
      const before = hook.requests.length;
      await eventually(
        "a request held by the receiver",
        () => hook.requests.slice(before).some((r) => r.status === 0),
        {
          timeoutMs: 30_000,
        },
      );
      const held = hook.requests.slice(before).find((r) => r.status === 0);
      const heldKey = String(held?.headers["x-fanwatch-delivery"]);
      say(`a send in flight (${heldKey} held by the receiver): SIGKILL`);
      const killedAt = Date.now();
      await system.killNotifier();
      // The held request stays unanswered: its sender is gone. What comes next is taken.
      hook.mode = 200;
      await system.startNotifier();
      const restartedMs = Date.now() - killedAt;
      say(`notifier started again after ${restartedMs} ms`);
      return { heldKey, restartedMs, killedAt };
    },
  },
  {
    name: "alertmanager-restarted",
    fault:
      "Alertmanager stopped (SIGTERM: notification log and silences kept) and started again on its storage, alerts open and new ones arriving",
    episodeSeconds: (s) => s.faults.episodeSeconds,
    async inject(context) {
      const { system, settings, say } = context;
      const am = system.alertmanager(AM);
      const open = (await am.alerts()).filter((a) => a.status.state === "active").length;
      say(`${open} alerts active: Alertmanager stopped for ${settings.faults.restartDownMs / 1000} s`);
      const from = Date.now();
      await am.halt();
      context.alertmanagerStopping = { from, to: Date.now() };
      await sleep(settings.faults.restartDownMs);
      await am.restart();
      const afterRestart = (await am.alerts()).length;
      say(
        `Alertmanager back with ${afterRestart} alerts (it keeps none across a restart: the notifier's resend brings them)`,
      );
      return { activeBefore: open, alertsRightAfterRestart: afterRestart, downMs: settings.faults.restartDownMs };
    },
  },
  {
    name: "nats-restarted",
    fault: "nats-server stopped (SIGTERM: the store flushed) and started again on its store while transitions flow",
    episodeSeconds: (s) => s.faults.episodeSeconds,
    async inject({ system, settings, say }) {
      say(`nats-server stopped for ${settings.faults.restartDownMs / 1000} s`);
      await system.nats.halt();
      await sleep(settings.faults.restartDownMs);
      await system.nats.restart();
      say("nats-server back");
      return { downMs: settings.faults.restartDownMs };
    },
  },
];

/**
 * One fault on a fresh system: the episode load, the fault, the load again, then no new episode
 * (the open ones clear at their turn), then a drain until every transition reached the webhook
 * and every episode was notified firing and resolved, and a settle for late repeats. Counted: the
 * webhook's requests by key, Alertmanager's notifications by (deviceID, alarmId, status).
 */
export async function runFault(
  fault: Fault,
  settings: Settings,
  logRoot: string,
  progress: (line: string) => void,
): Promise<FaultResult> {
  const started = Date.now();
  const say = (line: string) => progress(`${fault.name}: ${line}`);
  const logDir = join(logRoot, fault.name);
  await mkdir(logDir, { recursive: true });
  say(
    `starting nats-server, Alertmanager (group_wait ${FAULT_TIMING.group_wait}, group_interval ${FAULT_TIMING.group_interval}), the receivers and fanwatch notifier (logs in ${logDir})`,
  );
  const system = await NotifySystem.start({
    logDir,
    alertmanagers: [{ name: AM, timing: FAULT_TIMING }],
    resend: settings.resend,
  });
  const ledger = new Ledger();
  try {
    const { rate } = settings.faults;
    const episodeSeconds = fault.episodeSeconds(settings);
    const load = new EpisodeLoad(system.publisher, ledger, { rate, episodeSeconds, prefix: fault.name });
    say(`${rate} transitions/s: new fans' alarms, each cleared after ${episodeSeconds} s`);
    await sleep(settings.faults.beforeMs);
    const faultStart = Date.now();
    const context: FaultContext = { system, settings, say };
    const details = await fault.inject(context);
    const faultEnd = Date.now();
    await sleep(settings.faults.afterMs);
    load.stopOpening();
    say(`no new episodes; the ${load.openEpisodes} open ones clear in their time`);
    await load.done;
    const calls = () => system.amHooks.received.filter((c) => c.path.startsWith(`/${AM}`));
    const complete = () => {
      const am = ledger.alertmanager(calls());
      return ledger.webhook(system.hook.requests).lost === 0 && am.firing.missing === 0 && am.resolved.missing === 0;
    };
    const drainMs = await drain(complete, {
      capMs: settings.drainCapMs,
      settleMs: settings.settleMs,
      say,
      status: () => {
        const w = ledger.webhook(system.hook.requests);
        const am = ledger.alertmanager(calls());
        return `webhook ${w.distinct}/${w.expected}; Alertmanager firing ${am.firing.notified}/${am.episodes}, resolved ${am.resolved.notified}/${am.closed}`;
      },
    });
    const webhook = ledger.webhook(system.hook.requests);
    const alertmanager = ledger.alertmanager(calls(), context.alertmanagerStopping);
    const lost = webhook.lost + alertmanager.firing.missing + alertmanager.resolved.missing;
    const duplicated =
      webhook.duplicatedAfterDedupe +
      webhook.unknown +
      alertmanager.firing.duplicated +
      alertmanager.resolved.duplicated +
      alertmanager.unknown;
    return {
      kind: "fault",
      scenario: fault.name,
      fault: fault.fault,
      load: { rate, episodeSeconds, fans: ledger.episodes().size },
      transitions: {
        published: ledger.published.size,
        stored: ledger.stored.length,
        publishFailed: ledger.publishFailed,
      },
      faultMs: faultEnd - faultStart,
      faultWindow: { start: new Date(faultStart).toISOString(), end: new Date(faultEnd).toISOString() },
      details,
      webhook,
      alertmanager,
      lost,
      duplicated,
      duplicatedByNotifier: duplicated - alertmanager.repeatedAcrossItsRestart,
      webhookCaughtUpMs: caughtUp(ledger, system, faultEnd),
      drainMs,
      totalMs: Date.now() - started,
      logDir,
      ok: lost === 0 && duplicated - alertmanager.repeatedAcrossItsRestart === 0 && ledger.publishFailed === 0,
    };
  } finally {
    await system.stop();
  }
}

/** From `faultEnd` until the webhook had taken every transition published before it (null: some never). */
function caughtUp(ledger: Ledger, system: NotifySystem, faultEnd: number): number | null {
  const taken = Ledger.firstTaken(system.hook.requests);
  let last = faultEnd;
  for (const p of ledger.stored) {
    if (p.at > faultEnd) continue;
    const at = taken.get(p.transition.id);
    if (at === undefined) return null;
    last = Math.max(last, at);
  }
  return last - faultEnd;
}
