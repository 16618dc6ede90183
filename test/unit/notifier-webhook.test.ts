import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { newHealthRecord, transitionFrom, type AlarmTransition } from "../../lib/domain/health.js";
import { freePort } from "../../lib/infra/net.js";
import { DeliveryError, fanLink, type Notification } from "../../notifier/target.js";
import {
  deliveryKey,
  describeWebhook,
  WebhookTarget,
  webhookBody,
  webhookSignature,
  webhookTargetId,
} from "../../notifier/webhook.js";

const SECRET = "sixteen-characters-at-least";

const transition: AlarmTransition = {
  id: "7:1764250000000:3",
  event: "alarm",
  deviceID: "7",
  alarmId: "7@2026-11-27T13:26:40.000Z",
  state: "alarm",
  severity: "major",
  cause: "vibration",
  contributions: { rotation: 0, temperature: 0.01, vibration: 0.9, sound: 0 },
  probability: 0.93,
  eta: null,
  since: "2026-11-27T13:26:40.000Z",
  at: "2026-11-27T13:26:40.000Z",
  acknowledged: false,
  site: "north",
};

const notification = (t: AlarmTransition = transition): Notification => ({
  transition: t,
  link: fanLink("http://page.example", t.deviceID),
});

describe("the webhook's contract", () => {
  it("names a target webhook-<8 hex of the URL's sha256>, the same on every start", () => {
    const url = "https://hooks.example.com/services/T0/B0/secret";
    assert.match(webhookTargetId(url), /^webhook-[0-9a-f]{8}$/);
    assert.equal(webhookTargetId(url), webhookTargetId(url));
    assert.notEqual(webhookTargetId(url), webhookTargetId(`${url}2`));
  });

  it("describes a webhook without its credentials, path or query", () => {
    const shown = describeWebhook("https://user:pa55word@hooks.example.com/services/T0/B0/tok3n?key=k3y");
    assert.equal(shown, "webhook https://hooks.example.com/…");
    for (const secret of ["user", "pa55word", "T0", "tok3n", "k3y"]) assert.ok(!shown.includes(secret), secret);
    assert.equal(describeWebhook("http://127.0.0.1:9000/"), "webhook http://127.0.0.1:9000");
  });

  it("sends the transition with its site and the link, signed over the exact bytes", () => {
    const body = webhookBody(notification());
    assert.deepEqual(JSON.parse(body.toString("utf8")), { ...transition, link: "http://page.example/?fan=7" });
    assert.equal(webhookSignature(SECRET, body), `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`);
    assert.equal(fanLink("http://page.example", "fan 7/α"), "http://page.example/?fan=fan%207%2F%CE%B1");
  });

  it("sends a warning's eta interval, basis and drifting sensors as health published them", () => {
    const warning = transitionFrom(
      {
        ...newHealthRecord(transition.deviceID, transition.at),
        ...transition,
        state: "warning",
        severity: "minor",
        eta: "2026-11-27T16:00:00.000Z",
        etaInterval: { from: "2026-11-27T15:00:00.000Z", to: "2026-11-27T18:00:00.000Z", coverage: 0.8 },
        basis: "baseline",
        sensors: ["vibration", "temperature"],
      },
      { event: "warning", at: transition.at, id: "7:1764250000000:4", site: "north" },
    );
    const body = JSON.parse(webhookBody(notification(warning)).toString("utf8")) as Record<string, unknown>;
    assert.deepEqual(body.etaInterval, {
      from: "2026-11-27T15:00:00.000Z",
      to: "2026-11-27T18:00:00.000Z",
      coverage: 0.8,
    });
    assert.equal(body.basis, "baseline");
    assert.deepEqual(body.sensors, ["vibration", "temperature"]);
  });

  it("keeps a plain transition id as it is in X-Fanwatch-Delivery and percent-encodes what a header cannot carry", () => {
    assert.equal(deliveryKey("7:1764250000000:3"), "7:1764250000000:3");
    assert.equal(deliveryKey("fan-7@2026-11-27T13:26:40.000Z:3"), "fan-7@2026-11-27T13:26:40.000Z:3");
    assert.equal(deliveryKey("α:1:2"), "%CE%B1:1:2");
    assert.equal(deliveryKey("50%:1"), "50%25:1", "% itself, so that two ids never share a key");
    assert.equal(deliveryKey("a\nb"), "a%0Ab");
  });
});

