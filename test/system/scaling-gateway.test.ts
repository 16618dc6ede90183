import assert from "node:assert/strict";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { eventually } from "../support/eventually.js";
import { startMosquitto, type Broker } from "../support/mosquitto.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort, spawnCli, terminate, waitForOutput } from "../support/process.js";

/**
 * The local gateway's replicas, against real function processes: bounds, balancing by least in
 * flight, draining on scale-down, the scale API, a replica killed outright, and the autoscaler.
 * A "held" request is one whose body is sent in part: it is in flight on its replica until the
 * test sends the rest, which lets a test know where load is without any timing.
 */

const SCORE_BODY = JSON.stringify({ params: [612.3, 40.1, 151.7, 48.9] });

interface Answer {
  status: number;
  body: string;
  instance: string;
}

/** A stack.yml with the repository's functions named in `labels`, those labels, and time limits long enough to hold a request. */
function stackFile(dir: string, labels: Record<string, Record<string, string>>): string {
  const stack = parse(readFileSync(join(REPO_ROOT, "stack.yml"), "utf8")) as {
    functions: Record<string, { labels: Record<string, string>; environment: Record<string, string> }>;
  };
  stack.functions = Object.fromEntries(
    Object.entries(labels).map(([name, own]) => {
      const fn = stack.functions[name];
      assert.ok(fn !== undefined, name);
      return [
        name,
        {
          ...fn,
          labels: own,
          environment: { ...fn.environment, read_timeout: "120s", write_timeout: "121s", exec_timeout: "120s" },
        },
      ];
    }),
  );
  const file = join(dir, "stack.yml");
  writeFileSync(file, stringify(stack));
  return file;
}

const scaleLabels = (min: number, max: number, factor: number) => ({
  "com.openfaas.scale.min": String(min),
  "com.openfaas.scale.max": String(max),
  "com.openfaas.scale.factor": String(factor),
});

/** A request whose body is sent in part; `finish` sends the rest and resolves with the answer. */
function hold(url: string, body = SCORE_BODY): { finish: () => Promise<Answer> } {
  let answered: (a: Answer) => void = () => {};
  let failed: (e: Error) => void = () => {};
  const answer = new Promise<Answer>((resolve, reject) => ((answered = resolve), (failed = reject)));
  const req = request(
    url,
    {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
    },
    (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () =>
        answered({ status: res.statusCode ?? 0, body: text, instance: String(res.headers["x-function-instance"]) }),
      );
    },
  );
  req.on("error", failed);
  req.write(body.slice(0, 1));
  return {
    finish: () => {
      req.end(body.slice(1));
      return answer;
    },
  };
}

class Gateway {
  output = "";
  constructor(
    readonly url: string,
    readonly child: ChildProcessWithoutNullStreams,
    private readonly auth: Record<string, string>,
  ) {
    child.stdout.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (this.output += d.toString()));
  }

  static async start(stack: string, env: Record<string, string>, broker: Broker): Promise<Gateway> {
    const port = await freePort();
    const child = spawnCli(["gateway", "--port", String(port), "--stack", stack], {
      MQTT_URL: broker.url,
      NATS_URL: "",
      GATEWAY_PASSWORD: "scale-pw",
      LOG_LEVEL: "info",
      ...env,
    });
    const gateway = new Gateway(`http://127.0.0.1:${port}`, child, {
      authorization: `Basic ${Buffer.from("admin:scale-pw").toString("base64")}`,
    });
    await waitForOutput(child, /gateway running on/, 90_000);
    return gateway;
  }

  async call(name: string): Promise<Answer> {
    const response = await fetch(`${this.url}/function/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: SCORE_BODY,
    });
    return {
      status: response.status,
      body: await response.text(),
      instance: response.headers.get("x-function-instance") ?? "",
    };
  }

  async replicas(name: string): Promise<{ replicas: number; availableReplicas: number }> {
    const { replicas, availableReplicas } = (await (
      await fetch(`${this.url}/system/function/${name}`, { headers: this.auth })
    ).json()) as { replicas: number; availableReplicas: number };
    return { replicas, availableReplicas };
  }

  scale(name: string, replicas: unknown, auth = true): Promise<Response> {
    return fetch(`${this.url}/system/scale-function/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? this.auth : {}) },
      body: JSON.stringify({ serviceName: name, replicas }),
    });
  }

  /** A metric's value for a function, from /metrics. */
  async metric(name: string, labels: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) => l.startsWith(`${name}{`) && labels.split(",").every((label) => l.includes(label)));
    return line === undefined ? 0 : Number(line.split(" ").at(-1));
  }

  async logs(name: string): Promise<Array<{ instance: string; text: string }>> {
    const text = await (await fetch(`${this.url}/system/logs?name=${name}`, { headers: this.auth })).text();
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { instance: string; text: string });
  }

  /** The gateway's own JSON log lines of `event`. */
  events<T>(event: string): T[] {
    return this.output
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes(`"event":"${event}"`))
      .map((l) => JSON.parse(l) as T);
  }
}

