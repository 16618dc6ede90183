import { existsSync } from "node:fs";
import { stringify } from "yaml";
import { z } from "zod";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";

/**
 * Alertmanager's side of fanwatch: the routing every fanwatch configuration shares (the shipped
 * deploy/alertmanager/alertmanager.yml holds the same values, which a unit test checks), the
 * configuration `fanwatch start` writes for the Alertmanager it runs, and where that binary is.
 */

/**
 * One notification group per fan and kind of alert: a fan's alarm never waits for another fan's.
 * Without `site` (the issue's grouping): one Alertmanager per site is assumed; two sites' fans with
 * one device ID at a shared Alertmanager share a group.
 */
export const GROUP_BY = ["deviceID", "alertname"] as const;

/**
 * group_wait: a new alert's first notification waits this long for others of its group (a fan's
 * alarm rarely comes with company: short). group_interval: a change in a group (a resolve, a new
 * severity) is notified within this. repeat_interval: a firing group nobody silenced is notified
 * again after this; the paging route repeats sooner (PAGING_REPEAT_INTERVAL).
 */
export const ROUTE_TIMING = Object.freeze({ group_wait: "10s", group_interval: "1m", repeat_interval: "4h" });

/** An unacknowledged alarm (critical, major) pages again this often. */
export const PAGING_REPEAT_INTERVAL = "1h";

/** Severities paged (the rest go to e-mail). */
export const PAGING_MATCHER = 'severity=~"critical|major"';

/** A fan's warning says nothing its alarm does not: while the alarm fires, the warning is held back. */
export const INHIBIT_RULES = Object.freeze([
  {
    source_matchers: ['alertname="FanAlarm"'],
    target_matchers: ['alertname="FanWarning"'],
    equal: ["deviceID", "site"],
  },
]);

export interface SmtpReceiver {
  /** host:port of the mail server. */
  smarthost: string;
  from: string;
  to: string;
  username?: string;
  /** A file holding the password (never the password itself in the configuration). */
  passwordFile?: string;
  /** STARTTLS required (Alertmanager's default). @default true */
  requireTls?: boolean;
}

export interface LocalAlertmanagerOptions {
  /** Alertmanager's webhook (its own JSON, not fanwatch's signed body) for firing and resolved groups. */
  webhookUrl?: string;
  smtp?: SmtpReceiver;
  /** Other intervals than ROUTE_TIMING (tests use seconds). */
  timing?: Partial<{
    group_wait: string;
    group_interval: string;
    repeat_interval: string;
    paging_repeat_interval: string;
  }>;
}

/**
 * The configuration `fanwatch start` gives the Alertmanager it runs (YAML): the shared routing,
 * one receiver `fanwatch` with the webhook and/or e-mail given, none at all when neither is (the
 * alerts are then only in Alertmanager's UI and API), and the inhibition rule.
 */
export function localAlertmanagerConfig(options: LocalAlertmanagerOptions = {}): string {
  const timing = { ...ROUTE_TIMING, ...options.timing };
  const receiver: Record<string, unknown> = { name: "fanwatch" };
  if (options.webhookUrl !== undefined) receiver.webhook_configs = [{ url: options.webhookUrl, send_resolved: true }];
  const smtp = options.smtp;
  if (smtp !== undefined)
    receiver.email_configs = [
      {
        to: smtp.to,
        from: smtp.from,
        smarthost: smtp.smarthost,
        require_tls: smtp.requireTls ?? true,
        send_resolved: true,
        ...(smtp.username === undefined ? {} : { auth_username: smtp.username }),
        ...(smtp.passwordFile === undefined ? {} : { auth_password_file: smtp.passwordFile }),
        headers: { Subject: EMAIL_SUBJECT },
      },
    ];
  const config = {
    route: {
      receiver: "fanwatch",
      group_by: [...GROUP_BY],
      group_wait: timing.group_wait,
      group_interval: timing.group_interval,
      repeat_interval: timing.repeat_interval,
      routes: [
        {
          matchers: [PAGING_MATCHER],
          receiver: "fanwatch",
          repeat_interval: timing.paging_repeat_interval ?? PAGING_REPEAT_INTERVAL,
        },
      ],
    },
    inhibit_rules: INHIBIT_RULES.map((r) => ({ ...r })),
    receivers: [receiver],
  };
  return `# Written by fanwatch start (notifier/alertmanager/config.ts); deploy/alertmanager/alertmanager.yml explains it.\n${stringify(config)}`;
}

/**
 * The e-mail's subject: what fired, which fan (the group's labels), how bad and where (the group's
 * first alert's: a group's alerts need not share a severity, as an escalation's ended minor warning
 * and its major one, nor a site, as two sites' fans with one device ID at a shared Alertmanager).
 */
export const EMAIL_SUBJECT =
  "[fanwatch {{ .Status | toUpper }}] {{ .GroupLabels.alertname }} fan {{ .GroupLabels.deviceID }} ({{ with index .Alerts 0 }}{{ .Labels.severity }}, site {{ .Labels.site }}{{ end }})";

/** Where Debian's package `prometheus-alertmanager` installs it. */
export const DEBIAN_ALERTMANAGER = "/usr/bin/prometheus-alertmanager";

export const ALERTMANAGER_BINARY_SETTINGS = defineSettings({
  ALERTMANAGER_BINARY: {
    env: ["ALERTMANAGER_BINARY"],
    help: "the Alertmanager binary fanwatch start runs when ALERTMANAGER_URL is not set",
    default: DEBIAN_ALERTMANAGER,
    schema: z.string().optional(),
  },
});

/** The Alertmanager to run: ALERTMANAGER_BINARY, else Debian's; undefined when it is not installed. */
export function findAlertmanager(env?: NodeJS.ProcessEnv): string | undefined {
  const named = readSettings(ALERTMANAGER_BINARY_SETTINGS, env).ALERTMANAGER_BINARY;
  if (named !== undefined) return existsSync(named) ? named : undefined;
  return existsSync(DEBIAN_ALERTMANAGER) ? DEBIAN_ALERTMANAGER : undefined;
}
