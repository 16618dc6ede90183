/// <reference lib="dom" />
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { chromium, type Browser, type Page } from "playwright-core";
import { ModelFollower } from "../../functions/score/model-follower.js";
import { ModelHolder } from "../../functions/score/model-holder.js";
import { createLogger } from "../../lib/infra/log.js";
import { bundleArtifacts, bundleFromDirectory, bundleId, encodeBundle } from "../../lib/models/bundle.js";
import { MODELS_BUCKET } from "../../lib/models/names.js";
import { ModelRegistry } from "../../lib/models/registry.js";
import type { ActivePointer, ModelBundle, ShadowComparison } from "../../lib/models/schemas.js";
import { ScoringModel } from "../../lib/inference/runtime.js";
import { openModelRegistry } from "../../page/models-link.js";
import type { ModelsPanel } from "../../page/models-view.js";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startNats, type TestNats } from "../support/nats.js";
import { signIn, startTestPage, type TestPage } from "../support/page-service.js";
import { MODEL_DIR, REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";

// The Models panel end to end: a real nats-server holding the registry, a real score replica
// following the site's pointer (and refusing a broken candidate), predict's comparisons as predict
// writes them, `fanwatch page` reading it all, in Chromium as a viewer.

const SCREENSHOTS = join(REPO_ROOT, "test-results");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const VIEWER = { name: "vera", role: "viewer", password: "vera's long enough password" } as const;
const SITE = "plant-7";
const BROKEN = "fan-0123456789abcdef";
const silent = createLogger("page-models-test", "silent");

async function signInAs(tab: Page, url: string): Promise<void> {
  await tab.goto(`${url}/ui/signin?next=${encodeURIComponent("/ui/")}`);
  await tab.fill('input[name="name"]', VIEWER.name);
  await tab.fill('input[name="password"]', VIEWER.password);
  await tab.click('button[type="submit"], input[type="submit"]');
  await tab.waitForURL(`${url}/ui/`);
}

/** Waits until the element's text matches. */
async function shows(tab: Page, selector: string, pattern: RegExp): Promise<void> {
  await tab.waitForFunction(
    ([s, source]) => new RegExp(source).test(document.querySelector(s)?.textContent ?? ""),
    [selector, pattern.source] as const,
    { timeout: 20_000 },
  );
}

describe("the page's Models panel (real nats-server, a real score replica, Chromium)", { timeout: 240_000 }, () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let registry: ModelRegistry;
  let shipped: ModelBundle;
  let shippedId: string;
  let activeId: string;
  let shadowId: string;
  let follower: ModelFollower;
  let page: TestPage;
  let bare: TestPage;
  let browser: Browser;
  let viewer: { cookie: string };

  async function movePointer(change: Partial<ActivePointer>): Promise<void> {
    const current = await registry.pointer(SITE);
    assert.ok(current !== undefined);
    const pointer = { ...current.pointer, reason: "promote", by: "ben", at: new Date().toISOString(), ...change };
    await registry.setPointer(SITE, pointer as ActivePointer, current.revision);
  }

  async function statusSays(check: (s: { active: string; shadow: string | null; refused: string[] }) => boolean) {
    await eventually("score-a's status", async () => {
      const s = (await registry.replicaStatuses(SITE)).find((r) => r.replica === "score-a");
      return s !== undefined && check({ active: s.active, shadow: s.shadow, refused: s.refused.map((r) => r.id) });
    });
  }

  function comparison(replica: string, active: string, readings: number, extra: Partial<ShadowComparison> = {}) {
    return {
      site: SITE,
      replica,
      active,
      shadow: shadowId,
      since: new Date(Date.now() - 60_000).toISOString(),
      at: new Date().toISOString(),
      readings,
      agreed: readings - readings / 100,
      alarms: { active: 2, shadow: 1 },
      fans: { opened: [], closed: ["12"] },
      cost: { cpuRatio: 1.5, latencyRatio: 1.4 },
      ...extra,
    };
  }

  async function models(url: string): Promise<{ status: number; body: ModelsPanel & { code?: string } }> {
    const res = await fetch(`${url}/ui/api/models`, { headers: { cookie: viewer.cookie } });
    return { status: res.status, body: (await res.json()) as ModelsPanel & { code?: string } };
  }

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    registry = await ModelRegistry.open(nc);
    shipped = await bundleFromDirectory(MODEL_DIR, { parent: null });
    shippedId = bundleId(encodeBundle(shipped));
    // A real score replica: it bootstraps the site with the shipped model and follows the pointer.
    const holder = new ModelHolder(await ScoringModel.fromArtifacts(bundleArtifacts(shipped, shippedId), MODEL_DIR));
    follower = new ModelFollower({
      url: nats.url,
      site: SITE,
      replica: "score-a",
      shipped,
      holder,
      log: silent,
      statusEveryMs: 200,
    });
    await follower.start();
    await follower.synced;
    // Another version (the same weights with a parent: another id, the same answers), promoted.
    activeId = (await registry.push({ ...shipped, parent: shippedId }, "ben")).id;
    await movePointer({ active: activeId, previous: shippedId });
    await statusSays((s) => s.active === activeId);
    // A broken candidate as shadow: bytes that are not their id's. The replica refuses it.
    const store = await new Objm(jetstream(nc)).open(MODELS_BUCKET);
    await store.putBlob({ name: BROKEN }, encodeBundle({ ...shipped, parent: BROKEN }));
    await movePointer({ shadow: BROKEN, reason: "shadow" });
    await statusSays((s) => s.refused.includes(BROKEN) && s.shadow === null);
    // Then a sound one, which it scores as shadow; predict's replicas compare it (written as predict does).
    shadowId = (await registry.push({ ...shipped, parent: activeId }, "ana")).id;
    await movePointer({ shadow: shadowId, reason: "shadow", by: "ana" });
    await statusSays((s) => s.shadow === shadowId);
    await registry.putComparison(comparison("predict-1", activeId, 1_000, { fans: { opened: ["7"], closed: ["12"] } }));
    await registry.putComparison(
      comparison("predict-2", activeId, 3_000, { fans: { opened: [], closed: ["3", "12"] } }),
    );
    await registry.putComparison(comparison("predict-old", shippedId, 500));
    // A replica that stopped reporting a minute ago.
    await registry.putReplicaStatus({
      replica: "score-old",
      site: SITE,
      active: shippedId,
      shadow: null,
      revision: 1,
      refused: [],
      at: new Date(Date.now() - 60_000).toISOString(),
    });

    page = await startTestPage({
      healthUrl: "http://127.0.0.1:1/function/health",
      users: [VIEWER],
      env: { NATS_URL: nats.url, SITE },
      openModels: () => openModelRegistry({ url: nats.url, replicas: 1, name: "page-models-test" }),
    });
    bare = await startTestPage({ healthUrl: "http://127.0.0.1:1/function/health", users: [VIEWER] });
    await page.service.modelsOpened();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([page?.stop(), bare?.stop()]);
    await follower?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("answers GET /ui/api/models to any signed-in user with the site's models, replicas, refusals and shadow", async () => {
    const anonymous = await fetch(`${page.url}/ui/api/models`);
    assert.equal(anonymous.status, 401);
    viewer = await signIn(page.url, VIEWER.name, VIEWER.password);
    const posted = await fetch(`${page.url}/ui/api/models`, { method: "POST", headers: { cookie: viewer.cookie } });
    assert.equal(posted.status, 405, "it only reads");
    const { status, body } = await models(page.url);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.site, SITE);
    assert.equal(body.active?.id, activeId);
    assert.equal(body.active?.parent, shippedId);
    assert.equal(body.active?.goldenAccuracy, 0.94, "the shipped golden set's stored answers against its labels");
    assert.equal(body.previous?.id, shippedId);
    assert.equal(body.shadow?.id, shadowId);
    assert.equal(body.pointer?.reason, "shadow");
    assert.deepEqual(
      body.replicas.map((r) => [r.replica, r.active, r.shadow, r.gone]),
      [
        ["score-a", activeId, shadowId, false],
        ["score-old", shippedId, null, true],
      ],
    );
    const refusal = body.refusals.find((r) => r.id === BROKEN);
    assert.equal(refusal?.replica, "score-a");
    assert.match(refusal?.error ?? "", /its stored bytes have the digest fan-[0-9a-f]{16}, not its id/);
    const c = body.comparison;
    assert.equal(c?.replicas, 2, "predict-old compared against another active model: not counted");
    assert.equal(c?.stale, 1);
    assert.equal(c?.readings, 4_000);
    assert.equal(c?.agreement, 0.99);
    assert.deepEqual(c?.alarms, { active: 4, shadow: 2 });
    assert.deepEqual(c?.fans, { opened: ["7"], closed: ["3", "12"] });
    assert.equal(c?.cost.cpuRatio, 1.5);
  });

  it("shows them to a viewer, the refusal and the gone replica included", async () => {
    const tab = await browser.newPage({ viewport: { width: 1366, height: 1200 } });
    const errors: string[] = [];
    tab.on("pageerror", (error) => errors.push(error.message));
    await signInAs(tab, page.url);
    await shows(tab, '#models-roles li[data-role="active"]', new RegExp(`^active: ${activeId} · pushed `));
    assert.match(
      (await tab.textContent('#models-roles li[data-role="active"]')) ?? "",
      new RegExp(`parent ${shippedId} · golden accuracy 0\\.9400 on 200 labelled · held-out 0\\.\\d{4}$`),
    );
    assert.match((await tab.textContent('#models-roles li[data-role="previous"]')) ?? "", new RegExp(shippedId));
    assert.match((await tab.textContent('#models-roles li[data-role="shadow"]')) ?? "", new RegExp(shadowId));
    await shows(tab, "#models-pointer", /^Pointer revision \d+: shadow by ana at /);
    assert.match(
      (await tab.textContent('#models-replicas li[data-replica="score-a"]')) ?? "",
      new RegExp(`^score-a: serving ${activeId}, shadow ${shadowId} · revision \\d+ · last seen .+$`),
    );
    assert.equal(await tab.getAttribute('#models-replicas li[data-replica="score-old"]', "data-gone"), "true");
    assert.match(
      (await tab.textContent('#models-replicas li[data-replica="score-old"]')) ?? "",
      / · gone \(not seen for 30 s\)$/,
    );
    assert.match(
      (await tab.textContent(`#models-refusals li[data-model="${BROKEN}"]`)) ?? "",
      new RegExp(`^score-a refused ${BROKEN} at .+: .*its stored bytes have the digest fan-[0-9a-f]{16}, not its id`),
    );
    assert.equal(await tab.textContent('#models-comparison li[data-line="agreement"]'), "agreement 99.00%");
    assert.equal(await tab.textContent('#models-comparison li[data-line="alarms"]'), "alarms: active 4, shadow 2");
    assert.equal(await tab.textContent('#models-comparison li[data-line="opened"]'), "fans the shadow would open: 7");
    assert.equal(
      await tab.textContent('#models-comparison li[data-line="closed"]'),
      "fans the shadow would close: 3, 12",
    );
    assert.equal(
      await tab.textContent('#models-comparison li[data-line="cost"]'),
      "cost: CPU 1.50×, latency 1.40× of the active model alone",
    );
    assert.equal(await tab.isVisible("#models-message"), false);
    await mkdir(SCREENSHOTS, { recursive: true });
    await tab.screenshot({ path: join(SCREENSHOTS, "page-models.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await tab.close();
  });

  it("without NATS_URL says there is no registry and score serves MODEL_DIR", async () => {
    const cookie = (await signIn(bare.url, VIEWER.name, VIEWER.password)).cookie;
    const answer = (await (await fetch(`${bare.url}/ui/api/models`, { headers: { cookie } })).json()) as {
      registry: string;
    };
    assert.equal(answer.registry, "none");
    const tab = await browser.newPage();
    await signInAs(tab, bare.url);
    await shows(tab, "#models-message", /^No model registry: .*score serves the model in its MODEL_DIR\.$/);
    assert.equal(await tab.isVisible("#models-body"), false);
    await tab.close();
  });

  it("with NATS away says so and serves the rest of the page; reads the models again once NATS is back", async () => {
    const tab = await browser.newPage();
    await signInAs(tab, page.url);
    await shows(tab, '#models-roles li[data-role="active"]', new RegExp(activeId));
    await nats.halt();
    const away = await eventuallyValue(
      "the Models API saying NATS is away",
      () => models(page.url),
      (a) => a.status === 503,
    );
    assert.equal(away.body.code, "FANWATCH_REGISTRY_UNAVAILABLE");
    await shows(tab, "#models-message", /^The model registry cannot be read: /);
    const healthz = await fetch(`${page.url}/healthz`);
    assert.equal(healthz.status, 200, "the page itself serves on");
    assert.equal((await fetch(`${page.url}/ui/`, { headers: { cookie: viewer.cookie } })).status, 200);
    await nats.restart();
    await eventuallyValue(
      "the Models API reading the registry again",
      () => models(page.url),
      (a) => a.status === 200 && a.body.active?.id === activeId,
    );
    await tab.waitForFunction(() => document.querySelector("#models-message")?.textContent === "", undefined, {
      timeout: 30_000,
    });
    await tab.close();
  });

  it("fanwatch page started while NATS is away serves, says so, and reads the models once NATS is back", async () => {
    await nats.halt();
    const port = await freePort();
    const child = spawnCli(["page", "--port", String(port), "--host", "127.0.0.1", "--sign-in", "off"], {
      NATS_URL: nats.url,
      SITE,
      HEALTH_URL: "http://127.0.0.1:1/function/health",
      MQTT_URL: "mqtt://127.0.0.1:1",
      LOG_LEVEL: "warn",
    });
    try {
      await waitForOutput(child, /page running/);
      const url = `http://127.0.0.1:${port}`;
      const healthz = (await (await fetch(`${url}/healthz`)).json()) as { models: string };
      assert.equal(healthz.models, "waiting");
      const early = await fetch(`${url}/ui/api/models`);
      assert.equal(early.status, 503);
      assert.match(
        ((await early.json()) as { error: string }).error,
        /^the model registry \(NATS\) cannot be read yet: .*the page tries again every 5 s$/,
      );
      await nats.restart();
      const panel = await eventuallyValue(
        "the page reading the model registry",
        async () => {
          const res = await fetch(`${url}/ui/api/models`);
          return res.ok ? ((await res.json()) as ModelsPanel) : undefined;
        },
        (p) => p !== undefined,
        { timeoutMs: 30_000 },
      );
      assert.equal(panel?.site, SITE);
      assert.deepEqual([panel?.active?.id, panel?.previous?.id, panel?.shadow?.id], [activeId, shippedId, shadowId]);
    } finally {
      await terminate(child);
    }
  });
});
