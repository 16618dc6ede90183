import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReplicaSet, type Lease, type ReplicaProcess } from "../../runtime/gateway/replica-set.js";

/**
 * A replica that runs nothing: it listens when the test says (`listen`), or exits before it does
 * (`fail`), and can die and come back as a FunctionProcess restarted after a crash does.
 */
class StandInReplica implements ReplicaProcess {
  ready = false;
  startedAt: Date | undefined;
  stops = 0;
  readonly url: string;
  readonly instance: string;
  listen: () => void = () => {};
  fail: (error: Error) => void = () => {};

  constructor(n: number) {
    this.url = `http://127.0.0.1:${9000 + n}`;
    this.instance = `predict-${n}`;
  }

  start(): Promise<void> {
    this.startedAt = new Date();
    return new Promise<void>((resolve, reject) => {
      this.listen = () => {
        this.ready = true;
        resolve();
      };
      this.fail = reject;
    });
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.stops++;
  }
}

function replicaSet() {
  const replicas: StandInReplica[] = [];
  const lines: string[] = [];
  const clock = { time: 0 };
  const set = new ReplicaSet({
    name: "predict",
    env: {},
    onLine: (_name, line) => void lines.push(line),
    replica: () => {
      const replica = new StandInReplica(replicas.length);
      replicas.push(replica);
      return replica;
    },
    now: () => clock.time,
  });
  /** Scales to `count` with every new replica listening at once. */
  const scaleTo = async (count: number) => {
    const before = replicas.length;
    const scaling = set.scaleTo(count);
    for (const r of replicas.slice(before)) r.listen();
    await scaling;
  };
  /** Leases one request; fails the test if no replica is ready. */
  const lease = (): Lease => set.lease() ?? assert.fail("no replica ready");
  return { set, replicas, lines, clock, scaleTo, lease };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("a function's replica set", () => {
  it("starts the replicas it is scaled to and is ready once every one of them listens", async () => {
    const { set, replicas } = replicaSet();
    let scaled = false;
    const scaling = set.scaleTo(2).then(() => (scaled = true));
    await settled();
    assert.deepEqual([set.replicas, set.availableReplicas, scaled], [2, 0, false]);
    assert.equal(set.lease(), undefined, "no replica to send a request to yet");
    replicas[0]?.listen();
    await settled();
    assert.deepEqual([set.availableReplicas, scaled], [1, false]);
    replicas[1]?.listen();
    await scaling;
    assert.deepEqual([set.replicas, set.availableReplicas], [2, 2]);
  });

  it("says so when a replica exits before it listens", async () => {
    const { set, replicas } = replicaSet();
    const scaling = set.scaleTo(1);
    replicas[0]?.fail(new Error("predict exited before it was ready"));
    await assert.rejects(scaling, /predict exited before it was ready/);
    assert.equal(set.replicas, 1, "it stays a member: its process restarts it");
  });

  it("sends each request to the ready replica with the fewest in flight, and spreads light load in turn", async () => {
    const { replicas, scaleTo, lease } = replicaSet();
    await scaleTo(3);
    const first = [lease(), lease(), lease()];
    assert.deepEqual(
      first.map((l) => l.url).sort(),
      replicas.map((r) => r.url),
      "one each",
    );
    first[1]?.release();
    assert.equal(lease().url, first[1]?.url, "the one that finished is the least loaded");
    for (const l of first) l.release();
  });

  it("sends nothing to a replica that died until it listens again, and keeps it as a member meanwhile", async () => {
    const { set, replicas, scaleTo, lease } = replicaSet();
    await scaleTo(2);
    const [dead, alive] = replicas as [StandInReplica, StandInReplica];
    dead.ready = false; // exited: its FunctionProcess is restarting it
    const urls = Array.from({ length: 4 }, () => lease().url);
    assert.deepEqual(new Set(urls), new Set([alive.url]));
    assert.deepEqual([set.replicas, set.availableReplicas], [2, 1]);
    dead.ready = true; // restarted and listening
    assert.equal(lease().url, dead.url, "back, and the least loaded");
  });

  it("scales down by draining the least loaded replica: it takes no new request, answers what it holds, then stops", async () => {
    const { set, replicas, lines, scaleTo, lease } = replicaSet();
    await scaleTo(2);
    const held = [lease(), lease(), lease()]; // two on one replica, one on the other
    const busy = replicas.find((r) => held.filter((l) => l.url === r.url).length === 2) as StandInReplica;
    const light = replicas.find((r) => r !== busy) as StandInReplica;
    await set.scaleTo(1);
    assert.deepEqual([set.replicas, set.inFlight], [1, 3], "its request still counts while it answers");
    assert.equal(light.stops, 0, "not stopped under a request");
    assert.ok(
      lines.some((l) => l === `${light.instance} draining: 1 in flight, then it stops`),
      lines.join("\n"),
    );
    assert.deepEqual([lease().url, lease().url], [busy.url, busy.url], "new requests go to the replica that stays");
    held.find((l) => l.url === light.url)?.release();
    await settled();
    assert.equal(light.stops, 1, "stopped once it answered");
    assert.equal(busy.stops, 0);
  });

  it("measures the load of each period for the autoscaler: requests in flight on average, requests per second, p99 latency", async () => {
    const { set, clock, scaleTo, lease } = replicaSet();
    await scaleTo(2);
    set.sample(); // the period starts at 0
    const a = lease();
    lease(); // in flight for the whole period
    clock.time = 500;
    a.release(); // answered in 500 ms
    clock.time = 1_000;
    assert.deepEqual(set.sample(), { inFlight: 1.5, rate: 1, p99Ms: 500 });
    clock.time = 3_000;
    assert.deepEqual(set.sample(), { inFlight: 1, rate: 0, p99Ms: undefined }, "the next period starts afresh");
  });

  it("stops every replica, draining ones included", async () => {
    const { set, replicas, scaleTo, lease } = replicaSet();
    await scaleTo(3);
    const held = [lease(), lease(), lease()]; // one each: the replica that leaves is still answering
    await set.scaleTo(2);
    assert.deepEqual(
      replicas.map((r) => r.stops),
      [0, 0, 0],
    );
    await set.stop();
    assert.deepEqual(
      replicas.map((r) => r.stops),
      [1, 1, 1],
    );
    assert.equal(set.replicas, 0);
    for (const l of held) l.release();
  });
});
