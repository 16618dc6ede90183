/// <reference lib="dom" />
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Prediction } from "../../lib/domain/prediction.js";
import { MemoryFanRegistry } from "../../lib/registry/memory-registry.js";
import { fansLine } from "../../page/fleet-count.js";
import { eventually } from "../support/eventually.js";
import { startHealth, stopHealthProcesses, type HealthProcess } from "../support/health-process.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { startNats, type TestNats } from "../support/nats.js";
import { signIn, startTestPage, TEST_USER_SECRET, type TestPage } from "../support/page-service.js";
import { REPO_ROOT } from "../support/paths.js";
import { postJson } from "../support/process.js";

// The Fans panel and the registry's counts end to end: `fanwatch page` with sign-in and a fan
// registry, the real health function (nats-server, Mosquitto), in Chromium.

const SCREENSHOTS = join(REPO_ROOT, "test-results");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN = { name: "adam", role: "admin", password: "adam's long enough password" } as const;
const ENGINEER = { name: "ana", role: "engineer", password: "ana's long enough password" } as const;
const VIEWER = { name: "vera", role: "viewer", password: "vera's long enough password" } as const;

/** Predictions a second apart, ending now: 20 faulty ones open the fan's alarm, healthy ones make it ok. */
function predictions(deviceID: string, count: number, fault: 0 | 1): Prediction[] {
  const start = Date.now() - count * 1_000;
  return Array.from({ length: count }, (_, i) => ({
    deviceID,
    fault,
    probability: fault === 1 ? 0.97 : 0.04,
    timeStamp: start + i * 1_000,
    ...(fault === 1
      ? {
          cause: "vibration" as const,
          contributions: { rotation: 0.02, temperature: 0.05, vibration: 0.71, sound: 0.09 },
        }
      : {}),
  }));
}

async function signInAs(tab: Page, url: string, user: { name: string; password: string }): Promise<void> {
  await tab.goto(`${url}/ui/signin?next=${encodeURIComponent("/ui/")}`);
  await tab.fill('input[name="name"]', user.name);
  await tab.fill('input[name="password"]', user.password);
  await tab.click('button[type="submit"], input[type="submit"]');
  await tab.waitForURL(`${url}/ui/`);
}

async function shows(tab: Page, selector: string, text: string): Promise<void> {
  await tab.waitForFunction(([s, t]) => document.querySelector(s)?.textContent === t, [selector, text] as const, {
    timeout: 20_000,
  });
}

