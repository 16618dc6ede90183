/// <reference lib="dom" />
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { chromium, type Browser, type Page } from "playwright-core";
import type { HealthRecord } from "../../lib/domain/health.js";
import type { Prediction } from "../../lib/domain/prediction.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { startTestPage, TEST_USER_SECRET, type TestPage } from "../support/page-service.js";
import { REPO_ROOT } from "../support/paths.js";
import { postJson } from "../support/process.js";

// The workbench end to end, as a plant runs it: `fanwatch page` with sign-in, the real health
// function holding the same user secret, real nats-server (history) and Mosquitto, in Chromium.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(REPO_ROOT, "test-results");
const ENGINEER = { name: "ana", role: "engineer", password: "ana's long enough password" } as const;
const VIEWER = { name: "vera", role: "viewer", password: "vera's long enough password" } as const;
const FAN = "7";

/** Faulty predictions a second apart, ending now: the fan's alarm opens within them. */
function faulty(deviceID: string, count: number): Prediction[] {
  const start = Date.now() - count * 1_000;
  return Array.from({ length: count }, (_, i) => ({
    deviceID,
    fault: 1,
    probability: 0.97,
    timeStamp: start + i * 1_000,
    cause: "vibration" as const,
    contributions: { rotation: 0.02, temperature: 0.05, vibration: 0.71, sound: 0.09 },
  }));
}

async function record(health: HealthProcess, deviceID: string): Promise<HealthRecord | undefined> {
  const listing = (await (await fetch(health.url)).json()) as { fans: HealthRecord[] };
  return listing.fans.find((f) => f.deviceID === deviceID);
}

/** Every line of the fan's history, as health keeps it (not as the page shows it). */
async function historyText(health: HealthProcess, deviceID: string): Promise<string> {
  return JSON.stringify(await (await fetch(`${health.url}/history?deviceID=${deviceID}`)).json());
}

async function signInAs(page: Page, url: string, user: { name: string; password: string }, next: string) {
  await page.goto(`${url}/ui/signin?next=${encodeURIComponent(next)}`);
  await page.fill('input[name="name"]', user.name);
  await page.fill('input[name="password"]', user.password);
  await page.click('button[type="submit"], input[type="submit"]');
  await page.waitForURL(`${url}${next}`);
}

async function timelineLine(page: Page, pattern: RegExp): Promise<void> {
  await page.waitForFunction(
    (source) =>
      Array.from(document.querySelectorAll(".timeline li")).some((li) => new RegExp(source).test(li.textContent ?? "")),
    pattern.source,
    { timeout: 15_000 },
  );
}

