import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { AlarmTransition } from "../../lib/domain/health.js";
import { makeTransition } from "../../test/support/notifier-events.js";
import { drain } from "./drain.js";
import { Ledger, type AlertmanagerCount, type WebhookCount } from "./ledger.js";
import { publishRecorded } from "./load.js";
import { FAULT_TIMING, type Settings } from "./settings.js";
import { sleep } from "./stats.js";
import { NotifySystem } from "./system.js";

export interface NextEpisodeResult {
  kind: "episodes";
  scenario: "next-episode";
  what: string;
  fans: number;
  gapSeconds: number;
  /** ALERTMANAGER_RESEND: for 5 of them an ended alert is sent to an Alertmanager until it took the end. */
  resend: string;
  webhook: WebhookCount;
  alertmanager: AlertmanagerCount;
  lost: number;
  duplicated: number;
  totalMs: number;
  logDir: string;
  ok: boolean;
}

const AM = "am";

/**
 * A fan whose alarm clears and comes back: every fan's first episode opens, is notified, clears and
 * its resolve is notified; `gapSeconds` later (within the time an ended alert is still sent again)
 * its next episode opens, is notified, clears and is resolved. Alertmanager groups both episodes
 * of a fan together ([deviceID, alertname]); each must be notified once firing and once resolved.
 */
export async function runNextEpisode(
  settings: Settings,
  logRoot: string,
  progress: (line: string) => void,
): Promise<NextEpisodeResult> {
  const started = Date.now();
  const say = (line: string) => progress(`next-episode: ${line}`);
  const logDir = join(logRoot, "next-episode");
  await mkdir(logDir, { recursive: true });
  const { fans, gapSeconds } = settings.nextEpisode;
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
    const calls = () => system.amHooks.received.filter((c) => c.path.startsWith(`/${AM}`));
    const status = () => {
      const am = ledger.alertmanager(calls());
      return `Alertmanager firing ${am.firing.notified}/${am.episodes}, resolved ${am.resolved.notified}/${am.closed}`;
    };
    const publish = (list: AlarmTransition[]) =>
      Promise.all(list.map((t) => publishRecorded(system.publisher, ledger, t)));
    const wait = (what: "firing" | "resolved", settleMs = 0) =>
      drain(
        () => {
          const am = ledger.alertmanager(calls());
          return ledger.webhook(system.hook.requests).lost === 0 && am[what].missing === 0;
        },
        { capMs: settings.drainCapMs, settleMs, say, status },
      );
    const ids = Array.from({ length: fans }, (_, i) => `again-${i}`);
    for (const episode of [1, 2]) {
      const alarms = ids.map((id) => makeTransition(id, "alarm"));
      say(`episode ${episode} of ${fans} fans: alarms`);
      await publish(alarms);
      await wait("firing");
      say(`episode ${episode}: clears`);
      await publish(alarms.map((a) => makeTransition(a.deviceID, "cleared", { alarmId: a.alarmId })));
      await wait("resolved", episode === 2 ? settings.settleMs : 0);
      if (episode === 1) {
        say(`resolves notified; the next episodes open in ${gapSeconds} s`);
        await sleep(gapSeconds * 1000);
      }
    }
    const webhook = ledger.webhook(system.hook.requests);
    const alertmanager = ledger.alertmanager(calls());
    const lost = webhook.lost + alertmanager.firing.missing + alertmanager.resolved.missing;
    const duplicated =
      webhook.duplicatedAfterDedupe +
      webhook.unknown +
      alertmanager.firing.duplicated +
      alertmanager.resolved.duplicated +
      alertmanager.unknown;
    return {
      kind: "episodes",
      scenario: "next-episode",
      what: `each fan's next alarm opens ${gapSeconds} s after its previous resolve was notified (resend ${settings.resend}; an ended alert is sent, for 5 resends, to an Alertmanager until it took the end)`,
      fans,
      gapSeconds,
      resend: settings.resend,
      webhook,
      alertmanager,
      lost,
      duplicated,
      totalMs: Date.now() - started,
      logDir,
      ok: lost === 0 && duplicated === 0 && ledger.publishFailed === 0,
    };
  } finally {
    await system.stop();
  }
}
