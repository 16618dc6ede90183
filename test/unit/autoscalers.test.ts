import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { ConnectorAutoscaler } from "../../connectors/mqtt/autoscaler.js";
import type { FunctionStatus } from "../../connectors/mqtt/directory.js";
import type { FunctionLoad } from "../../connectors/mqtt/dispatcher.js";
import { createConnectorMetrics } from "../../connectors/mqtt/metrics.js";
import { readScaleLabels, type ScaleDecision } from "../../lib/openfaas/scaling.js";
import { Autoscaler, type CpuTimes } from "../../runtime/gateway/autoscaler.js";
import { ReplicaSet, type Lease } from "../../runtime/gateway/replica-set.js";

// Both autoscalers on a clock the test sets: decisions are taken when the test calls decide().

const labels = (min: number, max: number, factor: number): Record<string, string> => ({
  "com.openfaas.scale.min": String(min),
  "com.openfaas.scale.max": String(max),
  "com.openfaas.scale.factor": String(factor),
});

const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("the local gateway's autoscaler", () => {
  /** A function of `replicas` stand-in replicas (each listens at once), its autoscaler, and the decisions it reports. */
  async function scaled(replicas: number, functionLabels: Record<string, string>) {
    const clock = { time: 0 };
    const set = new ReplicaSet({
      name: "predict",
      env: {},
      onLine: () => {},
      now: () => clock.time,
      replica: () => {
        const replica = {
          ready: false,
          startedAt: new Date(),
          url: "http://127.0.0.1:9",
          instance: "predict-1",
          start: async () => void (replica.ready = true),
          stop: async () => void (replica.ready = false),
        };
        return replica;
      },
    });
    await set.scaleTo(replicas);
    let idle = 1; // the share of the machine's CPU idle since the last reading
    let cpu: CpuTimes = { idle: 0, total: 0 };
    const readCpu = () => (cpu = { idle: cpu.idle + 1_000 * idle, total: cpu.total + 1_000 });
    const decisions: Array<{ from: number } & Omit<ScaleDecision, "memory">> = [];
    const scaler = new Autoscaler(
      [{ name: "predict", bounds: readScaleLabels(functionLabels), set }],
      {
        intervalMs: 1_000,
        policy: { targetInFlight: 4, latencyMs: 1_000, scaleDownWindowMs: 60_000, minIdleCpu: 0.2 },
      },
      (_target, from, { replicas: to, direction, reason }) => decisions.push({ from, replicas: to, direction, reason }),
      readCpu,
    );
    const held: Lease[] = [];
    return {
      set,
      decisions,
      /** Takes the next decision `at` ms. */
      decide: async (at: number) => {
        clock.time = at;
        scaler.decide(at);
        await settled(); // the replicas it asked for start
      },
      /** Requests that stay in flight. */
      hold: (n: number) => held.push(...Array.from({ length: n }, () => set.lease() ?? assert.fail("no replica"))),
      setIdleCpu: (share: number) => (idle = share),
    };
  }

  it("adds replicas, by the labels' step, while each has more requests in flight than the target, up to max, and says why", async () => {
    const f = await scaled(1, labels(1, 3, 40)); // a step of ceil(3 × 40%) = 2
    f.hold(20);
    await f.decide(1_000);
    await f.decide(2_000);
    assert.deepEqual(f.decisions, [
      {
        from: 1,
        replicas: 3,
        direction: "up",
        reason: "over target: 20 in flight per replica (target 4), 0/s, p99 -",
      },
      {
        from: 3,
        replicas: 3,
        direction: "hold",
        reason: "over target at max 3: 6.67 in flight per replica (target 4), 0/s, p99 -",
      },
    ]);
    assert.equal(f.set.replicas, 3);
  });

  it("adds no replica while the machine's CPU is busy: it would get no core", async () => {
    const f = await scaled(1, labels(1, 5, 20));
    f.hold(10);
    f.setIdleCpu(0.1);
    await f.decide(1_000);
    assert.equal(f.decisions[0]?.direction, "hold");
    assert.match(f.decisions[0]?.reason ?? "", /the machine's CPU is 90% busy \(a replica needs 20% idle\)/);
    assert.equal(f.set.replicas, 1);
  });

  it("removes one replica once the load has stayed low for the whole window, then waits a window again", async () => {
    const f = await scaled(3, labels(1, 5, 20));
    await f.decide(1_000);
    await f.decide(61_000);
    await f.decide(62_000);
    assert.deepEqual(
      f.decisions.map((d) => [d.from, d.replicas, d.reason.replace(/: .*/, "")]),
      [
        [3, 3, "low for 0 s of the 60 s window"],
        [3, 2, "low for 60 s (window 60 s)"],
        [2, 2, "low for 1 s of the 60 s window"],
      ],
    );
    assert.equal(f.set.replicas, 2);
  });

  it("leaves alone a function whose labels disable scaling (min = max)", async () => {
    const f = await scaled(2, labels(2, 2, 20));
    f.hold(50);
    await f.decide(1_000);
    assert.deepEqual([f.decisions, f.set.replicas], [[], 2]);
  });
});

describe("the connector's autoscaler", () => {
  let server: Server;
  let gatewayUrl: string;
  const requests: Array<{ path: string; authorization: string | undefined; body: unknown }> = [];
  let status = 202;
  before(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        requests.push({ path: req.url ?? "", authorization: req.headers.authorization, body: JSON.parse(body) });
        res.writeHead(status).end(status === 202 ? "" : "the gateway is restarting");
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    gatewayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** An autoscaler for `predict` with `replicas`, the dispatcher's load as the test sets it, and its log. */
  function connectorScaler(replicas: number, functionLabels: Record<string, string> = labels(1, 5, 20)) {
    requests.length = 0;
    status = 202;
    const clock = { time: 1_000_000 };
    const directory = {
      statuses: new Map<string, FunctionStatus>([
        ["predict", { name: "predict", replicas, availableReplicas: replicas, labels: functionLabels }],
      ]),
      refreshedAt: 0,
    };
    const load: FunctionLoad = { batches: 0, queued: 0, completed: 0 };
    const events: Array<Record<string, unknown>> = [];
    const scaler = new ConnectorAutoscaler({
      config: { intervalMs: 5_000, windowMs: 60_000, targetInFlight: 4 },
      gatewayUrl,
      basicAuth: { user: "admin", password: "s3cret" },
      batchSize: 100,
      timeoutMs: 10_000,
      directory,
      load: () => new Map([["predict", { ...load }]]),
      metrics: createConnectorMetrics({ inFlight: () => 0, pending: () => 0, held: () => 0 }),
      log: pino(
        { level: "info" },
        { write: (line: string) => void events.push(JSON.parse(line) as Record<string, unknown>) },
      ),
      clock: { now: () => clock.time },
    });
    return {
      scaler,
      directory,
      load,
      events,
      /** Samples the load as it is now, then decides `afterMs` later. */
      decide: async (afterMs: number) => {
        scaler.sample();
        clock.time += afterMs;
        await scaler.decide();
      },
      /** The gateway lists `n` replicas of predict, as read now. */
      gatewayShows: (n: number) => {
        directory.statuses.set("predict", {
          name: "predict",
          replicas: n,
          availableReplicas: n,
          labels: functionLabels,
        });
        directory.refreshedAt = clock.time;
      },
      close: () => scaler.stop(),
    };
  }

  it("asks the gateway for another replica when work waits for the function, and logs why", async () => {
    const c = connectorScaler(1);
    Object.assign(c.load, { batches: 4, queued: 300 }); // 4 in flight and 3 batches' worth waiting
    try {
      await c.decide(5_000);
      assert.deepEqual(requests, [
        {
          path: "/system/scale-function/predict",
          authorization: `Basic ${Buffer.from("admin:s3cret").toString("base64")}`,
          body: { serviceName: "predict", replicas: 2 },
        },
      ]);
      const requested = c.events.find((e) => e.event === "scale_requested");
      assert.deepEqual([requested?.from, requested?.replicas, requested?.direction], [1, 2, "up"]);
      assert.match(String(requested?.reason), /^over target: 7 in flight per replica \(target 4\)/);
    } finally {
      c.close();
    }
  });

  it("counts on the replicas it asked for until the gateway shows them, rather than asking for the same again", async () => {
    const c = connectorScaler(1);
    Object.assign(c.load, { batches: 4, queued: 300 });
    try {
      await c.decide(5_000); // asks for 2
      await c.decide(5_000); // the gateway still lists 1: from 2, 3.5 per replica is within the target
      assert.deepEqual(
        requests.map((r) => r.body),
        [{ serviceName: "predict", replicas: 2 }],
      );
    } finally {
      c.close();
    }
  });

  it("removes one replica after the window of low load, and starts the window again when someone else scaled the function", async () => {
    const c = connectorScaler(3);
    try {
      await c.decide(5_000); // low from now
      c.gatewayShows(2); // scaled by hand, or by the other connector replica
      await c.decide(55_000);
      await c.decide(5_000); // 60 s of low load, but only 5 s since the change was seen
      assert.equal(requests.length, 0, "the window started again at the change");
      await c.decide(55_000);
      assert.deepEqual(
        requests.map((r) => r.body),
        [{ serviceName: "predict", replicas: 1 }],
      );
    } finally {
      c.close();
    }
  });

  it("does not scale a function whose labels OpenFaaS CE would refuse, and says why once", async () => {
    const c = connectorScaler(1, labels(1, 9, 20));
    Object.assign(c.load, { batches: 8, queued: 1_000 });
    try {
      await c.decide(5_000);
      await c.decide(5_000);
      assert.equal(requests.length, 0, "no scale request");
      const skipped = c.events.filter((e) => e.event === "autoscale_skipped");
      assert.equal(skipped.length, 1);
      assert.match(String(skipped[0]?.reason), /com\.openfaas\.scale\.max is 9: OpenFaaS CE runs at most 5 replicas/);
    } finally {
      c.close();
    }
  });

  it("logs a scale request the gateway refuses, and decides again next time", async () => {
    const c = connectorScaler(1);
    Object.assign(c.load, { batches: 4, queued: 300 });
    try {
      status = 500;
      await c.decide(5_000);
      const failed = c.events.find((e) => e.event === "scale_failed");
      assert.match(String(failed?.err), /the gateway answered 500: the gateway is restarting/);
      status = 202;
      await c.decide(5_000);
      assert.deepEqual(
        requests.map((r) => r.body),
        [
          { serviceName: "predict", replicas: 2 },
          { serviceName: "predict", replicas: 2 },
        ],
        "asked again: the refusal did not count as asked",
      );
    } finally {
      c.close();
    }
  });
});
