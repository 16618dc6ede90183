import type { Command } from "commander";
import { SITE_SETTINGS } from "../lib/infra/config.js";
import { LOG_SETTINGS } from "../lib/infra/log-level.js";
import { NOTIFIER_SETTINGS, readNotifierConfig } from "../notifier/config.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";
import { runUntilSignalled } from "./service.js";

/** `fanwatch notifier`: health's event stream → Alertmanager and signed webhooks (docs/notifier.md). */
export function addNotifierCommand(program: Command, io: Io): void {
  const command = program
    .command("notifier")
    .description(
      "send health's transitions to Alertmanager and signed webhooks, durably: each target has its own queue in NATS JetStream (docs/notifier.md)",
    );
  const given = addSettingFlags(command, NOTIFIER_SETTINGS);
  addSettingsHelp(
    command,
    [
      { title: "The notifier's variables (a flag beats its variable)", settings: NOTIFIER_SETTINGS },
      { title: "The site whose transitions it sends", settings: SITE_SETTINGS },
      { title: "Logs", settings: LOG_SETTINGS },
    ],
    [
      "Each webhook gets one signed JSON body per transition (X-Fanwatch-Delivery: the transition id,",
      "X-Fanwatch-Signature: sha256=<HMAC of the body>); muted transitions are not sent. A receiver that",
      "is down, times out or answers 408, 429 or 5xx is retried with back-off up to NOTIFY_RETRY_MAX",
      "between attempts; after NOTIFY_MAX_AGE, or at once on another 4xx, the notification becomes a",
      "dead letter: `fanwatch notifications list` shows them, `fanwatch notifications redrive` sends",
      "them again. A first start sends only what happens from then on. NATS is waited for, never given",
      "up: an outage delays notifications and loses none. Receivers drop repeats by X-Fanwatch-Delivery",
      "(a notifier killed mid-send sends that one again).",
    ],
  );
  command.action(async (opts: Record<string, unknown>) => {
    const [{ Notifier }, { createLogger }] = await Promise.all([
      import("../notifier/notifier.js"),
      import("../lib/infra/log.js"),
    ]);
    const config = readNotifierConfig(undefined, given(opts));
    const log = createLogger("notifier");
    const notifier = new Notifier(config, log);
    const targets = notifier.targets;
    io.err(
      targets.length === 0
        ? "no target: set NOTIFY_WEBHOOK_URL or ALERTMANAGER_URL (--webhook, --alertmanager); nothing will be sent"
        : `sending site ${config.site}'s transitions to ${targets.map((t) => `${t.description} (${t.id})`).join(", ")}`,
    );
    await runUntilSignalled(io, notifier, log);
  });
}
