/// <reference lib="dom" />
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { chromium, type Browser } from "playwright-core";
import { startFanwatch, type StartedSystem } from "./support/fanwatch-start.js";
import { REPO_ROOT } from "./support/paths.js";

/** Debian's chromium; playwright-core downloads no browser of its own. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(REPO_ROOT, "test-results");

describe("the live fleet page in headless Chromium", { timeout: 120_000 }, () => {
  let system: StartedSystem;
  let browser: Browser;

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    system = await startFanwatch(["--mqtt-port", "0", "--fans", "6", "--faulty", "2", "--degrading", "1", "--interval", "300"], { MQTT_URL: "" });
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  });
  after(async () => {
    await browser?.close();
    if (system !== undefined) assert.equal((await system.interrupt()).code, 0);
  });

  for (const [device, viewport] of [
    ["laptop", { width: 1366, height: 800 }],
    ["tablet", { width: 768, height: 1024 }],
  ] as const) {
    it(`shows a tile per fan, live, with the faulty fans marked (${device})`, async () => {
      const page = await browser.newPage({ viewport });
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${system.gatewayUrl}/ui/`);
      await page.waitForFunction(() => document.querySelectorAll(".tile").length === 6, undefined, { timeout: 30_000 });
      // Fans 1 and 2 are faulty: at least half of their last predictions say so.
      await page.waitForFunction(() => ["1", "2"].every((id) => document.querySelector(`.tile[data-fan="${id}"]`)?.getAttribute("data-state") === "fault"), undefined, { timeout: 30_000 });
      assert.equal(await page.getAttribute('.tile[data-fan="6"]', "data-state"), "ok");
      assert.match((await page.textContent('.tile[data-fan="1"] .state')) ?? "", /fault/);
      assert.match((await page.textContent('.tile[data-fan="1"] .probability')) ?? "", /fault probability \d+\.\d%/);
      assert.ok(Number(await page.textContent("#in-fault")) >= 2);
      assert.ok((await page.locator("#feed li").count()) > 0, "the anomaly feed lists faults");
      // Live: the prediction count rises with no reload.
      const first = Number((await page.textContent("#predictions"))?.replace(/,/g, ""));
      await page.waitForFunction((n) => Number(document.querySelector("#predictions")?.textContent?.replace(/,/g, "")) > n, first, { timeout: 10_000 });
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

  it("lists a dead letter when a fan sends something that is not a reading", async () => {
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/ui/`);
    await page.waitForSelector(".tile");
    const client = await mqtt.connectAsync(system.brokerUrl);
    await client.publishAsync("fan/messages", JSON.stringify({ deviceID: "7", rotation: "fast" }), { qos: 1 });
    await client.endAsync();
    await page.waitForFunction(() => (document.querySelector("#dead-letter-feed")?.textContent ?? "").includes("rotation"), undefined, { timeout: 15_000 });
    assert.ok(Number(await page.textContent("#dead-letters")) >= 1);
    await page.close();
  });
});
