import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import type { AlarmTransition, HealthEvent } from "../../lib/domain/health.js";
import { createLogger } from "../../lib/infra/log.js";
import { freePort } from "../../lib/infra/net.js";
import { localAlertmanagerConfig } from "../../notifier/alertmanager/config.js";
import { emptyFan } from "../../notifier/alertmanager/model.js";
import { stateKey } from "../../notifier/alertmanager/store.js";
import { AlertmanagerTarget } from "../../notifier/alertmanager/target.js";
import { DeliveryError, type Notification } from "../../notifier/target.js";
import {
  shippedConfigForTest,
  startAlertmanager,
  startWebhookRecorder,
  type AlertmanagerWebhook,
  type ListedAlert,
  type TestAlertmanager,
  type WebhookRecorder,
} from "../support/alertmanager.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { finished } from "../support/process.js";
import { startSmtpReceiver, type SmtpReceiver } from "../support/smtp-receiver.js";

// Debian's Alertmanager 0.25 on the shipped configuration (test/support/alertmanager.ts swaps only
// addresses, secrets and intervals), a real nats-server for the target's state, a real SMTP server
// and a webhook recorder: what an on-call engineer would see, counted.

const silent = createLogger("alertmanager-test", "silent");
const SMTP_USER = "fanwatch@example.com";
const SMTP_PASSWORD = "smtp-password-from-a-file";
const WEBHOOK_TOKEN = "webhook-token-from-a-file";

let sequence = 0;

/** A transition as health publishes it, with what each event implies by default. */
function transition(
  site: string,
  deviceID: string,
  event: HealthEvent,
  fields: Partial<AlarmTransition> = {},
): Notification {
  const at = fields.at ?? new Date().toISOString();
  const state =
    event === "ok" || event === "warning" || event === "alarm" || event === "cleared" || event === "silent"
      ? event
      : "alarm";
  const severity = state === "warning" ? "minor" : state === "alarm" ? "major" : state === "silent" ? "minor" : "none";
  const t: AlarmTransition = {
    id: `${deviceID}:${Date.now()}:${++sequence}`,
    event,
    deviceID,
    alarmId: `${deviceID}@episode-1`,
    state,
    severity,
    cause: "vibration",
    contributions: null,
    probability: 0.93,
    eta: null,
    since: at,
    at,
    acknowledged: false,
    site,
    ...fields,
  };
  return { transition: t, link: `http://page.test/?fan=${encodeURIComponent(deviceID)}` };
}

/** Alertmanager's notifications about one fan, at paths starting with `prefix` (an Alertmanager and a receiver). */
function notified(
  hooks: WebhookRecorder,
  prefix: string,
  deviceID: string,
  filter: { alertname?: string; status?: "firing" | "resolved" } = {},
): AlertmanagerWebhook[] {
  return hooks.received.filter(
    (w) =>
      w.path.startsWith(prefix) &&
      w.body.groupLabels.deviceID === deviceID &&
      (filter.alertname === undefined || w.body.groupLabels.alertname === filter.alertname) &&
      (filter.status === undefined || w.body.status === filter.status),
  );
}

function alertOf(alerts: ListedAlert[], deviceID: string, alertname: string): ListedAlert | undefined {
  return alerts.find((a) => a.labels.deviceID === deviceID && a.labels.alertname === alertname);
}

/** Resolves once every Alertmanager of the target was sent everything `rounds` more times. */
async function resends(target: AlertmanagerTarget, rounds: number): Promise<void> {
  const start = target.status().map((s) => s.resends);
  await eventually(`${rounds} more resends`, () =>
    target.status().every((s, i) => s.resends >= (start[i] ?? 0) + rounds),
  );
}

