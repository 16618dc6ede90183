/// <reference lib="dom" />
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { createServer, get, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { chromium, type Browser } from "playwright-core";
import type { AlarmTransition, HealthRecord } from "../../lib/domain/health.js";
import { FleetView } from "../../page/fleet-view.js";
import { WebPage } from "../../page/web-page.js";
import { eventually } from "../support/eventually.js";
import { startFanwatch, type StartedSystem } from "../support/fanwatch-start.js";
import { listeningOn, portsOfTree, processTree } from "../support/listening.js";
import { Collector } from "../support/mqtt-collector.js";
import { REPO_ROOT } from "../support/paths.js";

/** Debian's chromium; playwright-core downloads no browser of its own. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(REPO_ROOT, "test-results");

const TOPICS = { telemetry: "fan/messages", anomaly: "fan/anomaly", deadletter: "fan/deadletter", alarm: "fan/alarm" };

/** The page's server alone, on a fleet of `fans` fans with full charts; frames are sent by tick(). */
async function servePage(
  fans: number,
  options: { maxStreams?: number; maxMissedFrames?: number } = {},
): Promise<{ page: WebPage; url: string; server: Server }> {
  const fleet = new FleetView(TOPICS, { readingsFrom: "telemetry-for-tests" });
  for (let n = 0; n < 60; n++) {
    for (let id = 1; id <= fans; id++)
      fleet.receive(
        TOPICS.telemetry,
        Buffer.from(
          JSON.stringify({
            deviceID: String(id),
            timeStamp: "2026-11-27 10:00:00",
            rotation: 612.3 + n,
            temperature: 40.1,
            vibration: 151.7,
            sound: 48.9,
          }),
        ),
      );
  }
  const page = new WebPage(fleet, { intervalMs: 3_600_000, ...options });
  await page.start();
  const server = createServer((req, res) => void page.handle(req, res)).listen(0, "127.0.0.1");
  await once(server, "listening");
  return { page, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ui/events` };
}

/** An event stream read as a browser would, counting whole frames. */
async function openStream(
  url: string,
): Promise<{ res: IncomingMessage; frames: () => number; bytes: () => number; closed: Promise<void> }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on("error", reject));
  let frames = 0;
  let bytes = 0;
  res.setEncoding("utf8");
  res.on("data", (chunk: string) => {
    bytes += chunk.length;
    frames += chunk.split("\n\n").length - 1;
  });
  res.on("error", () => {}); // a stream the server ends is reset; `closed` says so
  return {
    res,
    frames: () => frames,
    bytes: () => bytes,
    closed: new Promise((resolve) => res.once("close", () => resolve())),
  };
}

describe("the page's event stream over plain HTTP", () => {
  it("serves 16 streams, answers the 17th with 503 and why, and takes a new one when one closes", async () => {
    const { page, url, server } = await servePage(3);
    try {
      const streams = await Promise.all(Array.from({ length: 16 }, () => openStream(url)));
      const refused = await fetch(url);
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), /open in 16 places already/);
      streams[0]?.res.destroy();
      await eventually("the server to count 15 streams", () => page.stats().streams === 15);
      const again = await openStream(url);
      assert.equal(again.res.statusCode, 200);
      for (const s of [...streams, again]) s.res.destroy();
    } finally {
      void page.close();
      server.close();
    }
  });

  it("sends no frames to a client that does not read, holds at most one frame for it, and closes it after 30 missed frames", async () => {
    const { page, url, server } = await servePage(400);
    try {
      const reader = await openStream(url);
      // A client that asks for the stream and never reads it.
      const slow = connect((server.address() as AddressInfo).port, "127.0.0.1");
      slow.write(`GET /ui/events HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`);
      slow.pause();
      slow.on("error", () => {}); // the server resets it: that is what the test waits for
      const slowClosed = new Promise<void>((resolve) => slow.once("close", () => resolve()));
      await eventually("the server to count 2 streams", () => page.stats().streams === 2);
      let closedAt: number | undefined;
      let ticks = 0;
      let frameBytes = 0;
      let largestBuffer = 0;
      // Without backpressure the server would buffer a frame a tick for the slow client: 200 frames
      // of this fleet are about 100 MB, far more than the sockets' buffers take.
      while (closedAt === undefined && ticks < 200) {
        const [frames, bytes] = [reader.frames(), reader.bytes()];
        page.tick();
        ticks++;
        await eventually("the next frame", () => reader.frames() > frames);
        frameBytes = reader.bytes() - bytes;
        largestBuffer = Math.max(largestBuffer, page.stats().bufferedBytes);
        await new Promise((resolve) => setImmediate(resolve));
        if (page.stats().streams === 1) closedAt = ticks;
      }
      assert.ok(
        closedAt !== undefined,
        `the slow client is still open after ${ticks} frames of ${frameBytes} bytes, ${JSON.stringify(page.stats())}`,
      );
      assert.ok(closedAt > 30, `closed after ${closedAt} frames, before it missed 30`);
      assert.ok(largestBuffer <= 2 * frameBytes, `${largestBuffer} bytes buffered at most; a frame is ${frameBytes}`);
      assert.equal(reader.frames(), ticks + 1, "the reading client got every frame");
      slow.resume(); // it reads what it was sent, then finds the connection closed
      await slowClosed;
      const before = reader.frames();
      page.tick();
      await eventually("a new frame", () => reader.frames() > before);
      reader.res.destroy();
    } finally {
      void page.close();
      server.close();
    }
  });

  it("ends every stream on close, even one whose client does not read, and refuses new ones", async () => {
    const { page, url, server } = await servePage(3);
    const stream = await openStream(url);
    stream.res.pause();
    void page.close();
    await stream.closed;
    const refused = await fetch(url);
    assert.equal(refused.status, 503);
    assert.match(await refused.text(), /stopping/);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe("the live fleet page in headless Chromium", { timeout: 180_000 }, () => {
  let system: StartedSystem;
  let browser: Browser;

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    // The whole system, the health function included: fans 1 and 2 faulty, fan 3's bearing wearing
    // out over two minutes (vibration alone drifts: the health function warns about it some 20 s
    // after the start and raises the alarm about a minute later; measured), fans 4 to 6 healthy.
    system = await startFanwatch(
      [
        "--mqtt-port",
        "0",
        "--fans",
        "6",
        "--faulty",
        "2",
        "--degrading",
        "0",
        "--bearing",
        "1",
        "--degrade-minutes",
        "2",
        "--interval",
        "300",
      ],
      { MQTT_URL: "" },
    );
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  });
  after(async () => {
    await browser?.close();
    if (system !== undefined) assert.equal((await system.interrupt()).code, 0);
  });

  // First, while fan 3 is still in warning.
  it("shows a warning on the wearing-out fan's tile: the sensor and the time to alarm, in the alarms panel and among the transitions", async () => {
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.waitForFunction(
      () => document.querySelector('.tile[data-fan="3"]')?.getAttribute("data-state") === "warning",
      undefined,
      { timeout: 90_000 },
    );
    assert.equal(await page.textContent('.tile[data-fan="3"] .state'), "health: warning");
    assert.equal(await page.textContent('.tile[data-fan="3"] .cause'), "cause: vibration");
    // The interval when health gives one (the fan's own baseline learnt), else the eta alone.
    assert.match(
      (await page.textContent('.tile[data-fan="3"] .eta')) ?? "",
      /^alarm expected ((now|in \d+ min|in [\d.]+ h) \(|between .+ \(\d+% interval, )/,
    );
    const row = '#alarms li[data-fan="3"]';
    await page.waitForSelector(row);
    assert.equal(await page.getAttribute(row, "data-state"), "warning");
    assert.match((await page.textContent(`${row} .detail`)) ?? "", /alarm expected/);
    const feed = await page.locator("#feed li").allTextContents();
    assert.ok(
      feed.some((line) => / · Fan 3 · warning · vibration · \d+\.\d% · alarm expected /.test(line)),
      feed.join("\n"),
    );
    // The tile opens the fan's page: its charts, and when the alarm is expected.
    await page.click('.tile[data-fan="3"]');
    await page.waitForURL(`${system.gatewayUrl}/ui/fans/3`);
    await page.waitForSelector("#sensor-charts canvas");
    await page.waitForFunction(() => (document.querySelector("#eta")?.textContent ?? "–") !== "–");
    assert.match(
      (await page.textContent("#eta")) ?? "",
      /^((now|in about \d+ (min|h)) \((.*, )?\d\d:\d\d\)|between (.*, )?\d\d:\d\d and (.*, )?\d\d:\d\d \(\d+% interval, .+\))$/,
    );
    assert.equal(await page.textContent("#state"), "health: warning");
    await page.close();
  });

  for (const [device, viewport] of [
    ["laptop", { width: 1366, height: 800 }],
    ["tablet", { width: 768, height: 1024 }],
  ] as const) {
    it(`shows a tile per fan, live, with its health: the faulty fans in alarm and why (${device})`, async () => {
      const page = await browser.newPage({ viewport });
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${system.gatewayUrl}/ui/`);
      await page.waitForFunction(() => document.querySelectorAll(".tile").length === 6, undefined, { timeout: 30_000 });
      // Fans 1 and 2 are faulty: the health function raises an alarm for each, naming a sensor.
      await page.waitForFunction(
        () =>
          ["1", "2"].every(
            (id) => document.querySelector(`.tile[data-fan="${id}"]`)?.getAttribute("data-state") === "alarm",
          ),
        undefined,
        { timeout: 60_000 },
      );
      await page.waitForFunction(
        () => document.querySelector('.tile[data-fan="6"]')?.getAttribute("data-state") === "ok",
        undefined,
        { timeout: 30_000 },
      );
      assert.match((await page.textContent('.tile[data-fan="1"] .state')) ?? "", /alarm/);
      assert.match(
        (await page.textContent('.tile[data-fan="1"] .cause')) ?? "",
        /^cause: (rotation|temperature|vibration|sound)$/,
      );
      // What each number is: the health function's state, the model's verdict on the latest reading, and on the last ten.
      assert.match((await page.textContent('.tile[data-fan="1"] .state')) ?? "", /^health: alarm/);
      assert.match(
        (await page.textContent('.tile[data-fan="1"] .probability')) ?? "",
        /^latest reading: fault probability \d+\.\d%$/,
      );
      assert.match(
        (await page.textContent('.tile[data-fan="1"] .recent')) ?? "",
        /^\d+ of the last \d+ readings scored faulty$/,
      );
      assert.equal(await page.textContent('.tile[data-fan="6"] .cause'), "", "a healthy fan has no cause");
      assert.ok(Number(await page.textContent("#in-alarm")) >= 2);
      // The feed shows health transitions, not every faulty prediction.
      const feed = await page.locator("#feed li").allTextContents();
      assert.ok(
        feed.some((line) => / · Fan 1 · alarm · /.test(line)),
        feed.join("\n"),
      );
      assert.ok(feed.length <= 30);
      // Live: the prediction count rises with no reload.
      const first = Number((await page.textContent("#predictions"))?.replace(/,/g, ""));
      await page.waitForFunction(
        (n) => Number(document.querySelector("#predictions")?.textContent?.replace(/,/g, "")) > n,
        first,
        { timeout: 10_000 },
      );
      const points = await page.getAttribute('.tile[data-fan="1"] polyline', "points");
      assert.ok((points ?? "").split(" ").length >= 2, "the rotation chart has points");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      assert.equal(overflow, false, "nothing overflows the viewport sideways");
      await mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, `fleet-${device}.png`), fullPage: true });
      assert.deepEqual(errors, []);
      await page.close();
    });
  }

  it("lists the open alarms, and Acknowledge calls the health function: the alarm is acknowledged on every page and on fan/alarm", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${system.gatewayUrl}/ui/`);
    const row = '#alarms li[data-fan="1"]';
    await page.waitForSelector(row, { timeout: 60_000 });
    assert.equal(await page.getAttribute(row, "data-state"), "alarm");
    assert.equal(await page.getAttribute(row, "data-acknowledged"), "false");
    // Unacknowledged alarms come first: fans 1 and 2 before any warning or acknowledged alarm.
    const order = await page
      .locator("#alarms li")
      .evaluateAll((items) =>
        items.map((li) => [
          li.getAttribute("data-fan"),
          li.getAttribute("data-state"),
          li.getAttribute("data-acknowledged"),
        ]),
      );
    const firstAcknowledgedOrWarning = order.findIndex(
      ([, state, acknowledged]) => state !== "alarm" || acknowledged === "true",
    );
    for (const id of ["1", "2"]) {
      const at = order.findIndex(([fan]) => fan === id);
      assert.ok(at >= 0 && (firstAcknowledgedOrWarning < 0 || at < firstAcknowledgedOrWarning), JSON.stringify(order));
    }

    const alarms = await Collector.start(system.brokerUrl, ["fan/alarm"]);
    try {
      // Without a name the page asks for one and calls nothing.
      await page.click(`${row} .acknowledge`);
      assert.match((await page.textContent("#ack-message")) ?? "", /Enter your name/);
      await page.fill("#ack-by", "ann");
      await page.fill(`${row} .note`, "on my way, 20 min");
      await page.click(`${row} .acknowledge`);
      await page.waitForFunction(
        (selector) => document.querySelector(selector)?.getAttribute("data-acknowledged") === "true",
        row,
        { timeout: 10_000 },
      );
      assert.match(
        (await page.textContent(`${row} .acknowledged-by`)) ?? "",
        /acknowledged by ann: “on my way, 20 min”/,
      );

      // The health function published the transition, and holds the alarm as acknowledged.
      const acknowledgement = () =>
        (alarms.on("fan/alarm") as AlarmTransition[]).find((t) => t.deviceID === "1" && t.event === "acknowledged");
      await eventually("the acknowledgement", () => acknowledgement() !== undefined);
      const transition = acknowledgement();
      assert.deepEqual(
        [transition?.state, transition?.acknowledged, transition?.by, transition?.note],
        ["alarm", true, "ann", "on my way, 20 min"],
      );
      const listed = (await (await fetch(`${system.gatewayUrl}/function/health?deviceID=1`)).json()) as {
        fans: HealthRecord[];
      };
      assert.deepEqual([listed.fans[0]?.acknowledged, listed.fans[0]?.acknowledgedBy], [true, "ann"]);

      // The page follows the server: the tile, the feed, and a page opened now.
      await page.waitForFunction(
        () => (document.querySelector('.tile[data-fan="1"] .state')?.textContent ?? "").includes("acknowledged"),
        undefined,
        { timeout: 10_000 },
      );
      await page.waitForFunction(
        () =>
          Array.from(document.querySelectorAll("#feed li")).some((li) =>
            / · Fan 1 · acknowledged · by ann/.test(li.textContent ?? ""),
          ),
        undefined,
        { timeout: 10_000 },
      );
      const later = await browser.newPage();
      await later.goto(`${system.gatewayUrl}/ui/`);
      await later.waitForSelector(`${row}[data-acknowledged="true"]`, { timeout: 10_000 });
      assert.match((await later.textContent(`${row} .acknowledged-by`)) ?? "", /acknowledged by ann/);
      assert.equal(await later.isVisible(`${row} .acknowledge`), false, "no button on an acknowledged alarm");
      // The acknowledged alarm now comes after the unacknowledged one of fan 2.
      const fans = await later
        .locator("#alarms li")
        .evaluateAll((items) => items.map((li) => li.getAttribute("data-fan")));
      assert.ok(fans.indexOf("2") < fans.indexOf("1"), fans.join(","));
      await later.close();
    } finally {
      await alarms.stop();
    }
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows a shelved fan and a fan in maintenance on their tiles, and the actions among the transitions", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.waitForSelector('#alarms li[data-fan="2"]', { timeout: 60_000 });
    // As a script on the page would: POST /function/health through the gateway that serves it.
    const until = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const answers = await page.evaluate(
      async (bodies) =>
        Promise.all(
          bodies.map(async (body) => {
            const res = await fetch("/function/health", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(body),
            });
            return `${res.status} ${await res.text()}`;
          }),
        ),
      [
        { deviceID: "2", action: "shelve", until, by: "bob", note: "spare on order" },
        { deviceIDs: ["5"], action: "maintenance", until, by: "ops" },
      ],
    );
    for (const answer of answers) assert.match(answer, /^200 /);
    await page.waitForFunction(
      () =>
        /^shelved until (.*, )?\d\d:\d\d by bob$/.test(
          document.querySelector('.tile[data-fan="2"] .muting')?.textContent ?? "",
        ),
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      () =>
        /^in maintenance until (.*, )?\d\d:\d\d by ops$/.test(
          document.querySelector('.tile[data-fan="5"] .muting')?.textContent ?? "",
        ),
      undefined,
      { timeout: 10_000 },
    );
    assert.equal(await page.getAttribute('.tile[data-fan="2"]', "data-muted"), "shelved");
    assert.equal(await page.textContent('.tile[data-fan="1"] .muting'), "", "the others are not held");
    await page.waitForFunction(
      () => {
        const feed = Array.from(document.querySelectorAll("#feed li"), (li) => li.textContent ?? "");
        return (
          feed.some((line) => / · Fan 2 · shelved · until .* · by bob: “spare on order”$/.test(line)) &&
          feed.some((line) => / · Fan 5 · maintenance · .* – .* · by ops$/.test(line))
        );
      },
      undefined,
      { timeout: 10_000 },
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("opens an alarmed fan's page from its tile: the sensors, the probability, what drives the alarm; acknowledges from it", async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.click('.tile[data-fan="2"]');
    await page.waitForURL(`${system.gatewayUrl}/ui/fans/2`);
    await page.waitForFunction(() => document.querySelectorAll("#sensor-charts canvas").length === 4);
    assert.equal(await page.locator("#probability-chart canvas").count(), 1);
    await page.waitForSelector("#contributions .contribution");
    const cause = await page.textContent("#contributions .contribution.cause span");
    assert.match((await page.textContent("#health")) ?? "", new RegExp(`^alarm .*cause: ${cause}`));
    await page.fill("#by", "dana");
    await page.fill('form[data-action="acknowledge"] [name="note"]', "checking the bearing");
    await page.click('form[data-action="acknowledge"] button');
    await page.waitForFunction(
      () => /acknowledged by dana/.test(document.querySelector("#episode")?.textContent ?? ""),
      undefined,
      { timeout: 10_000 },
    );
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view-system.png"), fullPage: true });
    const icon = await fetch(`${system.gatewayUrl}/favicon.ico`);
    assert.deepEqual([icon.status, icon.headers.get("content-type")], [200, "image/svg+xml"]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("keeps the fan's story in its page's timeline: the alarm, the shelving, the acknowledgement, a comment, an assignee, a finding, each with who", async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${system.gatewayUrl}/ui/fans/2`);
    await page.fill("#by", "dana");
    await page.fill('form[data-action="comment"] [name="note"]', "housing warm");
    await page.click('form[data-action="comment"] button');
    await page.fill('form[data-action="assign"] [name="to"]', "erik");
    await page.click('form[data-action="assign"] button');
    await page.waitForFunction(() => /assigned to erik/.test(document.querySelector("#episode")?.textContent ?? ""));
    await page.check('form[data-action="finding"] [value="confirmed"]');
    await page.fill('form[data-action="finding"] [name="part"]', "bearing");
    await page.click('form[data-action="finding"] button');
    await page.waitForFunction(() => /finding: confirmed/.test(document.querySelector("#episode")?.textContent ?? ""));
    for (const line of [
      /^\d\d:\d\d alarm · cause \w+ · probability \d+\.\d%/,
      /^\d\d:\d\d shelved until (.*, )?\d\d:\d\d by bob: “spare on order”$/,
      /^\d\d:\d\d acknowledged by dana: “checking the bearing”$/,
      /^\d\d:\d\d comment by dana: “housing warm”$/,
      /^\d\d:\d\d assigned to erik by dana$/,
      /^\d\d:\d\d finding: confirmed \(part bearing\) by dana$/,
    ])
      await page.waitForFunction(
        (source) =>
          Array.from(document.querySelectorAll(".timeline li")).some((li) =>
            new RegExp(source).test(li.textContent ?? ""),
          ),
        line.source,
        { timeout: 10_000 },
      );
    await page.screenshot({ path: join(SCREENSHOTS, "fan-view-timeline.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows each function's replicas as the gateway reports them", async () => {
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/ui/`);
    const auth = { authorization: `Basic ${Buffer.from(`admin:${system.password}`).toString("base64")}` };
    const functions = (await (
      await fetch(`${system.gatewayUrl}/system/functions`, { headers: auth })
    ).json()) as Array<{ name: string; replicas: number; availableReplicas: number }>;
    assert.deepEqual(functions.map((f) => f.name).sort(), ["health", "predict", "score"]);
    await page.waitForFunction(
      (n) => document.querySelectorAll("#replicas .function-replicas").length === n,
      functions.length,
      { timeout: 15_000 },
    );
    const shown = await page
      .locator("#replicas .function-replicas")
      .evaluateAll((items) =>
        items.map((i) => [
          i.getAttribute("data-function"),
          Number(i.getAttribute("data-replicas")),
          Number(i.getAttribute("data-available")),
          i.textContent,
        ]),
      );
    assert.deepEqual(
      shown,
      functions.map((f) => [
        f.name,
        f.replicas,
        f.availableReplicas,
        `${f.name} ${f.availableReplicas === f.replicas ? f.replicas : `${f.availableReplicas}/${f.replicas}`}`,
      ]),
    );
    await page.close();
  });

  it("lists what Alertmanager notified, and a notification's link opens its fan's page", async () => {
    // fanwatch start's Alertmanager (Debian's) sends its notifications to the page: fan 1's alarm.
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/?fan=1`);
    await page.waitForURL(`${system.gatewayUrl}/ui/fans/1`);
    await page.waitForSelector("#sensor-charts canvas");
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.waitForFunction(
      () => /notified FanAlarm fan [12]\b/.test(document.querySelector("#notification-feed")?.textContent ?? ""),
      undefined,
      { timeout: 60_000 },
    );
    await page.close();
  });

  it("lists a dead letter when a fan sends something that is not a reading", async () => {
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.waitForSelector(".tile");
    const client = await mqtt.connectAsync(system.brokerUrl);
    // A registered fan of the simulated fleet: an unknown one's reading would be quarantined, not refused.
    await client.publishAsync("fan/messages", JSON.stringify({ deviceID: "5", rotation: "fast" }), { qos: 1 });
    await client.endAsync();
    await page.waitForFunction(
      () => (document.querySelector("#dead-letter-feed")?.textContent ?? "").includes("rotation"),
      undefined,
      { timeout: 15_000 },
    );
    assert.ok(Number(await page.textContent("#dead-letters")) >= 1);
    await page.close();
  });
});

