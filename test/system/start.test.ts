import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, eventuallyValue } from "../support/eventually.js";
import { startFanwatch, type StartedSystem } from "../support/fanwatch-start.js";
import { listeningOn } from "../support/listening.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { Collector } from "../support/mqtt-collector.js";
import { freePort } from "../support/process.js";
import { validSignature, WebhookReceiver } from "../support/webhook-receiver.js";

interface Prediction {
  deviceID: string;
  fault: 0 | 1;
}

/** Waits until every fan has `perFan` predictions, then returns each fan's share of faults. */
async function faultShares(
  collector: Collector,
  fans: number,
  perFan: number,
  timeoutMs = 30_000,
): Promise<Map<string, number>> {
  const faultsOf = () => {
    const byFan = new Map<string, number[]>();
    for (const p of collector.on("fan/anomaly") as Prediction[])
      byFan.set(p.deviceID, [...(byFan.get(p.deviceID) ?? []), p.fault]);
    return byFan;
  };
  const counts = (byFan: Map<string, number[]>) =>
    Array.from({ length: fans }, (_, i) => byFan.get(String(i + 1))?.length ?? 0);
  const byFan = await eventuallyValue(
    `${perFan} predictions for each of ${fans} fans`,
    async () => faultsOf(),
    (polled) => counts(polled).every((n) => n >= perFan),
    { timeoutMs, paceMs: 100 },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; predictions per fan: ${counts(faultsOf()).join(", ")}`);
  });
  return new Map([...byFan].map(([id, faults]) => [id, faults.reduce<number>((a, b) => a + b, 0) / faults.length]));
}

/** The first match of `pattern` in what `system` prints after its first `from` characters. */
async function waitForOutputAfter(
  system: StartedSystem,
  from: number,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<RegExpExecArray> {
  const match = await eventuallyValue(
    `${pattern} in the output`,
    async () => pattern.exec(system.output().slice(from)),
    (found) => found !== null,
    { timeoutMs, paceMs: 200 },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}:\n${system.output().slice(-2000)}`);
  });
  return match as RegExpExecArray;
}

async function portIsFree(port: number): Promise<boolean> {
  const server = createTcpServer();
  server.listen(port, "127.0.0.1");
  const [event] = await Promise.race([
    once(server, "listening").then(() => ["listening"]),
    once(server, "error").then(() => ["error"]),
  ]);
  server.close();
  return event === "listening";
}