describe(
  "the page's Fans panel and counts from the registry (real health, NATS, Mosquitto, Chromium)",
  { timeout: 240_000 },
  () => {
    let nats: TestNats;
    let broker: Broker;
    let health: HealthProcess;
    let registry: MemoryFanRegistry;
    let page: TestPage;
    let browser: Browser;

    before(async () => {
      [nats, broker] = await Promise.all([startNats(), startMosquitto()]);
      health = await startHealth({ NATS_URL: nats.url, MQTT_URL: broker.url, PAGE_USER_SECRET: TEST_USER_SECRET });
      // Fans 1–3 registered, 4 retired, 5 pending (a reading came from it); health has records of
      // 1 (alarm), 2 (ok), 4 (alarm) and 5 (ok): 4 and 5 must not count; none of 3.
      registry = new MemoryFanRegistry();
      for (const id of ["1", "2", "3", "4"]) await registry.add(id, { site: "hall A" }, "test");
      await registry.retire("4", "test");
      assert.equal(await registry.markPending("5", 10), "pending");
      for (const [id, fault] of [
        ["1", 1],
        ["2", 0],
        ["4", 1],
        ["5", 0],
      ] as const) {
        const answer = await postJson(health.url, predictions(id, 20, fault));
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
      }
      page = await startTestPage({
        healthUrl: health.url,
        users: [ADMIN, ENGINEER, VIEWER],
        mqtt: { url: broker.url },
        frameIntervalMs: 200,
        registry,
      });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    });

    after(async () => {
      await browser?.close();
      await page?.stop();
      await stopHealthProcesses();
      await Promise.all([nats?.stop(), broker?.stop()]);
    });

    it("counts the active fans so that the numbers add up, a retired fan's and a pending fan's records left out", async () => {
      await page.service.fleet.readHealthFrom(health.url);
      const { totals } = page.service.fleet.summary();
      assert.equal(
        fansLine(totals),
        "3 fans: 1 ok, 0 warning, 1 alarm, 0 cleared, 0 silent, 1 not reported; 1 pending · 1 unacknowledged",
      );
      const states = Object.values(totals.states).reduce((a, b) => a + b, 0);
      assert.equal(states + totals.unreported, totals.fans);
    });

    it("shows a fan's sensor issue beside its state, and no tile for a retired fan's predictions", async () => {
      // Three implausible temperatures open a sensor issue on fan 2 (health's rule); its state stays ok.
      const now = Date.now();
      const notices = [1, 2, 3].map((n) => ({
        deviceID: "2",
        timeStamp: now + n * 1_000,
        implausible: { sensor: "temperature", value: 900, code: "FANWATCH_READING_IMPLAUSIBLE" },
      }));
      const answer = await postJson(health.url, notices);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      // Predictions with their readings reach the page through the broker: fan 2's and retired fan 4's.
      const client = await mqtt.connectAsync(broker.url);
      const reading = { rotation: 612, temperature: 40, vibration: 150, sound: 48 };
      for (let n = 0; n < 3; n++)
        for (const deviceID of ["2", "4"])
          await client.publishAsync(
            "fan/anomaly",
            JSON.stringify({ deviceID, fault: 0, probability: 0.05, timeStamp: now + n, reading }),
            { qos: 1 },
          );
      await client.endAsync();
      const tab = await browser.newPage();
      await signInAs(tab, page.url, VIEWER);
      await tab.waitForFunction(
        () =>
          /^sensor issue: temperature implausible \(900\) since /.test(
            document.querySelector('.tile[data-fan="2"] .sensor-issue')?.textContent ?? "",
          ),
        undefined,
        { timeout: 20_000 },
      );
      assert.equal(await tab.textContent('.tile[data-fan="2"] .state'), "health: ok");
      assert.equal(await tab.$('.tile[data-fan="4"]'), null, "a retired fan has no tile");
      await tab.close();
    });

    it("an admin approves a pending fan and it joins the fans counted; adds and retires fans", async () => {
      const tab = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      const errors: string[] = [];
      tab.on("pageerror", (error) => errors.push(error.message));
      await signInAs(tab, page.url, ADMIN);
      await shows(tab, "#fans", "3");
      await shows(tab, "#pending", "1");
      // The retired fan's alarm is nobody's to acknowledge: not listed, not counted.
      await tab.waitForSelector('#alarms li[data-fan="1"]');
      assert.equal(await tab.$('#alarms li[data-fan="4"]'), null);
      await shows(tab, "#in-alarm", "1");
      await mkdir(SCREENSHOTS, { recursive: true });
      await tab.screenshot({ path: join(SCREENSHOTS, "page-fans-admin.png"), fullPage: true });
      await tab.click('#pending-fans li[data-fan="5"] .approve');
      await shows(tab, "#fans", "4");
      await shows(tab, "#pending", "0");
      await tab.waitForSelector('#active-fans li[data-fan="5"]');
      assert.equal((await tab.$$("#pending-fans li")).length, 0);
      const approved = await registry.get("5");
      assert.equal(approved?.state, "active");
      assert.equal(approved?.approvedBy, "adam");
      // Its health record (ok) now counts: 2 ok + 1 alarm + 1 not reported = 4.
      await page.service.fleet.readHealthFrom(health.url);
      assert.equal(
        fansLine(page.service.fleet.summary().totals),
        "4 fans: 2 ok, 0 warning, 1 alarm, 0 cleared, 0 silent, 1 not reported; 0 pending · 1 unacknowledged",
      );

      // An id that cannot be a topic level is refused with the registry's reason.
      await tab.fill('#add-fan [name="id"]', "hall/7");
      await tab.click("#add-fan button");
      await tab.waitForFunction(() =>
        /not added: .*never "\/"/.test(document.querySelector("#fans-message")?.textContent ?? ""),
      );
      await tab.fill('#add-fan [name="id"]', "7");
      await tab.fill('#add-fan [name="name"]', "supply fan");
      await tab.fill('#add-fan [name="site"]', "hall B");
      await tab.click("#add-fan button");
      await tab.waitForSelector('#active-fans li[data-fan="7"]');
      await shows(tab, "#fans", "5");
      assert.equal((await registry.get("7"))?.site, "hall B");

      await tab.click('#active-fans li[data-fan="2"] .retire');
      await shows(tab, "#fans", "4");
      await tab.waitForFunction(() => document.querySelector('#active-fans li[data-fan="2"]') === null);
      assert.equal((await registry.get("2"))?.state, "retired");
      assert.equal((await registry.get("2"))?.retiredBy, "adam");
      assert.deepEqual(errors, []);
      await tab.close();
    });

    it("a viewer sees the counts but no Fans panel and no Approve; the API refuses viewers and engineers", async () => {
      assert.equal(await registry.markPending("8", 10), "pending");
      const tab = await browser.newPage();
      await signInAs(tab, page.url, VIEWER);
      await shows(tab, "#pending", "1");
      assert.equal(await tab.isHidden("#fans-panel"), true);
      assert.equal(await tab.locator("button.approve:visible").count(), 0);
      await tab.close();
      for (const user of [VIEWER, ENGINEER]) {
        const me = await signIn(page.url, user.name, user.password);
        const answer = await postJson(
          `${page.url}/ui/api/fans`,
          { action: "approve", id: "8" },
          { cookie: me.cookie, "x-csrf-token": me.csrf },
        );
        assert.equal(answer.status, 403, JSON.stringify(answer.body));
        assert.equal((answer.body as { code: string }).code, "FANWATCH_FORBIDDEN");
        const list = await fetch(`${page.url}/ui/api/fans`, { headers: { cookie: me.cookie } });
        assert.equal(list.status, 403);
      }
      assert.equal((await registry.get("8"))?.state, "pending");
    });

    it("answers the registry's errors with their codes, and refuses an admin's post without the CSRF token", async () => {
      const me = await signIn(page.url, ADMIN.name, ADMIN.password);
      const post = (body: unknown, csrf = me.csrf) =>
        postJson(`${page.url}/ui/api/fans`, body, { cookie: me.cookie, "x-csrf-token": csrf });
      const unknown = await post({ action: "approve", id: "nope" });
      assert.equal(unknown.status, 404);
      assert.equal((unknown.body as { code: string }).code, "FANWATCH_DEVICE_UNKNOWN");
      const active = await post({ action: "approve", id: "1" });
      assert.equal((active.body as { code: string }).code, "FANWATCH_DEVICE_UNKNOWN", "fan 1 is active, not pending");
      const bad = await post({ action: "add", id: "a+b" });
      assert.equal(bad.status, 400);
      assert.equal((bad.body as { code: string }).code, "FANWATCH_DEVICE_ID_INVALID");
      const forged = await post({ action: "retire", id: "1" }, "not-the-token");
      assert.equal((forged.body as { code: string }).code, "FANWATCH_CSRF_REFUSED");
      assert.equal((await registry.get("1"))?.state, "active");
      // Refusing a pending fan retires it.
      const refused = await post({ action: "retire", id: "8" });
      assert.equal(refused.status, 200, JSON.stringify(refused.body));
      assert.equal((await registry.get("8"))?.state, "retired");
      await eventually("the pending count back to 0", () => page.service.fleet.summary().totals.pending === 0);
    });
  },
);