/**
 * Waits until `check` holds, asking again as the state changes. A check that throws ends the wait
 * (the gateway answered something unexpected: the outcome will not come); so does the deadline,
 * within the tests' own timeout so that the failure names what was awaited.
 */
function until(what: string, check: () => Promise<boolean>): Promise<void> {
  return eventually(what, check, { onError: "fail", timeoutMs: 150_000, paceMs: 50 });
}

describe("gateway replicas, set by hand", { timeout: 180_000 }, () => {
  let broker: Broker;
  let dir: string;
  let gw: Gateway;

  // Every test has its own gateway (and broker): none starts from the replicas another left.
  beforeEach(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), "fanwatch-scale-"));
    // An autoscaler that never acts within the test: these replicas change by hand only.
    gw = await Gateway.start(
      stackFile(dir, { score: scaleLabels(1, 3, 20), health: scaleLabels(1, 5, 20) }),
      { GATEWAY_SCALE_TARGET_INFLIGHT: "1000", GATEWAY_SCALE_DOWN_WINDOW_MS: "3600000" },
      broker,
    );
  });
  afterEach(async () => {
    if (gw !== undefined) await terminate(gw.child);
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts a function at scale.min, and its scale API needs auth, refuses counts outside the labels and takes 0 and back", async () => {
    assert.deepEqual(await gw.replicas("score"), { replicas: 1, availableReplicas: 1 });
    assert.equal((await gw.scale("score", 2, false)).status, 401);
    const above = await gw.scale("score", 4);
    assert.equal(above.status, 400);
    assert.match(await above.text(), /between com\.openfaas\.scale\.min 1 and com\.openfaas\.scale\.max 3, not 4/);
    assert.equal((await gw.scale("score", -1)).status, 400);
    assert.equal((await gw.scale("score", "two")).status, 400);
    assert.equal((await gw.scale("score", 0)).status, 202);
    assert.deepEqual(await gw.replicas("score"), { replicas: 0, availableReplicas: 0 });
    const down = await gw.call("score");
    assert.equal(down.status, 502);
    assert.match(down.body, /score is not reachable \(scaled to 0\)/);
    assert.equal((await gw.scale("score", 2)).status, 202);
    assert.deepEqual(await gw.replicas("score"), { replicas: 2, availableReplicas: 2 });
    assert.equal(await gw.metric("gateway_service_count", 'function_name="score"'), 2);
    assert.equal((await gw.call("score")).status, 200);
  });

  it("runs one replica of a function that keeps its state in NATS when there is no NATS (its state is in its process)", async () => {
    assert.match(gw.output, /health keeps its state in memory without NATS: 1 replica, not autoscaled/);
    assert.deepEqual(await gw.replicas("health"), { replicas: 1, availableReplicas: 1 });
    const refused = await gw.scale("health", 2);
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /not 2/);
  });

  it("sends each request to the replica with the fewest in flight, and a removed replica answers what it holds before it stops", async () => {
    assert.equal((await gw.scale("score", 2)).status, 202);
    assert.deepEqual(await gw.replicas("score"), { replicas: 2, availableReplicas: 2 });
    const first = hold(`${gw.url}/function/score`);
    await until(
      "the held request is in flight",
      async () => (await gw.metric("gateway_function_inflight", 'function_name="score"')) === 1,
    );
    // Round robin would alternate; least in flight sends every one to the other, idle replica.
    const fast: string[] = [];
    for (let i = 0; i < 4; i++) fast.push((await gw.call("score")).instance);
    assert.equal(new Set(fast).size, 1, `served by ${fast.join(", ")}`);
    const second = hold(`${gw.url}/function/score`);
    await until(
      "both held requests are in flight",
      async () => (await gw.metric("gateway_function_inflight", 'function_name="score"')) === 2,
    );

    // Each replica now holds one request: whichever is removed is draining one.
    assert.equal((await gw.scale("score", 1)).status, 202);
    assert.deepEqual(await gw.replicas("score"), { replicas: 1, availableReplicas: 1 });
    const kept = (await gw.call("score")).instance;
    const [a, b] = await Promise.all([first.finish(), second.finish()]);
    assert.deepEqual([a.status, b.status], [200, 200], `${a.body} ${b.body}`);
    assert.equal(b.instance, fast[0], "the second held request went to the replica the fast ones did");
    assert.notEqual(a.instance, b.instance);
    const removed = a.instance === kept ? b.instance : a.instance;
    await until(`${removed} stops`, async () =>
      (await gw.logs("score")).some((m) => m.instance === removed && /score stopped/.test(m.text)),
    );
    assert.equal((await gw.call("score")).instance, kept);
    assert.equal(await gw.metric("gateway_function_inflight", 'function_name="score"'), 0);
  });

  it("replaces a replica killed with SIGKILL, and takes requests on the new one", async () => {
    assert.equal((await gw.scale("score", 2)).status, 202);
    const served = new Set<string>();
    await until("both replicas to serve a call", async () => served.add((await gw.call("score")).instance).size >= 2);
    const [victim, survivor] = [...served] as [string, string];
    const known = new Set((await gw.logs("score")).map((m) => m.instance));
    process.kill(Number(victim.split("-").at(-1)), "SIGKILL");
    await until("a new replica listens", async () =>
      (await gw.logs("score")).some((m) => /score listening on port/.test(m.text) && !known.has(m.instance)),
    );
    await until("both replicas are available", async () => (await gw.replicas("score")).availableReplicas === 2);
    // Only answers count: a call sent to the killed replica before the gateway saw it die gets 502 (the connector retries those).
    const after = new Set<string>();
    await until("both replicas to answer", async () => {
      const answer = await gw.call("score");
      if (answer.status === 200) after.add(answer.instance);
      return after.size >= 2;
    });
    assert.ok(after.has(survivor));
    assert.ok(!after.has(victim), [...after].join(", "));
    assert.deepEqual(await gw.replicas("score"), { replicas: 2, availableReplicas: 2 });
  });
});