describe(
  "the workbench: sign-in, a fan's page, actions in a person's name (real health, NATS, Mosquitto, Chromium)",
  {
    timeout: 240_000,
  },
  () => {
    let nats: TestNats;
    let broker: Broker;
    let health: HealthProcess;
    let page: TestPage;
    let browser: Browser;
    let evil: Server;
    let evilUrl: string;

    before(async () => {
      [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      health = await startHealth({ NATS_URL: nats.url, MQTT_URL: broker.url, PAGE_USER_SECRET: TEST_USER_SECRET });
      page = await startTestPage({ healthUrl: health.url, users: [ENGINEER, VIEWER], mqtt: { url: broker.url } });
      // The fan reports (the page's charts) and its predictions reach health (its alarm).
      const fan = await mqtt.connectAsync(broker.url);
      for (let i = 0; i < 5; i++)
        await fan.publishAsync(
          "fan/messages",
          JSON.stringify({ deviceID: FAN, rotation: 420, temperature: 53, vibration: 240, sound: 58 }),
          { qos: 1 },
        );
      await fan.endAsync();
      const answer = await postJson(health.url, faulty(FAN, 20));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const alarm = await record(health, FAN);
      assert.equal(alarm?.state, "alarm");
      const alarmId = alarm?.alarmId ?? "";
      // Another site, whose page tries to act in the signed-in engineer's name.
      evil = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html>
        <form id="f" method="POST" action="${page.url}/ui/api/health" enctype="text/plain">
          <input name='{"deviceID":"${FAN}","action":"comment","alarmId":"${alarmId}","note":"forged","x":"' value='"}'>
        </form>
        <script>
          fetch("${page.url}/ui/api/health", { method: "POST", credentials: "include", mode: "no-cors",
            headers: { "content-type": "text/plain" },
            body: JSON.stringify({ deviceID: "${FAN}", action: "comment", alarmId: "${alarmId}", note: "forged by fetch" }) })
            .finally(() => document.getElementById("f").submit());
        </script>`);
      }).listen(0, "127.0.0.1");
      await once(evil, "listening");
      // Another origin: same address, another port is another site only by origin; "localhost" differs by name too.
      evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    });

    after(async () => {
      await browser?.close();
      evil?.close();
      await page?.stop();
      await stopHealthProcesses();
      await Promise.all([nats?.stop(), broker?.stop()]);
    });

    it("an engineer signs in, acknowledges, comments and records a finding on a fan's page; the timeline names them", async () => {
      const tab = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      const errors: string[] = [];
      tab.on("pageerror", (error) => errors.push(error.message));
      await signInAs(tab, page.url, ENGINEER, `/ui/fans/${FAN}`);
      await tab.waitForSelector("#sensor-charts canvas");
      assert.equal(await tab.textContent("#who"), "Signed in as ana (engineer).");
      await tab.fill('form[data-action="acknowledge"] [name="note"]', "on my way");
      await tab.click('form[data-action="acknowledge"] button');
      await timelineLine(tab, /acknowledged by ana: “on my way”/);
      await tab.fill('form[data-action="comment"] [name="note"]', "bearing noise at the housing");
      await tab.click('form[data-action="comment"] button');
      await timelineLine(tab, /comment by ana: “bearing noise at the housing”/);
      await tab.check('form[data-action="finding"] [value="confirmed"]');
      await tab.fill('form[data-action="finding"] [name="part"]', "bearing");
      await tab.click('form[data-action="finding"] button');
      await timelineLine(tab, /finding: confirmed \(part bearing\) by ana/);
      // What the engineer did is health's record, in their signed name.
      const now = await record(health, FAN);
      assert.equal(now?.acknowledgedBy, "ana");
      assert.equal(now?.finding?.result, "confirmed");
      assert.equal(now?.finding?.by, "ana");
      await mkdir(SCREENSHOTS, { recursive: true });
      await tab.screenshot({ path: join(SCREENSHOTS, "workbench-engineer.png"), fullPage: true });
      assert.deepEqual(errors, []);
      await tab.close();
    });

    it("an engineer plans maintenance on two fans from the fleet page; a healthy fan's timeline shows it outside any episode", async () => {
      const healthy = Array.from({ length: 5 }, (_, i) => ({
        deviceID: "8",
        fault: 0 as const,
        probability: 0.04,
        timeStamp: Date.now() - (5 - i) * 1_000,
      }));
      assert.equal((await postJson(health.url, healthy)).status, 200);
      const tab = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      const errors: string[] = [];
      tab.on("pageerror", (error) => errors.push(error.message));
      await signInAs(tab, page.url, ENGINEER, "/ui/");
      await tab.waitForSelector("#maintenance-panel:not([hidden])");
      assert.equal(await tab.isVisible("#ack-by"), false, "signed in: no name to type");
      await tab.fill('#maintenance [name="fans"]', `${FAN}, 8`);
      await tab.fill('#maintenance [name="note"]', "fan wall, hall 2");
      await tab.click("#maintenance button");
      await tab.waitForFunction(() =>
        /^Maintenance (planned|not)/.test(document.querySelector("#maintenance-message")?.textContent ?? ""),
      );
      assert.match((await tab.textContent("#maintenance-message")) ?? "", /^Maintenance planned for fans 7, 8: now – /);
      assert.equal((await record(health, "8"))?.maintenance?.by, "ana");
      // Health's own history: fan 8 had no episode, so the window is among the transitions outside any.
      await tab.goto(`${page.url}/ui/fans/8`);
      await timelineLine(tab, /maintenance (.*, )?\d\d:\d\d – (.*, )?\d\d:\d\d by ana: “fan wall, hall 2”/);
      assert.deepEqual(await tab.locator(".timeline .between h3").allTextContents(), ["Outside any episode"]);
      await tab.screenshot({ path: join(SCREENSHOTS, "workbench-maintenance.png"), fullPage: true });
      assert.deepEqual(errors, []);
      await tab.close();
    });

    it("a viewer sees the fan and its timeline but has no forms, and the page refuses their action", async () => {
      const tab = await browser.newPage();
      await signInAs(tab, page.url, VIEWER, `/ui/fans/${FAN}`);
      await timelineLine(tab, /acknowledged by ana/);
      assert.equal(await tab.textContent("#who"), "Signed in as viewer: you can see, not act.");
      assert.equal(await tab.isVisible("#action-forms"), false);
      // The page's own script, with the viewer's session and CSRF token, still cannot act.
      const answer = await tab.evaluate(
        async ({ deviceID, alarmId }) => {
          const session = (await (await fetch("/ui/api/session")).json()) as { csrf: string };
          const res = await fetch("/ui/api/health", {
            method: "POST",
            headers: { "content-type": "application/json", "x-csrf-token": session.csrf },
            body: JSON.stringify({ deviceID, action: "comment", alarmId, note: "by a viewer" }),
          });
          return { status: res.status, body: (await res.json()) as { code: string } };
        },
        { deviceID: FAN, alarmId: (await record(health, FAN))?.alarmId },
      );
      assert.deepEqual([answer.status, answer.body.code], [403, "FANWATCH_FORBIDDEN"]);
      assert.doesNotMatch(await historyText(health, FAN), /by a viewer/);
      await tab.close();
    });

    it("refuses a forged cross-site POST in the engineer's name, and health refuses a call without the page's signature", async () => {
      const context = await browser.newContext();
      const tab = await context.newPage();
      await signInAs(tab, page.url, ENGINEER, "/ui/");
      const refused = tab.waitForResponse(
        (r) => r.url() === `${page.url}/ui/api/health` && r.request().method() === "POST",
      );
      await tab.goto(evilUrl);
      const response = await refused;
      assert.ok([401, 403].includes(response.status()), `the forged form post answered ${response.status()}`);
      // Nothing in the engineer's name: not the form's note, nor the fetch's (answered before the form was sent).
      assert.doesNotMatch(await historyText(health, FAN), /forged/);
      // Inside the cluster, a caller that reaches health directly cannot act in anyone's name.
      const alarmId = (await record(health, FAN))?.alarmId;
      const direct = await postJson(health.url, { deviceID: FAN, alarmId, action: "comment", note: "x", by: "ana" });
      assert.deepEqual([direct.status, (direct.body as { code: string }).code], [401, "FANWATCH_UNAUTHENTICATED"]);
      await context.close();
    });
  },
);
