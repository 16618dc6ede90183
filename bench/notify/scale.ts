import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { AlarmTransition } from "../../lib/domain/health.js";
import { makeTransition } from "../../test/support/notifier-events.js";
import { peakRssMb } from "../support/process-stats.js";
import { drain } from "./drain.js";
import { alertCounts, episodeKey, Ledger, type AlertmanagerCount, type WebhookCount } from "./ledger.js";
import { publishRecorded } from "./load.js";
import { FAULT_TIMING, type Settings } from "./settings.js";
import { sleep } from "./stats.js";
import { NotifySystem } from "./system.js";

export interface ScaleResult {
  kind: "scale";
  scenario: "fans";
  fans: number;
  publishRate: number;
  webhook: WebhookCount & { fansNotTwo: number };
  alertmanager: AlertmanagerCount & { fansNotOnePlusOne: number };
  /** From the first publish of each phase until its last notification (ms; null: not all came). */
  timeMs: {
    webhookAlarms: number | null;
    alertmanagerFiring: number | null;
    webhookClears: number | null;
    alertmanagerResolved: number | null;
  };
  notifierPeakRssMb: number;
  totalMs: number;
  logDir: string;
  ok: boolean;
}

const AM = "am";

/**
 * `fans` fans' alarms open (published at `rate`), and once Alertmanager notified them all, clear:
 * one group per fan ([deviceID, alertname]), so exactly one firing and one resolved notification
 * per fan at Alertmanager's receiver, and two bodies per fan at the direct webhook.
 */
export async function runScale(
  settings: Settings,
  logRoot: string,
  progress: (line: string) => void,
): Promise<ScaleResult> {
  const started = Date.now();
  const say = (line: string) => progress(`fans: ${line}`);
  const logDir = join(logRoot, "fans");
  await mkdir(logDir, { recursive: true });
  const { fans, rate } = settings.scale;
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
    const ids = Array.from({ length: fans }, (_, i) => `fan-${i}`);
    const calls = () => system.amHooks.received.filter((c) => c.path.startsWith(`/${AM}`));
    const status = () => {
      const am = ledger.alertmanager(calls());
      return `webhook ${ledger.webhook(system.hook.requests).distinct}/${ledger.stored.length}, Alertmanager firing ${am.firing.notified}/${am.episodes}, resolved ${am.resolved.notified}/${am.closed}`;
    };

    say(`${fans} alarms at ${rate}/s`);
    const alarms = ids.map((id) => makeTransition(id, "alarm"));
    const openedAt = await publishAll(alarms, rate, (t) => publishRecorded(system.publisher, ledger, t));
    await drain(
      () => ledger.webhook(system.hook.requests).lost === 0 && ledger.alertmanager(calls()).firing.missing === 0,
      {
        capMs: settings.drainCapMs,
        settleMs: 0,
        say,
        status,
      },
    );
    say(`firing notified (${status()}); ${fans} clears at ${rate}/s`);
    const clears = alarms.map((a) => makeTransition(a.deviceID, "cleared", { alarmId: a.alarmId }));
    const clearedAt = await publishAll(clears, rate, (t) => publishRecorded(system.publisher, ledger, t));
    await drain(
      () => {
        const am = ledger.alertmanager(calls());
        return ledger.webhook(system.hook.requests).lost === 0 && am.resolved.missing === 0;
      },
      { capMs: settings.drainCapMs, settleMs: settings.settleMs, say, status },
    );

    const webhook = ledger.webhook(system.hook.requests);
    const alertmanager = ledger.alertmanager(calls());
    const taken = Ledger.firstTaken(system.hook.requests);
    const perFan = new Map<string, number>();
    for (const key of taken.keys()) {
      const deviceID = ledger.published.get(key)?.transition.deviceID;
      if (deviceID !== undefined) perFan.set(deviceID, (perFan.get(deviceID) ?? 0) + 1);
    }
    const fansNotTwo = ids.filter((id) => perFan.get(id) !== 2).length;
    const counts = alertCounts(calls());
    const fansNotOnePlusOne = alarms.filter((a) => {
      const c = counts.get(episodeKey(a.deviceID, a.alarmId ?? ""));
      return c?.firing !== 1 || c.resolved !== 1;
    }).length;
    const lastOf = (values: Array<number | undefined>, from: number) =>
      values.some((v) => v === undefined) ? null : Math.max(...(values as number[])) - from;
    const byId = (list: AlarmTransition[]) => list.map((t) => taken.get(t.id));
    const ep = (a: AlarmTransition) => counts.get(episodeKey(a.deviceID, a.alarmId ?? ""));
    const ok =
      webhook.lost === 0 &&
      webhook.duplicatedAfterDedupe === 0 &&
      fansNotTwo === 0 &&
      fansNotOnePlusOne === 0 &&
      alertmanager.unknown === 0 &&
      ledger.publishFailed === 0;
    return {
      kind: "scale",
      scenario: "fans",
      fans,
      publishRate: rate,
      webhook: { ...webhook, fansNotTwo },
      alertmanager: { ...alertmanager, fansNotOnePlusOne },
      timeMs: {
        webhookAlarms: lastOf(byId(alarms), openedAt),
        alertmanagerFiring: lastOf(
          alarms.map((a) => ep(a)?.firstFiringAt),
          openedAt,
        ),
        webhookClears: lastOf(byId(clears), clearedAt),
        alertmanagerResolved: lastOf(
          alarms.map((a) => ep(a)?.firstResolvedAt),
          clearedAt,
        ),
      },
      notifierPeakRssMb: await peakRssMb(system.notifier?.pid),
      totalMs: Date.now() - started,
      logDir,
      ok,
    };
  } finally {
    await system.stop();
  }
}

/** Publishes every transition, paced at `rate`; resolves with when the first went out, once all settled. */
async function publishAll(
  transitions: AlarmTransition[],
  rate: number,
  publish: (t: AlarmTransition) => Promise<void>,
): Promise<number> {
  const started = Date.now();
  const pending: Array<Promise<void>> = [];
  let sent = 0;
  while (sent < transitions.length) {
    const due = Math.min(transitions.length, Math.floor(((Date.now() - started) / 1000) * rate) + 1);
    for (; sent < due; sent++) pending.push(publish(transitions[sent] as AlarmTransition));
    await sleep(10);
  }
  await Promise.all(pending);
  return started;
}