describe("WebhookTarget against a local HTTP server", () => {
  let server: Server;
  let base: string;
  let answer: number | "never" = 200;
  const seen: Array<{ headers: IncomingHttpHeaders; body: Buffer; url: string }> = [];

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ headers: req.headers, body: Buffer.concat(chunks), url: req.url ?? "" });
        if (answer !== "never") res.writeHead(answer).end("go away\nplease");
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  });

  const target = (url = `${base}/hook`, timeoutMs = 2_000) => new WebhookTarget({ url, secret: SECRET, timeoutMs });

  /** The DeliveryError a delivery fails with. */
  async function failure(t: WebhookTarget): Promise<DeliveryError> {
    try {
      await t.deliver(notification());
    } catch (error) {
      assert.ok(error instanceof DeliveryError, String(error));
      return error;
    } finally {
      t.close();
    }
    assert.fail("delivered");
  }

  it("posts the signed body with the delivery, event and user-agent headers; 2xx is delivered", async () => {
    answer = 204;
    seen.length = 0;
    const t = target();
    assert.equal(await t.deliver(notification()), undefined);
    t.close();
    const [request] = seen;
    assert.ok(request !== undefined);
    assert.equal(request.url, "/hook");
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.headers["x-fanwatch-delivery"], transition.id);
    assert.equal(request.headers["x-fanwatch-event"], "alarm");
    assert.match(String(request.headers["user-agent"]), /^fanwatch-notifier\//);
    assert.equal(
      request.headers["x-fanwatch-signature"],
      `sha256=${createHmac("sha256", SECRET).update(request.body).digest("hex")}`,
    );
  });

  it("sends the URL's user and password as basic auth", async () => {
    answer = 200;
    seen.length = 0;
    const t = target(base.replace("http://", "http://alert:s3cret@") + "/hook");
    await t.deliver(notification());
    t.close();
    assert.equal(seen[0]?.headers.authorization, `Basic ${Buffer.from("alert:s3cret").toString("base64")}`);
    assert.ok(!t.description.includes("s3cret"));
  });

  it("skips a muted transition without a request", async () => {
    seen.length = 0;
    const t = target();
    assert.equal(await t.deliver(notification({ ...transition, muted: "maintenance" })), "skipped");
    t.close();
    assert.equal(seen.length, 0);
  });

  for (const status of [500, 502, 503, 429, 408])
    it(`retries a ${status}`, async () => {
      answer = status;
      const error = await failure(target());
      assert.equal(error.retryable, true);
      assert.equal(error.reason, `http_${status}`);
    });

  for (const status of [400, 401, 404, 410, 422])
    it(`gives up at once on a ${status}, saying what the receiver answered`, async () => {
      answer = status;
      const error = await failure(target());
      assert.equal(error.retryable, false);
      assert.equal(error.reason, `http_${status}`);
      assert.match(error.message, new RegExp(`answered ${status}: go away please$`));
    });

  it("retries a receiver that does not answer in time", async () => {
    answer = "never";
    const error = await failure(target(`${base}/hook`, 200));
    assert.equal(error.retryable, true);
    assert.equal(error.reason, "timeout");
  });

  it("retries a receiver nothing listens at, without showing its URL's secrets", async () => {
    const port = await freePort();
    const error = await failure(target(`http://user:pw-xyz@127.0.0.1:${port}/path-token`));
    assert.equal(error.retryable, true);
    assert.equal(error.reason, "connection");
    assert.ok(!error.message.includes("pw-xyz") && !error.message.includes("path-token"), error.message);
  });
});