describe("fanwatch start with the embedded broker", { timeout: 180_000 }, () => {
  let system: StartedSystem;
  let collector: Collector;
  let taken: ReturnType<typeof createTcpServer>;
  let mqttPort: number;

  before(async () => {
    // The broker's usual port is taken (as by a Mosquitto already running): start must still work.
    mqttPort = await freePort();
    taken = createTcpServer().listen(mqttPort, "127.0.0.1");
    await once(taken, "listening");
    system = await startFanwatch(
      ["--mqtt-port", String(mqttPort), "--fans", "6", "--faulty", "2", "--degrading", "1", "--interval", "400"],
      { MQTT_URL: "" },
    );
    collector = await Collector.start(system.brokerUrl, ["fan/anomaly"]);
  });
  after(async () => {
    await collector?.stop();
    if (system?.child.exitCode === null) system.child.kill("SIGKILL");
    taken?.close();
  });

  it("says the broker's port was taken and how to use that broker instead", () => {
    assert.match(system.output(), new RegExp(`port ${mqttPort} is taken`));
    assert.match(system.output(), new RegExp(`MQTT_URL=mqtt://127.0.0.1:${mqttPort} npm start`));
    assert.notEqual(new URL(system.brokerUrl).port, String(mqttPort));
    // The line to hear the topics names the port the broker really has.
    const port = new URL(system.brokerUrl).port;
    assert.match(system.output(), new RegExp(`mosquitto_sub -h 127\\.0\\.0\\.1 -p ${port} -t 'fan/#' -v`));
  });

  it("predicts every simulated fan within 30 s and flags the faulty ones", async () => {
    const shares = await faultShares(collector, 6, 8);
    for (const id of ["1", "2"])
      assert.ok((shares.get(id) ?? 0) > 0.5, `faulty fan ${id}: ${shares.get(id)} of its readings flagged`);
    for (const id of ["4", "5", "6"])
      assert.ok((shares.get(id) ?? 1) < 0.3, `healthy fan ${id}: ${shares.get(id)} of its readings flagged`);
  });

  it("counts the fans by health state on the status line: the two faulty fans in alarm", async () => {
    // Printed every 10 s when the output is not a terminal. The 6 fans are the registry's (the
    // simulated fleet registered at start): by state, or not reported yet, pending beside.
    const line =
      /([\d.]+) readings\/s · \d+ predictions · 6 fans: (\d+) ok, (\d+) warning, (\d+) alarm, (\d+) cleared, (\d+) silent(?:, (\d+) not reported)?; (\d+) pending · (\d+) unacknowledged · replicas: ([^·]+) · \d+ dead letters/g;
    const last = await eventuallyValue(
      "a status line with the two faulty fans in alarm",
      async () => [...system.output().matchAll(line)].pop(),
      (found) => found !== undefined && Number(found[4]) >= 2,
      { timeoutMs: 60_000, paceMs: 500 },
    ).catch(() => [...system.output().matchAll(line)].pop());
    assert.ok(
      last !== undefined && Number(last[4]) >= 2,
      `the status line says ${last?.[0] ?? "nothing"}:\n${system.output().slice(-2000)}`,
    );
    const counts = last.slice(2, 8).map((n) => Number(n ?? 0));
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      6,
      "every fan counted once: the numbers add up",
    );
    assert.equal(Number(last[8]), 0, "nobody's fan is pending");
    assert.ok(Number(last[9]) >= 2, "the new alarms are unacknowledged");
  });

  it("shows each function's replicas on the status line, as the gateway reports them", async () => {
    const auth = { authorization: `Basic ${Buffer.from(`admin:${system.password}`).toString("base64")}` };
    const functions = (await (
      await fetch(`${system.gatewayUrl}/system/functions`, { headers: auth })
    ).json()) as Array<{ name: string; replicas: number; availableReplicas: number }>;
    const expected = functions
      .map(
        (f) => `${f.name} ${f.availableReplicas === f.replicas ? f.replicas : `${f.availableReplicas}/${f.replicas}`}`,
      )
      .join(", ");
    assert.deepEqual(functions.map((f) => f.name).sort(), ["health", "predict", "score"]);
    // The status line printed after this read says what the gateway said (read every 2 s, printed every 10 s).
    const printed = system.output().length;
    const line = await waitForOutputAfter(system, printed, /· replicas: ([^·]+) · \d+ dead letters/);
    assert.equal(line[1]?.trim(), expected);
  });

  it("serves the OpenFaaS gateway API: functions, /system with basic auth, healthz, metrics", async () => {
    const score = await fetch(`${system.gatewayUrl}/function/score`, {
      method: "POST",
      body: JSON.stringify({ params: [420, 53, 240, 58] }),
    });
    assert.equal(score.status, 200);
    assert.ok(score.headers.get("x-call-id"));
    assert.equal(((await score.json()) as { fault: number }).fault, 1);
    assert.equal((await fetch(`${system.gatewayUrl}/system/functions`)).status, 401);
    const auth = { authorization: `Basic ${Buffer.from(`admin:${system.password}`).toString("base64")}` };
    const functions = (await (
      await fetch(`${system.gatewayUrl}/system/functions`, { headers: auth })
    ).json()) as Array<{
      name: string;
      annotations: Record<string, string>;
      labels: Record<string, string>;
      availableReplicas: number;
    }>;
    assert.deepEqual(functions.map((f) => f.name).sort(), ["health", "predict", "score"]);
    const predict = functions.find((f) => f.name === "predict");
    assert.equal(predict?.annotations.topic, "fan/messages,fan/messages/+");
    assert.equal(predict?.labels["com.openfaas.scale.max"], "5");
    assert.equal(predict?.availableReplicas, 1);
    assert.equal(
      (await fetch(`${system.gatewayUrl}/system/functions`, { method: "POST", headers: auth, body: "{}" })).status,
      501,
    );
    assert.equal((await fetch(`${system.gatewayUrl}/function/nope`, { method: "POST" })).status, 404);
    assert.equal(await (await fetch(`${system.gatewayUrl}/healthz`)).text(), "OK");
    assert.match(
      await (await fetch(`${system.gatewayUrl}/metrics`)).text(),
      /gateway_function_invocation_total\{function_name="predict",code="200"\} [1-9]/,
    );
  });

  it("runs async invocations and posts the result to X-Callback-Url", async () => {
    const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        received.push({ headers: req.headers, body });
        res.end();
      });
    }).listen(0, "127.0.0.1");
    await once(receiver, "listening");
    after(() => receiver.close());
    const callback = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/done`;
    const accepted = await fetch(`${system.gatewayUrl}/async-function/score`, {
      method: "POST",
      headers: { "x-callback-url": callback },
      body: JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] }),
    });
    assert.equal(accepted.status, 202);
    const callId = accepted.headers.get("x-call-id");
    await eventually("the callback", () => received.length > 0, 10_000);
    assert.equal(received[0]?.headers["x-call-id"], callId);
    assert.equal(received[0]?.headers["x-function-status"], "200");
    assert.equal((JSON.parse(received[0]?.body ?? "{}") as { fault: number }).fault, 0);
  });

  it("opens the connector's health server on --host (127.0.0.1) only", async () => {
    const port = Number(
      /connector routing .* \(health on http:\/\/127\.0\.0\.1:(\d+)\/healthz\)/.exec(system.output())?.[1],
    );
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    assert.deepEqual(listeningOn(port), ["127.0.0.1"]);
  });

  it("restarts a function that dies, and predictions go on", async () => {
    const pid = execFileSync("pgrep", ["-P", String(system.child.pid), "-f", "function predict"])
      .toString()
      .trim()
      .split("\n")[0];
    process.kill(Number(pid), "SIGKILL");
    const before = collector.on("fan/anomaly").length;
    await collector.waitFor("fan/anomaly", before + 30, 30_000);
    assert.match(system.output(), /predict exited \(SIGKILL\); restarting/);
  });

  it("stops everything on Ctrl-C with exit code 0, frees its ports, and starts again at once", async () => {
    // A page left open whose browser has stopped reading its event stream must not hold the stop up.
    const page = connect(Number(new URL(system.gatewayUrl).port), "127.0.0.1");
    page.on("error", () => {});
    page.write(`GET /ui/events HTTP/1.1\r\nHost: ${new URL(system.gatewayUrl).host}\r\n\r\n`);
    await once(page, "data");
    page.pause();
    const { code } = await system.interrupt();
    page.destroy();
    assert.equal(code, 0, system.output());
    const gatewayPort = Number(new URL(system.gatewayUrl).port);
    const brokerPort = Number(new URL(system.brokerUrl).port);
    assert.ok(await portIsFree(gatewayPort), "the gateway's port is free");
    assert.ok(await portIsFree(brokerPort), "the broker's port is free");
    const again = await startFanwatch(
      ["--mqtt-port", String(brokerPort), "--fans", "0"],
      { MQTT_URL: "" },
      gatewayPort,
    );
    assert.equal(new URL(again.brokerUrl).port, String(brokerPort));
    const second = await again.interrupt();
    assert.equal(second.code, 0, `signal ${second.signal}:\n${again.output()}`);
  });
});

describe("fanwatch start with MQTT_URL pointing to a real Mosquitto", { timeout: 120_000 }, () => {
  let broker: Broker;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await broker?.stop();
  });

  it("uses that broker: every fan predicted, faulty ones flagged", async () => {
    const collector = await Collector.start(broker.url, ["fan/anomaly"]);
    const system = await startFanwatch(["--fans", "4", "--faulty", "1", "--degrading", "0", "--interval", "400"], {
      MQTT_URL: broker.url,
    });
    try {
      assert.match(system.output(), new RegExp(`broker {3}${broker.url.replace(/[.]/g, "\\.")}`));
      assert.doesNotMatch(system.output(), /embedded/);
      const shares = await faultShares(collector, 4, 8);
      assert.ok((shares.get("1") ?? 0) > 0.5, `faulty fan 1: ${shares.get("1")}`);
      assert.ok((shares.get("4") ?? 1) < 0.3, `healthy fan 4: ${shares.get("4")}`);
    } finally {
      assert.equal((await system.interrupt()).code, 0);
      await collector.stop();
    }
  });
});

describe("fanwatch start --fans 3 with the default fleet shapes", { timeout: 120_000 }, () => {
  it("scales the default 2 faulty and 2 degrading down to the fleet and predicts every fan", async () => {
    const system = await startFanwatch(["--fans", "3", "--interval", "400", "--mqtt-port", String(await freePort())]);
    let collector: Collector | undefined;
    try {
      assert.match(system.output(), /fleet {4}3 simulated fans \(1 faulty, 1 degrading over 10 min\)/);
      collector = await Collector.start(system.brokerUrl, ["fan/anomaly"]);
      const shares = await faultShares(collector, 3, 4);
      assert.ok((shares.get("1") ?? 0) > 0.5, `faulty fan 1: ${shares.get("1")}`);
    } finally {
      await collector?.stop();
      assert.equal((await system.interrupt()).code, 0, system.output());
    }
  });
});

describe("fanwatch start: alarms reach a person", { timeout: 180_000 }, () => {
  const secret = "a-signing-key-of-our-own-0123456789";
  let system: StartedSystem;
  let receiver: WebhookReceiver;
  let dir: string;

  before(async () => {
    receiver = await WebhookReceiver.start("/fanwatch");
    dir = await mkdtemp(join(tmpdir(), "fanwatch-start-notify-"));
    // A trailing newline, as `echo` writes it: the key is the file's text without it.
    await writeFile(join(dir, "secret"), `${secret}\n`);
    system = await startFanwatch(
      [
        "--fans",
        "3",
        "--faulty",
        "1",
        "--degrading",
        "0",
        "--interval",
        "400",
        "--mqtt-port",
        String(await freePort()),
      ],
      { NOTIFY_WEBHOOK_URL: receiver.url, NOTIFY_WEBHOOK_SECRET_FILE: join(dir, "secret"), SITE: "plant-north" },
    );
  });
  after(async () => {
    if (system?.child.exitCode === null) system.child.kill("SIGKILL");
    await receiver?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("says where the notifier sends: the Alertmanager it started and the webhook", () => {
    assert.match(system.output(), /alerts to Alertmanager: \S*prometheus-alertmanager on http:\/\/127\.0\.0\.1:\d+/);
    const line = /^notifier sending site plant-north's alarms to (.*)$/m.exec(system.output())?.[1] ?? "";
    assert.match(line, /Alertmanager at http:\/\/127\.0\.0\.1:\d+/);
    assert.ok(line.includes(`http://127.0.0.1:${receiver.port}`), line);
  });

  it("sends the faulty fan's alarm to the webhook, signed, with its site and a link to the fan", async () => {
    const alarm = await eventuallyValue(
      "fan 1's alarm at the webhook",
      async () => receiver.delivered.find((r) => r.json.deviceID === "1" && r.json.event === "alarm"),
      (found) => found !== undefined,
      { timeoutMs: 60_000, paceMs: 200 },
    );
    assert.ok(alarm !== undefined);
    assert.ok(validSignature(alarm, secret), "the signature is the HMAC of the body with the key in the file");
    assert.equal(alarm.headers["x-fanwatch-delivery"], alarm.json.id);
    assert.equal(alarm.json.site, "plant-north");
    assert.equal(alarm.json.link, `${system.gatewayUrl}/?fan=1`);
    // The link opens the page with the fan: the query survives the redirect to /ui/.
    const res = await fetch(String(alarm.json.link), { redirect: "manual" });
    assert.equal(res.headers.get("location"), "/ui/?fan=1");
  });

  it("shows what Alertmanager notified on the page: the alarm of fan 1", async () => {
    const listed = await eventuallyValue(
      "fan 1's FanAlarm among the page's notifications",
      async () => {
        const frame = await firstFrame(`${system.gatewayUrl}/ui/events`);
        return (frame.notifications as Array<Record<string, string>>).find(
          (n) => n.deviceID === "1" && n.alertname === "FanAlarm",
        );
      },
      (found) => found !== undefined,
      { timeoutMs: 60_000, paceMs: 1_000 },
    );
    assert.equal(listed?.status, "firing");
  });

  it("stops the notifier and Alertmanager with everything else on Ctrl-C", async () => {
    const am = /prometheus-alertmanager on http:\/\/127\.0\.0\.1:(\d+)/.exec(system.output())?.[1];
    assert.equal((await system.interrupt()).code, 0, system.output());
    assert.ok(await portIsFree(Number(am)), `Alertmanager's port ${am} is free`);
  });
});

/** The page's first server-sent frame, parsed. */
async function firstFrame(url: string): Promise<Record<string, unknown>> {
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString("utf8");
      const frame = /^data: (.*)$/m.exec(text);
      if (frame !== null && text.includes("\n\n")) return JSON.parse(frame[1] as string) as Record<string, unknown>;
    }
  } finally {
    controller.abort();
  }
  throw new Error(`no frame from ${url}`);
}