interface ScaleEvent {
  source: string;
  function: string;
  direction: string;
  from: number;
  to: number;
  reason: string;
}

describe("the gateway's autoscaler", { timeout: 180_000 }, () => {
  let broker: Broker;
  let dir: string;
  let gw: Gateway;

  before(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), "fanwatch-autoscale-"));
    // predict: factor 0; health: min = max (without NATS it runs one replica whatever its labels).
    const stack = stackFile(dir, {
      score: scaleLabels(1, 3, 20),
      predict: scaleLabels(2, 4, 0),
      health: scaleLabels(1, 1, 20),
    });
    gw = await Gateway.start(
      stack,
      {
        GATEWAY_SCALE_INTERVAL_MS: "200",
        GATEWAY_SCALE_DOWN_WINDOW_MS: "1000",
        GATEWAY_SCALE_TARGET_INFLIGHT: "1",
        GATEWAY_SCALE_MIN_IDLE_CPU: "0",
      },
      broker,
    );
  });
  after(async () => {
    if (gw !== undefined) await terminate(gw.child);
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("scales up under load step by step to scale.max, leaves functions with scaling disabled alone, and returns to scale.min one replica at a time", async () => {
    assert.deepEqual(await gw.replicas("score"), { replicas: 1, availableReplicas: 1 });
    assert.deepEqual(await gw.replicas("predict"), { replicas: 2, availableReplicas: 2 });
    assert.deepEqual(await gw.replicas("health"), { replicas: 1, availableReplicas: 1 });
    const rules = gw.events<{ function: string; enabled: boolean; msg: string }>("scaling");
    assert.deepEqual(rules.map((r) => [r.function, r.enabled]).sort(), [
      ["health", false],
      ["predict", false],
      ["score", true],
    ]);
    assert.match(rules.find((r) => r.function === "predict")?.msg ?? "", /2 replicas \(scaling disabled: factor 0\)/);

    // Overload the two whose scaling is disabled first, then score.
    const held = [
      ...Array.from({ length: 4 }, () => hold(`${gw.url}/function/predict`)),
      ...Array.from({ length: 2 }, () => hold(`${gw.url}/function/health`)),
    ];
    await until(
      "predict and health hold their requests",
      async () =>
        (await gw.metric("gateway_function_inflight", 'function_name="predict"')) === 4 &&
        (await gw.metric("gateway_function_inflight", 'function_name="health"')) === 2,
    );
    const scoreHeld = Array.from({ length: 6 }, () => hold(`${gw.url}/function/score`));
    await until("score reaches scale.max", async () => (await gw.replicas("score")).availableReplicas === 3);
    assert.deepEqual(await gw.replicas("predict"), { replicas: 2, availableReplicas: 2 });
    assert.deepEqual(await gw.replicas("health"), { replicas: 1, availableReplicas: 1 });

    const answers = await Promise.all([...held, ...scoreHeld].map((h) => h.finish()));
    for (const answer of answers) assert.notEqual(answer.status, 502, answer.body);
    await until("score is back at scale.min", async () => (await gw.replicas("score")).replicas === 1);

    const events = gw.events<ScaleEvent>("scale").filter((e) => e.source === "autoscaler");
    assert.ok(
      events.every((e) => e.function === "score"),
      JSON.stringify(events),
    );
    const steps = events.map((e) => `${e.direction} ${e.from}→${e.to}`);
    assert.deepEqual(steps, ["up 1→2", "up 2→3", "down 3→2", "down 2→1"]);
    for (const e of events.filter((e) => e.direction === "up"))
      assert.match(e.reason, /over target: [\d.]+ in flight per replica \(target 1\)/);
    for (const e of events.filter((e) => e.direction === "down"))
      assert.match(e.reason, /low for \d+ s \(window 1 s\)/);
    assert.equal(
      await gw.metric("gateway_scale_events_total", 'function_name="score",direction="up",source="autoscaler"'),
      2,
    );
    assert.equal(
      await gw.metric("gateway_scale_events_total", 'function_name="score",direction="down",source="autoscaler"'),
      2,
    );
    assert.equal(await gw.metric("gateway_service_count", 'function_name="score"'), 1);
  });
});
