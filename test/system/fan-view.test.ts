/// <reference lib="dom" />
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { HealthRecordSchema, type HealthRecord } from "../../lib/domain/health.js";
import { HttpClient } from "../../lib/infra/http/client.js";
import { createLogger } from "../../lib/infra/log.js";
import { OffAccess } from "../../page/access/off.js";
import { FleetView } from "../../page/fleet-view.js";
import { PageApi } from "../../page/page-api.js";
import { WebPage } from "../../page/web-page.js";
import { eventually } from "../support/eventually.js";
import { HealthRecordsStandIn } from "../support/health-records-stand-in.js";
import { startTestPage } from "../support/page-service.js";
import { REPO_ROOT } from "../support/paths.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(REPO_ROOT, "test-results");
const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter", alarm: "fan/alarm" };
const MINUTE = 60_000;
/** Fan 1's alarm was raised by the first model; the second was promoted since and scores its latest readings. */
const RAISED_BY = "fan-aaaaaaaaaaaaaaaa";
const PROMOTED = "fan-bbbbbbbbbbbbbbbb";
const ENGINEER = { name: "erika", role: "engineer", password: "erika's long password" } as const;
const VIEWER = { name: "viktor", role: "viewer", password: "viktor's long password" } as const;

/** A record as health keeps it, with what the test says (the schema fills the fields it defaults). */
function record(deviceID: string, fields: Partial<HealthRecord>): HealthRecord {
  const now = new Date().toISOString();
  return HealthRecordSchema.parse({
    deviceID,
    state: "ok",
    alarmId: null,
    severity: "none",
    since: new Date(Date.now() - 20 * MINUTE).toISOString(),
    cause: null,
    contributions: null,
    probability: 0.02,
    eta: null,
    lastSeen: now,
    acknowledged: false,
    acknowledgedBy: null,
    note: null,
    shelvedUntil: null,
    shelvedBy: null,
    maintenance: null,
    ...fields,
  });
}

/**
 * The fleet of the page's tests: fan 1 in alarm (temperature drives it; raised by model RAISED_BY,
 * its latest readings scored by PROMOTED), fan 3 in warning
 * (vibration, the alarm expected in two hours), fan 6 healthy though two of its last ten readings
 * scored faulty, the latest at 83%: five minutes of readings and predictions, 2 s apart.
 */
function fleetFor(health: HealthRecordsStandIn): { fleet: FleetView; live: () => void } {
  let fake: number | undefined = Date.now() - 5 * MINUTE;
  const fleet = new FleetView(TOPICS, { now: () => fake ?? Date.now() });
  const publish = (topic: string, message: unknown) => fleet.receive(topic, Buffer.from(JSON.stringify(message)));
  for (let n = 0; n < 150; n++) {
    for (const deviceID of ["1", "3", "6"]) {
      const hot = deviceID === "1" ? n / 10 : 0;
      const worn = deviceID === "3" ? n * 0.4 : 0;
      const reading = {
        rotation: 600 + (n % 7),
        temperature: 40 + hot,
        vibration: 150 + worn,
        sound: 48 + (n % 3),
      };
      publish(TOPICS.telemetry, { deviceID, timeStamp: "2026-12-07 10:00:00", ...reading });
      const faulty = deviceID === "1" ? n > 60 : deviceID === "6" ? n === 142 || n === 149 : false;
      const probability =
        deviceID === "6" && n === 149 ? 0.83 : faulty ? 0.97 : deviceID === "3" ? 0.2 + n / 500 : 0.05;
      const model = deviceID === "1" ? (n >= 140 ? PROMOTED : RAISED_BY) : undefined;
      publish(TOPICS.anomaly, { deviceID, fault: faulty ? 1 : 0, probability, reading, model });
    }
    fake += 2_000;
  }
  const opened = new Date(Date.now() - 3 * MINUTE).toISOString();
  health.add(
    record("1", {
      state: "alarm",
      alarmId: "a-1",
      severity: "major",
      since: opened,
      cause: "temperature",
      contributions: { rotation: -0.02, temperature: 0.61, vibration: 0.08, sound: 0.01 },
      probability: 0.95,
      model: RAISED_BY,
    }),
    [{ event: "alarm", at: opened, state: "alarm", cause: "temperature", probability: 0.95, model: RAISED_BY }],
    true,
  );
  health.add(
    record("3", {
      state: "warning",
      alarmId: "w-3",
      severity: "minor",
      since: opened,
      cause: "vibration",
      contributions: { rotation: 0, temperature: 0.01, vibration: 0.3, sound: 0 },
      probability: 0.45,
      eta: new Date(Date.now() + 2 * 60 * MINUTE).toISOString(),
    }),
    [{ event: "warning", at: opened, state: "warning", cause: "vibration", probability: 0.45 }],
  );
  health.add(record("6", {}));
  return {
    fleet,
    live: () => {
      fake = undefined;
    },
  };
}