describe("the Alertmanager target with Debian's Alertmanager", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let smtp: SmtpReceiver;
  let hooks: WebhookRecorder;
  let secrets: string;
  // An HA pair (unclustered: each notifies on its own) that repeats rarely, and one that repeats every few seconds.
  let amA: TestAlertmanager;
  let amB: TestAlertmanager;
  let amR: TestAlertmanager;
  let pair: AlertmanagerTarget;
  let repeating: AlertmanagerTarget;
  const SITE = "plant-a";
  const RSITE = "plant-r";

  const target = (urls: string[], site: string) =>
    new AlertmanagerTarget({ urls, site, resendMs: 300, timeoutMs: 2_000, nc, log: silent });

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    smtp = await startSmtpReceiver({ users: { [SMTP_USER]: SMTP_PASSWORD } });
    hooks = await startWebhookRecorder();
    secrets = await mkdtemp(join(tmpdir(), "fanwatch-am-secrets-"));
    // Alertmanager 0.25 sends the file's content as it is: a trailing newline would be part of the password.
    await writeFile(join(secrets, "smtp-password"), SMTP_PASSWORD);
    await writeFile(join(secrets, "webhook-token"), WEBHOOK_TOKEN);
    const config = (base: string, repeat: string) =>
      shippedConfigForTest(
        {
          webhookBase: `${hooks.url}/${base}`,
          tokenFile: join(secrets, "webhook-token"),
          smtp: { smarthost: smtp.smarthost, username: SMTP_USER, passwordFile: join(secrets, "smtp-password") },
        },
        { groupWait: "1s", groupInterval: "1s", repeatInterval: repeat, pagingRepeatInterval: repeat },
      );
    [amA, amB, amR] = await Promise.all([
      config("a", "1h").then(startAlertmanager),
      config("b", "1h").then(startAlertmanager),
      config("r", "2s").then(startAlertmanager),
    ]);
    pair = target([amA.url, amB.url], SITE);
    repeating = target([amR.url], RSITE);
    await Promise.all([pair.start(), repeating.start()]);
  });

  after(async () => {
    await Promise.all([pair?.close(), repeating?.close()]);
    await nc?.close();
    await Promise.all([amA?.stop(), amB?.stop(), amR?.stop(), nats?.stop(), smtp?.close(), hooks?.close()]);
    if (secrets !== undefined) await rm(secrets, { recursive: true, force: true });
  });

  it("notifies an alarm once per episode however often it is resent, and its clear once", async () => {
    const fan = "a-1";
    const model = "fan-0123456789abcdef";
    const opened = transition(SITE, fan, "alarm", { cause: "vibration", probability: 0.93, model });
    await pair.deliver(opened);
    await eventually("the alarm's notification", () => notified(hooks, "/a/on-call", fan).length === 1);
    const alert = alertOf(await amA.alerts(), fan, "FanAlarm");
    assert.deepEqual(alert?.labels, {
      alertname: "FanAlarm",
      deviceID: fan,
      severity: "major",
      cause: "vibration",
      site: SITE,
      alarmId: `${fan}@episode-1`,
    });
    assert.equal(alert?.annotations.summary, "Fan a-1 alarm: vibration, p=0.93");
    assert.equal(alert?.annotations.link, "http://page.test/?fan=a-1");
    assert.equal(alert?.annotations.alarmId, `${fan}@episode-1`);
    assert.equal(alert?.annotations.model, model, "the model that raised it, as Alertmanager holds it");
    assert.equal(Date.parse(alert?.startsAt ?? ""), Date.parse(opened.transition.since));
    await resends(pair, 5);
    assert.equal(notified(hooks, "/a/", fan).length, 1, "resending an open alert notifies nobody again");
    for (const note of ["commented", "assigned", "finding"] as const)
      assert.equal(await pair.deliver(transition(SITE, fan, note, { by: "Ana" })), "skipped", `${note} is no alert`);

    await pair.deliver(transition(SITE, fan, "cleared"));
    await eventually("the resolve", () => notified(hooks, "/a/on-call", fan, { status: "resolved" }).length === 1);
    await resends(pair, 5); // the ended alert is sent again for a few rounds
    assert.deepEqual(
      notified(hooks, "/a/", fan).map((w) => w.body.status),
      ["firing", "resolved"],
    );
    assert.equal(alertOf(await amA.alerts(), fan, "FanAlarm"), undefined, "no longer active");
  });

  it("mails the on-call address through the shipped SMTP settings, the password read from its file, naming the fan and the model", async () => {
    const mail = await eventuallyValue(
      "a mail about fan a-1",
      () => smtp.mails.find((m) => m.subject.includes("fan a-1")),
      (m) => m !== undefined,
    );
    assert.deepEqual(mail?.to, ["on-call@example.com"]);
    assert.equal(mail?.user, SMTP_USER, "authenticated with the password from smtp_auth_password_file");
    assert.match(mail?.subject ?? "", /^\[fanwatch FIRING\] FanAlarm fan a-1 \(major, site plant-a\)/);
    // The mail's text as a mail reader shows it: quoted-printable undone (its soft line breaks fall anywhere).
    const text = (mail?.raw ?? "")
      .replace(/=\r?\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    assert.match(text, /summary = Fan a-1 alarm: vibration, p=0\.93/);
    assert.match(text, /model = fan-0123456789abcdef/, "the model that raised the alarm, from its annotation");
    const hook = notified(hooks, "/a/on-call", "a-1")[0];
    assert.equal(hook?.authorization, `Bearer ${WEBHOOK_TOKEN}`, "the webhook's token from credentials_file");
  });

  it("names a site in the mail subject when two sites' fans with one device ID share a group", async () => {
    // group_by has no site (the issue's grouping): at an Alertmanager two sites share, their fan
    // "shared-7" is one group, and no site is common to its alerts.
    const alarm = (site: string) => ({
      labels: {
        alertname: "FanAlarm",
        deviceID: "shared-7",
        severity: "major",
        cause: "vibration",
        site,
        alarmId: site,
      },
      annotations: { summary: `Fan shared-7 alarm at ${site}` },
      startsAt: new Date().toISOString(),
    });
    const posted = await fetch(`${amA.url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([alarm("plant-x"), alarm("plant-y")]),
    });
    assert.equal(posted.status, 200);
    const mail = await eventuallyValue(
      "a mail about fan shared-7",
      () => smtp.mails.find((m) => m.subject.includes("fan shared-7")),
      (m) => m !== undefined,
    );
    assert.match(mail?.subject ?? "", /^\[fanwatch FIRING\] FanAlarm fan shared-7 \(major, site plant-[xy]\)/);
    assert.match(mail?.raw ?? "", /plant-x[\s\S]*plant-y|plant-y[\s\S]*plant-x/, "one mail lists both sites' alarms");
  });

  it("gives both Alertmanagers of an HA pair every alert, and brings one that was down up to date", async () => {
    const fan = "a-2";
    await amB.halt();
    await pair.deliver(transition(SITE, fan, "alarm")); // one of the two took it
    await eventually("amA notified", () => notified(hooks, "/a/on-call", fan).length === 1);
    await amB.restart();
    await eventually(
      "amB has the alarm from the resend",
      async () => alertOf(await amB.alerts(), fan, "FanAlarm") !== undefined,
    );
    await eventually("amB notified", () => notified(hooks, "/b/on-call", fan).length === 1);
    assert.equal(notified(hooks, "/a/on-call", fan).length, 1);

    const nowhere = target([`http://127.0.0.1:${await freePort()}`], SITE);
    await nowhere.start();
    try {
      await assert.rejects(nowhere.deliver(transition(SITE, "a-2b", "alarm")), (error: unknown) => {
        assert.ok(error instanceof DeliveryError);
        assert.equal(error.retryable, true);
        return true;
      });
    } finally {
      await nowhere.close();
    }
  });

  it("routes an escalated warning to on-call: the minor alert ends, the major one opens", async () => {
    const fan = "a-esc";
    const hour = 3_600_000;
    const interval = {
      from: new Date(Date.now() + 2 * hour).toISOString(),
      to: new Date(Date.now() + 5 * hour).toISOString(),
      coverage: 0.8,
    };
    await pair.deliver(
      transition(SITE, fan, "warning", {
        eta: new Date(Date.now() + 3 * hour).toISOString(),
        etaInterval: interval,
        basis: "baseline",
        sensors: ["vibration", "temperature"],
        probability: 0.41,
      }),
    );
    await eventually("the minor warning at maintenance", () => notified(hooks, "/a/maintenance", fan).length === 1);
    assert.equal(notified(hooks, "/a/on-call", fan).length, 0);
    // What the maintenance team reads: when (in hours, and the interval), and what drifts against what.
    const warned = notified(hooks, "/a/maintenance", fan)[0]?.body.alerts[0];
    assert.match(
      warned?.annotations.summary ?? "",
      /^Fan a-esc warning: vibration, p=0\.41, alarm expected in 2–5 h \(between .+ UTC, 80% interval\); vibration and temperature drifting from the fan's own baseline$/,
    );
    assert.equal(warned?.annotations.etaFrom, interval.from);
    assert.equal(warned?.annotations.sensors, "vibration,temperature");
    assert.equal(warned?.labels.etaFrom, undefined, "the interval is no label");
    const mail = await eventuallyValue(
      "the warning's mail",
      () => smtp.mails.find((m) => m.subject.includes(`FanWarning fan ${fan}`)),
      (m) => m !== undefined,
    );
    // Quoted-printable: soft line breaks joined, so that the sentence reads whole.
    assert.match(mail?.raw.replace(/=\r?\n/g, "") ?? "", /80% interval\); vibration and temperature drifting/);
    await pair.deliver(transition(SITE, fan, "escalated", { state: "warning", severity: "major" }));
    await eventually("the major warning at on-call", () => notified(hooks, "/a/on-call", fan).length === 1);
    const paged = notified(hooks, "/a/on-call", fan)[0];
    assert.equal(paged?.body.alerts[0]?.labels.severity, "major");
    assert.equal(paged?.body.alerts[0]?.labels.alertname, "FanWarning");
    await eventually(
      "the minor one resolved at maintenance",
      () => notified(hooks, "/a/maintenance", fan, { status: "resolved" }).length === 1,
    );
    const active = (await amA.alerts()).filter((a) => a.labels.deviceID === fan);
    assert.deepEqual(
      active.map((a) => a.labels.severity),
      ["major"],
    );
  });

  it("holds a fan's FanWarning back while its FanAlarm fires (the shipped inhibition)", async () => {
    const fan = "a-inh";
    const other = "a-inh-other";
    await pair.deliver(transition(SITE, fan, "alarm"));
    await eventually("the alarm", () => notified(hooks, "/a/on-call", fan).length === 1);
    // A warning from elsewhere (or of the moment between two transitions), for the fan and for another.
    const warning = (deviceID: string) => ({
      labels: { alertname: "FanWarning", deviceID, severity: "minor", cause: "vibration", site: SITE, alarmId: "x" },
      annotations: { summary: `Fan ${deviceID} warning` },
      startsAt: new Date().toISOString(),
    });
    const posted = await fetch(`${amA.url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([warning(fan), warning(other)]),
    });
    assert.equal(posted.status, 200);
    await eventually("the other fan's warning", () => notified(hooks, "/a/maintenance", other).length === 1);
    const held = alertOf(await amA.alerts(), fan, "FanWarning");
    assert.equal(held?.status.state, "suppressed");
    assert.equal(held?.status.inhibitedBy.length, 1);
    assert.equal(notified(hooks, "/a/", fan, { alertname: "FanWarning" }).length, 0);
  });

  it("routes the platform's alerts (Prometheus's, scope=platform) to the operators, and holds a site's FanSilent back while its broker is down", async () => {
    // Alertmanager B only, and sites of their own: the other tests' alerts are not touched.
    const site = "plant-p";
    const startsAt = new Date().toISOString();
    const brokerDown = {
      labels: { alertname: "BrokerDown", scope: "platform", severity: "critical", component: "mosquitto", site },
      annotations: { summary: "The MQTT broker is not ready (mosquitto-0)" },
      startsAt,
    };
    const silent = (deviceID: string, at: string) => ({
      labels: { alertname: "FanSilent", deviceID, severity: "minor", site: at },
      annotations: { summary: `Fan ${deviceID} silent` },
      startsAt,
    });
    const posted = await fetch(`${amB.url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([brokerDown, silent("p-1", site), silent("q-1", "plant-q")]),
    });
    assert.equal(posted.status, 200);
    const platform = () => hooks.received.filter((w) => w.body.groupLabels.alertname === "BrokerDown");
    await eventually("BrokerDown's notification", () => platform().length === 1);
    assert.equal(platform()[0]?.path, "/b/operators", "the operators' receiver, not on-call's paging route");
    assert.deepEqual(platform()[0]?.body.groupLabels, { alertname: "BrokerDown", site });
    const mail = await eventuallyValue(
      "the operators' mail",
      () => smtp.mails.find((m) => m.subject.includes("BrokerDown")),
      (m) => m !== undefined,
    );
    assert.deepEqual(mail?.to, ["operators@example.com"]);
    assert.equal(
      mail?.subject,
      "[fanwatch platform FIRING] BrokerDown, site plant-p: The MQTT broker is not ready (mosquitto-0)",
    );
    // Another site's silent fan is notified; this site's is held back by its BrokerDown.
    await eventually("plant-q's FanSilent", () => notified(hooks, "/b/maintenance", "q-1").length === 1);
    const held = alertOf(await amB.alerts(), "p-1", "FanSilent");
    assert.equal(held?.status.state, "suppressed");
    assert.equal(notified(hooks, "/b/", "p-1").length, 0);
    await fetch(`${amB.url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ ...brokerDown, endsAt: new Date().toISOString() }]),
    });
  });

  it("notifies a silent fan, and resolves it when the fan reports again", async () => {
    const fan = "a-sil";
    await pair.deliver(transition(SITE, fan, "silent", { alarmId: null, cause: null, probability: 0.02 }));
    await eventually(
      "FanSilent",
      () => notified(hooks, "/a/maintenance", fan, { alertname: "FanSilent" }).length === 1,
    );
    await pair.deliver(transition(SITE, fan, "ok", { alarmId: null, cause: null }));
    await eventually(
      "its resolve",
      () => notified(hooks, "/a/maintenance", fan, { alertname: "FanSilent", status: "resolved" }).length === 1,
    );
  });

  it("sends a sensor issue as FanSensor to the maintenance team (never paged), beside the fan's alarm, and resolves it when the issue clears", async () => {
    const fan = "a-sensor";
    const issue = {
      sensor: "temperature" as const,
      cause: "stuck" as const,
      value: 40.2,
      since: new Date().toISOString(),
    };
    await pair.deliver(transition(SITE, fan, "alarm"));
    await pair.deliver(transition(SITE, fan, "sensor", { sensorIssue: issue }));
    await eventually(
      "FanSensor at the maintenance team",
      () => notified(hooks, "/a/maintenance", fan, { alertname: "FanSensor" }).length === 1,
    );
    const alert = alertOf(await amA.alerts(), fan, "FanSensor");
    assert.deepEqual(alert?.labels, {
      alertname: "FanSensor",
      deviceID: fan,
      severity: "warning",
      cause: "temperature stuck",
      site: SITE,
      sensorSince: issue.since,
    });
    assert.equal(
      notified(hooks, "/a/on-call", fan, { alertname: "FanSensor" }).length,
      0,
      "an electrician's job: not paged",
    );
    await pair.deliver(transition(SITE, fan, "sensor-cleared", { sensorIssue: issue }));
    await eventually(
      "its resolve",
      () => notified(hooks, "/a/maintenance", fan, { alertname: "FanSensor", status: "resolved" }).length === 1,
    );
    assert.ok(alertOf(await amA.alerts(), fan, "FanAlarm") !== undefined, "the fan's alarm is its own");
    assert.equal(alertOf(await amA.alerts(), fan, "FanSensor"), undefined);
  });

  it("silences a maintenance window at both Alertmanagers from its start (a pending silence until then) to its end", async () => {
    const fan = "a-maint";
    const from = new Date(Date.now() + 1_500).toISOString();
    const until = new Date(Date.now() + 5_000).toISOString();
    await pair.deliver(
      transition(SITE, fan, "maintenance", { state: "ok", alarmId: null, from, until, by: "bob", note: "bearing" }),
    );
    // deliver() resolved once one of the two took it; the other follows within moments.
    for (const am of [amA, amB]) {
      const planned = await eventuallyValue(
        "the planned window at each Alertmanager",
        async () => (await am.silences()).find((s) => s.comment.includes(`Maintenance of fan ${fan}`)),
        (found) => found !== undefined,
      );
      assert.equal(planned?.status.state, "pending");
      assert.equal(planned?.createdBy, "fanwatch");
      assert.equal(Date.parse(planned?.startsAt ?? ""), Date.parse(from));
      assert.equal(Date.parse(planned?.endsAt ?? ""), Date.parse(until));
      assert.deepEqual(planned?.matchers.map((m) => `${m.name}=${m.value}`).sort(), [
        `deviceID=${fan}`,
        `site=${SITE}`,
      ]);
    }
    await eventually("the window started", async () =>
      (await amA.silences()).some((s) => s.comment.includes(`fan ${fan}`) && s.status.state === "active"),
    );
    await pair.deliver(transition(SITE, fan, "alarm", { muted: "maintenance" }));
    await eventually("the alarm is at Alertmanager, silenced", async () => {
      const alert = alertOf(await amA.alerts(), fan, "FanAlarm");
      return alert?.status.state === "suppressed" && alert.status.silencedBy.length === 1;
    });
    await eventually("notified once the window is over", () => notified(hooks, "/a/on-call", fan).length === 1, 15_000);
    const window = (await amA.silences()).find((s) => s.comment.includes(`fan ${fan}`));
    assert.equal(window?.status.state, "expired");
    assert.ok(
      notified(hooks, "/a/on-call", fan).every((w) => w.at >= Date.parse(window?.endsAt ?? "")),
      "nothing during the window",
    );
  });

  it("gets an Alertmanager restarted with its storage, and a restarted notifier, back to its alerts without notifying them again", async () => {
    const fan = "a-3";
    await pair.deliver(transition(SITE, fan, "alarm"));
    await eventually("the alarm", () => notified(hooks, "/a/on-call", fan).length === 1);
    // Alertmanager writes the notification to its log only once the webhook has answered, and
    // shows that write nowhere: halted before it, it would rightly notify again (seen once under
    // CI's load). A moment lets it write.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await amA.halt();
    await pair.close();
    await amA.restart(); // alerts are not stored by Alertmanager, its notification log is
    assert.equal(alertOf(await amA.alerts(), fan, "FanAlarm"), undefined);
    pair = target([amA.url, amB.url], SITE); // a new notifier: the state is in NATS
    await pair.start();
    await eventually(
      "the alarm back from the resend",
      async () => alertOf(await amA.alerts(), fan, "FanAlarm") !== undefined,
    );
    // A new alarm, notified after group_wait: the old one's group was flushed at once, before it.
    await pair.deliver(transition(SITE, "a-3-later", "alarm"));
    await eventually("the later alarm", () => notified(hooks, "/a/on-call", "a-3-later").length === 1);
    assert.equal(notified(hooks, "/a/on-call", fan).length, 1, "no second notification of the same alarm");
    assert.equal(notified(hooks, "/a/on-call", "a-1").length, 2, "nor of a-1's, firing and resolved before");
  });

  it("shows an Alertmanager that is down in its metrics: up 0 and failed pushes while it is stopped, up 1 once it is back", async () => {
    const am = await startAlertmanager(localAlertmanagerConfig());
    const registry = new Registry();
    // Credentials in the URL (a proxy in front of it): never in a label.
    const url = new URL(am.url);
    url.username = "user";
    url.password = "secret-in-url";
    const watched = new AlertmanagerTarget({
      urls: [url.toString()],
      site: "plant-m",
      resendMs: 300,
      timeoutMs: 2_000,
      nc,
      log: silent,
      registry,
    });
    const sample = async (name: string, labels: Record<string, string> = {}) => {
      const metric = await registry.getSingleMetric(name)?.get();
      return metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value;
    };
    const at = { url: am.url };
    try {
      await watched.start();
      await eventually("up", async () => (await sample("fanwatch_alertmanager_up", at)) === 1);
      assert.equal(await sample("fanwatch_alertmanager_push_failures_total", at), 0);
      assert.doesNotMatch(await registry.metrics(), /secret-in-url/);
      await watched.deliver(transition("plant-m", "m-1", "alarm"));
      assert.equal(await sample("fanwatch_alertmanager_open_alerts"), 1);

      await am.halt();
      await eventually("down", async () => (await sample("fanwatch_alertmanager_up", at)) === 0);
      assert.ok(((await sample("fanwatch_alertmanager_push_failures_total", at)) ?? 0) > 0, "failed pushes counted");
      await assert.rejects(watched.deliver(transition("plant-m", "m-1", "cleared")), DeliveryError);
      assert.equal(await sample("fanwatch_alertmanager_open_alerts"), 0, "the clear is recorded, waiting to be sent");

      await am.restart();
      await eventually("up again", async () => (await sample("fanwatch_alertmanager_up", at)) === 1);
    } finally {
      await watched.close();
      await am.stop();
    }
  });

  it("lets the process exit when the target is closed while it starts: no timer or watch is left running", async () => {
    const bucket = "fan_alerts_closed_while_starting";
    const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 1 });
    // Fans to load, so that start() has work under way when close() comes.
    for (let i = 0; i < 100; i++)
      await kv.put(stateKey("plant-c", `c-${i}`), JSON.stringify(emptyFan(`c-${i}`, "plant-c")));
    const script = fileURLToPath(new URL("../support/alertmanager-closed-while-starting.js", import.meta.url));
    const child = spawn(process.execPath, [script, nats.url, bucket, amA.url]);
    // Only a hang ends here: a process that nothing keeps alive exits at once.
    const hung = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const done = await finished(child).finally(() => clearTimeout(hung));
    assert.equal(done.signal, null, "exited by itself: nothing kept it alive");
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /closed/);
  });

  // Each with a control fan of its own, whose repeats show that repeat intervals went by.
  describe("with an Alertmanager that repeats every few seconds", { concurrency: true }, () => {
    it("stops repeating an acknowledged alarm, which stays active, and resolves it unmuted when it clears", async () => {
      const fan = "r-ack";
      const control = "r-control";
      await repeating.deliver(transition(RSITE, fan, "alarm"));
      await repeating.deliver(transition(RSITE, control, "alarm"));
      await eventually("repeats", () => notified(hooks, "/r/", fan).length >= 2, 30_000);
      await repeating.deliver(
        transition(RSITE, fan, "acknowledged", { acknowledged: true, by: "alice", note: "on my way" }),
      );
      const silence = (await amR.silences()).find((s) => s.comment.includes("Acknowledged by alice"));
      assert.equal(silence?.status.state, "active");
      assert.equal(silence?.createdBy, "fanwatch");
      assert.match(silence?.comment ?? "", /on my way.*\[fanwatch\/plant-r\/r-ack\/ack\/[0-9a-f]{12}\]$/);
      assert.deepEqual(silence?.matchers.map((m) => `${m.name}=${m.value}`).sort(), [
        `alarmId=${fan}@episode-1`,
        "alertname=FanAlarm",
        `deviceID=${fan}`,
        `site=${RSITE}`,
      ]);
      // One repeat of the control for anything already under way, then three more.
      const controlNow = notified(hooks, "/r/", control).length;
      await eventually("a control repeat", () => notified(hooks, "/r/", control).length > controlNow, 30_000);
      const acknowledged = notified(hooks, "/r/", fan).length;
      await eventually(
        "three more repeats of the control",
        () => notified(hooks, "/r/", control).length >= controlNow + 4,
        60_000,
      );
      assert.equal(notified(hooks, "/r/", fan).length, acknowledged, "no repeat after the acknowledgement");
      const alert = alertOf(await amR.alerts(), fan, "FanAlarm");
      assert.equal(alert?.status.state, "suppressed");
      assert.ok(Date.parse(alert?.endsAt ?? "") > Date.now(), "still active, never resolved");
      assert.equal(notified(hooks, "/r/", fan, { status: "resolved" }).length, 0);

      await repeating.deliver(transition(RSITE, fan, "cleared", { acknowledged: true }));
      await eventually(
        "the resolve, not muted by the acknowledgement",
        () => notified(hooks, "/r/", fan, { status: "resolved" }).length === 1,
      );
      const expired = (await amR.silences()).find((s) => s.id === silence?.id);
      assert.equal(expired?.status.state, "expired");
      await repeating.deliver(transition(RSITE, control, "cleared"));
    });

    it("shares the state between two notifier replicas: one acknowledges, the other clears, the resolve goes out", async () => {
      const fan = "r-two";
      const other = target([amR.url], RSITE); // a second replica: same site, same bucket
      await other.start();
      try {
        await repeating.deliver(transition(RSITE, fan, "alarm"));
        await eventually("the alarm", () => notified(hooks, "/r/", fan).length >= 1, 30_000);
        await other.deliver(transition(RSITE, fan, "acknowledged", { acknowledged: true, by: "dave" }));
        const silence = (await amR.silences()).find((s) => s.comment.includes("Acknowledged by dave"));
        assert.equal(silence?.status.state, "active");
        await repeating.deliver(transition(RSITE, fan, "cleared", { acknowledged: true }));
        assert.equal(
          (await amR.silences()).find((s) => s.id === silence?.id)?.status.state,
          "expired",
          "expired by the replica that cleared, as part of the delivery",
        );
        await eventually("the resolve", () => notified(hooks, "/r/", fan, { status: "resolved" }).length === 1, 30_000);
      } finally {
        await other.close();
      }
    });

    it("stops repeating a shelved alarm and notifies it again once the shelving ends, if still open", async () => {
      const fan = "r-shelf";
      const control = "r-control-2";
      await repeating.deliver(transition(RSITE, fan, "alarm"));
      await repeating.deliver(transition(RSITE, control, "alarm"));
      await eventually("the alarm", () => notified(hooks, "/r/", fan).length >= 1, 30_000);
      const later = new Date(Date.now() + 600_000).toISOString();
      await repeating.deliver(transition(RSITE, fan, "shelved", { until: later, by: "carol" }));
      const shelf = (await amR.silences()).find((s) => s.comment.includes("Shelved by carol"));
      assert.equal(shelf?.status.state, "active");
      assert.equal(Date.parse(shelf?.endsAt ?? ""), Date.parse(later));
      assert.deepEqual(shelf?.matchers.map((m) => `${m.name}=${m.value}`).sort(), [`deviceID=${fan}`, `site=${RSITE}`]);
      const controlNow = notified(hooks, "/r/", control).length;
      await eventually("a control repeat", () => notified(hooks, "/r/", control).length > controlNow, 30_000);
      const shelved = notified(hooks, "/r/", fan).length;
      await eventually(
        "two more control repeats",
        () => notified(hooks, "/r/", control).length >= controlNow + 3,
        30_000,
      );
      assert.equal(notified(hooks, "/r/", fan).length, shelved, "no repeat while shelved");

      // Shelved again, until moments from now (health moves `until`): the silence follows.
      const soon = new Date(Date.now() + 1_500).toISOString();
      await repeating.deliver(transition(RSITE, fan, "shelved", { until: soon, by: "carol" }));
      const moved = (await amR.silences()).find((s) => s.comment.includes(`until ${soon}`));
      assert.equal(Date.parse(moved?.endsAt ?? ""), Date.parse(soon));
      assert.equal(
        (await amR.silences()).filter((s) => s.comment.includes("Shelved by carol") && s.status.state !== "expired")
          .length,
        1,
        "one shelving silence, not two",
      );
      await eventually("the shelving over", async () =>
        (await amR.silences()).some((s) => s.id === moved?.id && s.status.state === "expired"),
      );
      await repeating.deliver(transition(RSITE, fan, "resumed"));
      await eventually("notified again", () => notified(hooks, "/r/", fan).length > shelved, 30_000);
      assert.ok(
        notified(hooks, "/r/", fan)
          .slice(shelved)
          .every((w) => w.at >= Date.parse(soon)),
      );
      await resends(repeating, 2);
      assert.ok(
        !(await amR.silences()).some((s) => s.comment.includes(`fan ${fan}`) && s.status.state !== "expired"),
        "the ended shelving is not made again",
      );
      await repeating.deliver(transition(RSITE, fan, "cleared"));
      await repeating.deliver(transition(RSITE, control, "cleared"));
    });
  });
});

describe("localAlertmanagerConfig (fanwatch start's Alertmanager)", () => {
  it("renders configurations the real Alertmanager loads: with a webhook and e-mail, and with no receiver at all", async () => {
    for (const config of [
      localAlertmanagerConfig({
        webhookUrl: "http://127.0.0.1:9/hook",
        smtp: { smarthost: "127.0.0.1:25", from: "a@example.com", to: "b@example.com", requireTls: false },
      }),
      localAlertmanagerConfig(),
    ]) {
      const am = await startAlertmanager(config);
      try {
        const status = (await (await fetch(`${am.url}/api/v2/status`)).json()) as { config: { original: string } };
        assert.match(status.config.original, /group_by:\s*\n\s*- deviceID\s*\n\s*- alertname/);
        assert.match(status.config.original, /FanAlarm/);
      } finally {
        await am.stop();
      }
    }
  });
});