describe("Ctrl-C of fanwatch start with the page open in Chromium", { timeout: 120_000 }, () => {
  it("exits with code 0, its processes gone and every port it listened on free", async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    const system = await startFanwatch(["--mqtt-port", "0", "--fans", "3", "--interval", "300"], { MQTT_URL: "" });
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    const spares: Socket[] = [];
    try {
      const pid = system.child.pid ?? 0;
      const connectorPort = Number(
        /connector routing .* \(health on http:\/\/127\.0\.0\.1:(\d+)\/healthz\)/.exec(system.output())?.[1],
      );
      // Two tabs live on the page (event streams, kept-alive connections), one that acknowledged an
      // alarm (a call through the gateway to health), and one on the connector's health page,
      // which the console prints.
      const pages = await Promise.all([browser.newPage(), browser.newPage()]);
      for (const page of pages) await page.goto(`${system.gatewayUrl}/ui/`);
      const [first] = pages;
      assert.ok(first !== undefined);
      await first.waitForSelector('#alarms li[data-fan="1"] .acknowledge', { timeout: 60_000 });
      await first.fill("#ack-by", "ann");
      await first.click('#alarms li[data-fan="1"] .acknowledge');
      await first.waitForSelector('#alarms li[data-fan="1"][data-acknowledged="true"]', { timeout: 10_000 });
      const health = await browser.newPage();
      await health.goto(`http://127.0.0.1:${connectorPort}/healthz`);
      // A browser also opens spare connections that send nothing until it needs them (Chrome
      // preconnects); headless Chromium did not here, so these sockets stand in for them.
      for (const port of [Number(new URL(system.gatewayUrl).port), connectorPort]) {
        const spare = connect(port, "127.0.0.1");
        spare.on("error", () => {});
        await once(spare, "connect");
        spares.push(spare);
      }
      // Read last, with every replica the gateway runs by now: the gateway (page included), the
      // broker, the connector's health server, nats-server and each function's replicas.
      const tree = processTree(pid);
      const ports = portsOfTree(pid);
      assert.ok(
        [system.gatewayUrl, system.brokerUrl].every((url) => ports.includes(Number(new URL(url).port))) &&
          ports.includes(connectorPort),
        `listening on ${ports.join(", ")}`,
      );
      // The 20 s only tells a hang from an exit: stopping takes about 2 s here (the gateway closes
      // a connection that sent nothing after 2 s).
      const exit = system.interrupt();
      const outcome = await Promise.race([
        exit,
        new Promise<"hung">((resolve) => setTimeout(resolve, 20_000, "hung").unref()),
      ]);
      if (outcome === "hung")
        assert.fail(
          `fanwatch start did not exit within 20 s of Ctrl-C with the page open:\n${system.output().slice(-2000)}`,
        );
      assert.equal(outcome.code, 0, system.output());
      assert.match(system.output(), /stopping…\nstopped\n?$/);
      assert.deepEqual(tree.filter(alive), [], "every process it started has exited");
      for (const port of ports) assert.deepEqual(listeningOn(port), [], `port ${port} is free`);
    } finally {
      for (const spare of spares) spare.destroy();
      await browser.close();
      if (system.child.exitCode === null) system.child.kill("SIGKILL");
    }
  });
});

/** True while `pid` runs (a zombie, exited and waiting for its parent to read its status, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