/** The page with sign-in off (`npm start`): its real API, calling the stand-in health. */
async function servePage(fleet: FleetView, healthUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const access = new OffAccess();
  const log = createLogger("fan-view-test", "silent");
  const api = new PageApi(access, { healthUrl, client: new HttpClient(), log });
  const page = new WebPage(fleet, { access, api, intervalMs: 500 });
  await page.start();
  const server: Server = createServer((req, res) => {
    if (!page.handle(req, res)) res.writeHead(404).end();
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await page.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("the fan view in headless Chromium (the health function a stand-in)", { timeout: 120_000 }, () => {
  let browser: Browser;
  let health: HealthRecordsStandIn;
  let fleet: FleetView;
  let site: { url: string; close(): Promise<void> };

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    health = await HealthRecordsStandIn.start();
    const made = fleetFor(health);
    fleet = made.fleet;
    await fleet.readHealthFrom(health.url, { intervalMs: 300 });
    made.live();
    site = await servePage(fleet, health.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  });
  after(async () => {
    await browser?.close();
    fleet?.stop();
    await site?.close();
    await health?.close();
  });

  async function open(path: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${site.url}${path}`);
    return { page, errors };
  }

  it("answers a fan's detail, a 404 that says why for an unknown fan, the favicon and uPlot", async () => {
    const res = await fetch(`${site.url}/ui/api/fans/1`);
    assert.equal(res.status, 200);
    const detail = (await res.json()) as {
      state: string;
      readings: { at: number[]; temperature: number[] };
      predictions: { probability: number[] };
      healthy: { temperature: { min: number; max: number; unit: string } };
      threshold: number | null;
      record: HealthRecord;
    };
    assert.equal(detail.state, "alarm");
    // Five minutes of readings, more than a tile's 60 (the first made it a candidate, not yet a fan).
    assert.equal(detail.readings.at.length, 149);
    assert.equal(detail.readings.temperature.at(-1), 54.9);
    assert.equal(detail.predictions.probability.length, 149);
    assert.deepEqual(detail.healthy.temperature, { min: 35, max: 45, unit: "°C" });
    assert.equal(detail.threshold, 0.5, "read from score beside health");
    assert.equal(detail.record.cause, "temperature");
    const unknown = await fetch(`${site.url}/ui/api/fans/99`);
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { error: string }).error, /no fan "99" here/);
    const refusals = [
      await fetch(`${site.url}/ui/api/fans/1`, { method: "POST" }),
      await fetch(`${site.url}/ui/api/fans/%E0%A4%A`),
      await fetch(`${site.url}/ui/api/fans/${"7".repeat(129)}`),
    ];
    assert.deepEqual(
      await Promise.all(refusals.map(async (r) => `${r.status} ${((await r.json()) as { error: string }).error}`)),
      [
        "405 POST is not allowed here; GET the fan's detail",
        "400 the fan's id in the path is not valid percent-encoding",
        "400 a fan's id has at most 128 characters",
      ],
    );
    const icon = await fetch(`${site.url}/favicon.ico`);
    assert.deepEqual([icon.status, icon.headers.get("content-type")], [200, "image/svg+xml"]);
    for (const file of ["/ui/vendor/uPlot.esm.js", "/ui/vendor/uPlot.min.css", "/ui/fan.js", "/ui/fan-charts.js"])
      assert.equal((await fetch(`${site.url}${file}`)).status, 200, file);
  });

  it("labels each number of a tile: the health state, the latest reading's probability, the recent readings scored faulty", async () => {
    const { page, errors } = await open("/ui/");
    await page.waitForSelector('.tile[data-fan="6"][data-state="ok"]');
    assert.equal(await page.textContent('.tile[data-fan="6"] .state'), "health: ok");
    assert.equal(await page.textContent('.tile[data-fan="6"] .probability'), "latest reading: fault probability 83.0%");
    assert.equal(await page.textContent('.tile[data-fan="6"] .recent'), "2 of the last 10 readings scored faulty");
    assert.equal(await page.textContent('.tile[data-fan="1"] .state'), "health: alarm");
    assert.equal(await page.getAttribute('link[rel="icon"]', "href"), "/ui/favicon.svg");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("opens a fan's page from its tile, at a URL of its own: charts with the healthy band, the probability, the contributions; back returns to the fleet", async () => {
    const { page, errors } = await open("/ui/");
    await page.click('.tile[data-fan="1"]');
    await page.waitForURL(`${site.url}/ui/fans/1`);
    assert.equal(await page.textContent("h1"), "Fan 1");
    await page.waitForSelector("#sensor-charts .sensor-chart canvas");
    const sensors = await page
      .locator("#sensor-charts .sensor-chart")
      .evaluateAll((charts) =>
        charts.map((c) => [c.getAttribute("data-sensor"), c.querySelector(".u-title")?.textContent]),
      );
    assert.deepEqual(sensors, [
      ["rotation", "rotation (rpm)"],
      ["temperature", "temperature (°C)"],
      ["vibration", "vibration"],
      ["sound", "sound (dB)"],
    ]);
    assert.equal(await page.locator("#sensor-charts canvas").count(), 4);
    assert.equal(await page.locator("#probability-chart canvas").count(), 1);
    assert.equal(await page.textContent("#state"), "health: alarm");
    assert.match((await page.textContent("#health")) ?? "", /^alarm \(major\) · cause: temperature · since /);
    // The contributions: a bar per sensor, temperature's the longest and marked as the cause.
    const bars = await page
      .locator("#contributions .contribution")
      .evaluateAll((rows) =>
        rows.map((r) => [
          r.getAttribute("data-sensor"),
          r.classList.contains("cause"),
          r.querySelector(".value")?.textContent,
        ]),
      );
    assert.deepEqual(bars, [
      ["rotation", false, "−2.0 pts"],
      ["temperature", true, "+61.0 pts"],
      ["vibration", false, "+8.0 pts"],
      ["sound", false, "+1.0 pts"],
    ]);
    // The healthy band is drawn: the temperature chart's canvas has the band's green where the range lies.
    assert.ok(await bandDrawn(page, "temperature"), "the healthy band is shaded");
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view.png"), fullPage: true });
    await page.goBack();
    await page.waitForURL(`${site.url}/ui/`);
    await page.waitForSelector('.tile[data-fan="1"]');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("fits a tablet: nothing overflows sideways", async () => {
    const page = await browser.newPage({ viewport: { width: 768, height: 1024 } });
    await page.goto(`${site.url}/ui/fans/1`);
    await page.waitForFunction(() => document.querySelectorAll("#sensor-charts canvas").length === 4);
    await page.waitForSelector('.episode[data-alarm="a-1"]');
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth), false);
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view-tablet.png"), fullPage: true });
    await page.close();
  });

  it("says when a warning's alarm is expected, and a notification's link opens the fan's page", async () => {
    const { page, errors } = await open("/?fan=3");
    await page.waitForURL(`${site.url}/ui/fans/3`);
    await page.waitForFunction(() => document.querySelector("#eta")?.textContent !== "–");
    assert.match((await page.textContent("#eta")) ?? "", /^in about 2 h \((.*, )?\d\d:\d\d\)$/);
    assert.equal(await page.textContent("#state"), "health: warning");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows a warning's eta interval, what drifts and against what: on the tile, in the alarms, on the fan's page and in its timeline", async () => {
    const hour = 60 * MINUTE;
    const warned = new Date(Date.now() - MINUTE).toISOString();
    const warning = (
      deviceID: string,
      basis: "baseline" | "fleet-range",
      sensors: Array<"vibration" | "temperature">,
    ) => {
      const fields = {
        eta: new Date(Date.now() + 3 * hour).toISOString(),
        etaInterval: {
          from: new Date(Date.now() + 2 * hour).toISOString(),
          to: new Date(Date.now() + 5 * hour).toISOString(),
          coverage: 0.8,
        },
        basis,
        sensors,
      };
      const opening = {
        event: "warning",
        at: warned,
        state: "warning",
        cause: "vibration",
        probability: 0.4,
        ...fields,
      };
      const fan = {
        state: "warning",
        alarmId: `w-${deviceID}`,
        severity: "minor",
        since: warned,
        cause: "vibration",
      } as const;
      health.add(record(deviceID, { ...fan, probability: 0.4, ...fields }), [opening]);
      // A fan is admitted on its second reading.
      for (let n = 0; n < 2; n++)
        fleet.receive(
          TOPICS.anomaly,
          Buffer.from(
            JSON.stringify({
              deviceID,
              fault: 0,
              probability: 0.4,
              reading: { rotation: 600, temperature: 41, vibration: 170, sound: 48 },
            }),
          ),
        );
    };
    warning("4", "baseline", ["vibration", "temperature"]);
    warning("5", "fleet-range", ["vibration"]);
    const interval = /^alarm expected between (.*, )?\d\d:\d\d and (.*, )?\d\d:\d\d \(80% interval, in 2–5 h\)$/;
    const { page, errors } = await open("/ui/");
    await page.waitForFunction(() => (document.querySelector('.tile[data-fan="4"] .eta')?.textContent ?? "") !== "");
    assert.match((await page.textContent('.tile[data-fan="4"] .eta')) ?? "", interval);
    assert.equal(
      await page.textContent('.tile[data-fan="4"] .basis'),
      "vibration and temperature drifting from the fan's own baseline",
    );
    await page.waitForFunction(() => (document.querySelector('.tile[data-fan="5"] .basis')?.textContent ?? "") !== "");
    assert.equal(
      await page.textContent('.tile[data-fan="5"] .basis'),
      "vibration drifting; judged against the fleet's healthy ranges",
    );
    assert.match(
      (await page.textContent('.alarm[data-fan="4"] .detail')) ?? "",
      / · alarm expected between .+ \(80% interval, in 2–5 h\) · vibration and temperature drifting from the fan's own baseline$/,
    );
    // The old form stays for a warning without an interval (a health function from before them).
    assert.match((await page.textContent('.tile[data-fan="3"] .eta')) ?? "", /^alarm expected in \d+ h \(/);
    assert.equal(await page.textContent('.tile[data-fan="3"] .basis'), "");

    await page.goto(`${site.url}/ui/fans/4`);
    await page.waitForFunction(() => (document.querySelector("#eta")?.textContent ?? "–") !== "–");
    assert.match(
      (await page.textContent("#eta")) ?? "",
      /^between (.*, )?\d\d:\d\d and (.*, )?\d\d:\d\d \(80% interval, in 2–5 h\)$/,
    );
    assert.equal(await page.textContent("#basis"), "vibration and temperature drifting from the fan's own baseline");
    await page.waitForSelector('.episode[data-alarm="w-4"] li');
    assert.match(
      (await page.textContent('.episode[data-alarm="w-4"] li')) ?? "",
      /warning · cause vibration · probability 40\.0% · alarm expected between .+ \(80% interval\) · vibration and temperature drifting from the fan's own baseline/,
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("names the model that raised an alarm on the fan's page and in the alarm list, the promoted one beside it; the threshold follows the model", async () => {
    const { page, errors } = await open("/ui/fans/1");
    await page.waitForFunction(() => (document.querySelector("#model")?.textContent ?? "–") !== "–");
    assert.equal(await page.textContent("#model"), `alarm: ${RAISED_BY} · latest reading: ${PROMOTED}`);
    await page.waitForSelector('.episode[data-alarm="a-1"] li');
    assert.match(
      (await page.textContent('.episode[data-alarm="a-1"] h3')) ?? "",
      new RegExp(`· raised by ${RAISED_BY}`),
    );
    assert.match(
      (await page.textContent('.episode[data-alarm="a-1"] li')) ?? "",
      new RegExp(`alarm · cause temperature · probability 95\\.0% · model ${RAISED_BY}$`),
    );
    await page.goto(`${site.url}/ui/`);
    await page.waitForSelector('.alarm[data-fan="1"]');
    assert.match((await page.textContent('.alarm[data-fan="1"] .detail')) ?? "", new RegExp(`· model ${RAISED_BY}`));
    assert.deepEqual(errors, []);
    await page.close();
    // Promoted again: the fan's next prediction names a model the threshold was not read for, so it is read at once.
    health.scoreAnswer = { threshold: 0.6, id: "fan-cccccccccccccccc" };
    const reading = { rotation: 600, temperature: 55, vibration: 150, sound: 48 };
    const prediction = { deviceID: "1", fault: 1, probability: 0.97, reading, model: "fan-cccccccccccccccc" };
    fleet.receive(TOPICS.anomaly, Buffer.from(JSON.stringify(prediction)));
    const detail = (await (await fetch(`${site.url}/ui/api/fans/1`)).json()) as {
      threshold: number;
      latest: { model: string | null };
    };
    assert.deepEqual([detail.threshold, detail.latest.model], [0.6, "fan-cccccccccccccccc"]);
  });

  it("acknowledges, shelves, comments, assigns and records a finding from the fan's page, and shows each in the timeline with who", async () => {
    const { page, errors } = await open("/ui/fans/1");
    await page.waitForSelector('.episode[data-alarm="a-1"]');
    const timeline = () => page.locator('.episode[data-alarm="a-1"] li').allTextContents();
    assert.ok((await timeline()).some((line) => /alarm · cause temperature · probability 95\.0%/.test(line)));
    assert.ok((await timeline()).some((line) => /alarm sent to webhook$/.test(line)));
    // Without a name the page asks for one and calls nothing.
    await page.evaluate(() => localStorage.removeItem("fanwatch.by"));
    await page.fill("#by", "");
    await page.click('form[data-action="acknowledge"] button');
    assert.match((await page.textContent("#action-message")) ?? "", /Enter your name/);
    await page.fill("#by", "ann");
    await page.fill('form[data-action="acknowledge"] [name="note"]', "on my way");
    await page.click('form[data-action="acknowledge"] button');
    await waitForLine(page, /acknowledged by ann: “on my way”/);
    await page.fill('form[data-action="shelve"] [name="note"]', "spare on order");
    await page.click('form[data-action="shelve"] button');
    await waitForLine(page, /shelved until (.*, )?\d\d:\d\d by ann: “spare on order”/);
    await page.fill('form[data-action="comment"] [name="note"]', "bearing housing warm to the touch");
    await page.click('form[data-action="comment"] button');
    await waitForLine(page, /comment by ann: “bearing housing warm to the touch”/);
    await page.fill('form[data-action="assign"] [name="to"]', "carl");
    await page.click('form[data-action="assign"] button');
    await waitForLine(page, /assigned to carl by ann/);
    await page.check('form[data-action="finding"] [value="confirmed"]');
    await page.fill('form[data-action="finding"] [name="part"]', "bearing");
    await page.selectOption('form[data-action="finding"] [name="sensor"]', "temperature");
    await page.fill('form[data-action="finding"] [name="note"]', "replaced");
    await page.click('form[data-action="finding"] button');
    await waitForLine(page, /finding: confirmed \(part bearing, sensor temperature\) by ann: “replaced”/);
    // The page follows health's record: acknowledged, and the acknowledge form gone.
    await page.waitForFunction(() => /acknowledged by ann/.test(document.querySelector("#episode")?.textContent ?? ""));
    assert.equal(await page.isVisible('form[data-action="acknowledge"]'), false);
    assert.equal(await page.evaluate(() => localStorage.getItem("fanwatch.by")), "ann");
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view-acted.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows health's refusal in the view: a finding on an open, unacknowledged warning", async () => {
    const { page, errors } = await open("/ui/fans/3");
    await page.waitForSelector('.episode[data-alarm="w-3"]');
    await page.fill("#by", "ann");
    await page.check('form[data-action="finding"] [value="false-alarm"]');
    await page.click('form[data-action="finding"] button');
    await page.waitForFunction(() => /^Not done/.test(document.querySelector("#action-message")?.textContent ?? ""));
    assert.equal(
      await page.textContent("#action-message"),
      "Not done (finding): acknowledge the episode before recording a finding on it",
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("reads the timeline again when the fan changes: another person's comment shows without a reload", async () => {
    const { page, errors } = await open("/ui/fans/3");
    await page.waitForSelector('.episode[data-alarm="w-3"]');
    // Someone else comments (health records it and publishes the transition on the alarm topic).
    const answer = await fetch(health.url, {
      method: "POST",
      body: JSON.stringify({
        deviceID: "3",
        alarmId: "w-3",
        action: "comment",
        note: "seen from the yard",
        by: "bert",
      }),
    });
    assert.equal(answer.status, 200);
    const now = health.records.get("3") as HealthRecord;
    const { deviceID, alarmId, state, severity, cause, contributions, probability, eta, since, acknowledged } = now;
    const transition = {
      deviceID,
      alarmId,
      state,
      severity,
      cause,
      contributions,
      probability,
      eta,
      since,
      acknowledged,
    };
    fleet.receive(
      TOPICS.alarm,
      Buffer.from(
        JSON.stringify({
          ...transition,
          event: "commented",
          at: new Date().toISOString(),
          id: "w-3:9",
          by: "bert",
          note: "seen from the yard",
        }),
      ),
    );
    // Well before the minute after which the page reads the history anyway.
    await waitForLine(page, /comment by bert: “seen from the yard”/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("plans maintenance on several fans from the fleet page: refused whole for an unknown fan, then on each tile and in a fan's timeline between its episodes", async () => {
    health.add(record("9", {}));
    health.addPast("9", 24);
    const { page, errors } = await open("/ui/");
    await page.waitForSelector('.tile[data-fan="6"]');
    await page.waitForSelector("#maintenance-panel:not([hidden])");
    await page.fill("#ack-by", "olga");
    await page.fill('#maintenance [name="fans"]', "6, 99");
    await page.fill('#maintenance [name="note"]', "hall 2 bearings");
    await page.click("#maintenance button");
    await page.waitForFunction(() =>
      /^Maintenance not/.test(document.querySelector("#maintenance-message")?.textContent ?? ""),
    );
    assert.equal(await page.textContent("#maintenance-message"), "Maintenance not planned: no record of fans 99");
    assert.equal(health.records.get("6")?.maintenance, null, "nothing planned");
    await page.fill('#maintenance [name="fans"]', "6 9");
    await page.click("#maintenance button");
    await page.waitForFunction(() =>
      /^Maintenance planned/.test(document.querySelector("#maintenance-message")?.textContent ?? ""),
    );
    assert.match(
      (await page.textContent("#maintenance-message")) ?? "",
      /^Maintenance planned for fans 6, 9: now – (.*, )?\d\d:\d\d\.$/,
    );
    await page.waitForFunction(() =>
      /by olga/.test(document.querySelector('.tile[data-fan="6"] .muting')?.textContent ?? ""),
    );
    assert.match(
      (await page.textContent('.tile[data-fan="6"] .muting')) ?? "",
      /^in maintenance until (.*, )?\d\d:\d\d by olga$/,
    );
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "fleet-maintenance.png"), fullPage: true });
    // Fan 9, healthy, has 24 past episodes: 20 a page; the maintenance is outside any of them.
    await page.goto(`${site.url}/ui/fans/9`);
    await page.waitForSelector(".timeline .episode");
    assert.equal(await page.locator(".timeline .episode").count(), 20);
    assert.deepEqual(await page.locator(".timeline .between h3").allTextContents(), ["Between episodes"]);
    assert.match(
      (await page.textContent(".timeline .between li")) ?? "",
      /maintenance (.*, )?\d\d:\d\d – (.*, )?\d\d:\d\d by olga: “hall 2 bearings”/,
    );
    assert.equal(
      await page.evaluate(() => document.querySelector("#timeline")?.firstElementChild?.className),
      "between",
      "the newest first: the maintenance, then the episodes",
    );
    await page.click("#older");
    await page.waitForFunction(() => document.querySelectorAll(".timeline .episode").length === 24);
    assert.equal(await page.isVisible("#older"), false, "nothing older");
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view-history.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("an engineer signs in on the way to a fan's page, acts there, and the timeline names them", async () => {
    const signedIn = await startTestPage({ healthUrl: health.url, users: [ENGINEER, VIEWER] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${signedIn.url}/ui/fans/3`);
      await page.waitForURL(/\/ui\/signin/);
      await page.fill('input[name="name"]', ENGINEER.name);
      await page.fill('input[name="password"]', ENGINEER.password);
      await page.click('button[type="submit"], input[type="submit"]');
      await page.waitForURL(`${signedIn.url}/ui/fans/3`);
      await page.waitForFunction(() => (document.querySelector("#who")?.textContent ?? "") !== "");
      assert.equal(await page.textContent("#who"), "Signed in as erika (engineer).");
      assert.equal(await page.isVisible("#by"), false, "no name to type: the page names the user");
      await page.fill('form[data-action="comment"] [name="note"]', "vibration up since the filter change");
      await page.click('form[data-action="comment"] button');
      await waitForLine(page, /comment by erika: “vibration up since the filter change”/);
      assert.deepEqual(errors, []);
      await page.close();
    } finally {
      await signedIn.stop();
    }
  });

  it("a viewer signed in sees a fan's page but no forms, and why; on the fleet page no Acknowledge", async () => {
    const signedIn = await startTestPage({ healthUrl: health.url, users: [ENGINEER, VIEWER] });
    try {
      const page = await browser.newPage();
      await page.goto(`${signedIn.url}/ui/signin?next=${encodeURIComponent("/ui/fans/1")}`);
      await page.fill('input[name="name"]', VIEWER.name);
      await page.fill('input[name="password"]', VIEWER.password);
      await page.click('button[type="submit"], input[type="submit"]');
      await page.waitForURL(`${signedIn.url}/ui/fans/1`);
      await page.waitForSelector("#sensor-charts canvas");
      await page.waitForSelector('.episode[data-alarm="a-1"]');
      await page.waitForFunction(() => (document.querySelector("#who")?.textContent ?? "") !== "");
      assert.equal(await page.textContent("#who"), "Signed in as viewer: you can see, not act.");
      assert.equal(await page.isVisible("#action-forms"), false);
      assert.equal(await page.isVisible("#by"), false);
      await page.goto(`${signedIn.url}/ui/`);
      await page.waitForSelector('#alarms li[data-fan="3"]');
      await page.waitForFunction(() => (document.querySelector("#ack-message")?.textContent ?? "") !== "");
      assert.equal(await page.textContent("#ack-message"), "Signed in as viewer: you can see, not act.");
      assert.equal(await page.isVisible('#alarms li[data-fan="3"] .acknowledge'), false);
      assert.equal(await page.isVisible("#ack-by"), false);
      assert.equal(await page.isVisible("#maintenance-panel"), false, "no maintenance to plan");
      await page.close();
    } finally {
      await signedIn.stop();
    }
  });
});

async function waitForLine(page: Page, pattern: RegExp): Promise<void> {
  await page.waitForFunction(
    (source) =>
      Array.from(document.querySelectorAll(".timeline li")).some((li) => new RegExp(source).test(li.textContent ?? "")),
    pattern.source,
    { timeout: 10_000 },
  );
}

/** True when the sensor's chart shows the healthy band's green (the shaded range behind the line). */
async function bandDrawn(page: Page, sensor: string): Promise<boolean> {
  return page.evaluate((name) => {
    const canvas = document.querySelector<HTMLCanvasElement>(`.sensor-chart[data-sensor="${name}"] canvas`);
    const ctx = canvas?.getContext("2d");
    if (!canvas || !ctx) return false;
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i] ?? 0, data[i + 1] ?? 0, data[i + 2] ?? 0];
      if (g > r + 10 && g > b + 10) return true;
    }
    return false;
  }, sensor);
}

void eventually;
