import { FunctionProcess, type FunctionProcessOptions } from "./function-process.js";
import { LogRing } from "./logs.js";
import type { LoadSample } from "../../lib/openfaas/scaling.js";

export interface ReplicaSetOptions {
  name: string;
  /** The environment every replica sees. */
  env: NodeJS.ProcessEnv;
  /** Every line a replica prints, and the runner's notes about it (restarts, drains). */
  onLine: (name: string, line: string) => void;
  /** Makes a replica, not started yet. @default a FunctionProcess (a child process); tests pass a stand-in. */
  replica?: (options: FunctionProcessOptions) => ReplicaProcess;
  /** The time for the load samples, in ms. @default Date.now */
  now?: () => number;
}

/** What the set needs of a replica: a FunctionProcess does it with a child process. */
export type ReplicaProcess = Pick<FunctionProcess, "ready" | "url" | "instance" | "startedAt" | "start" | "stop">;

interface Replica {
  process: ReplicaProcess;
  inFlight: number;
  /** Removed: takes no new request, stops once what it holds is answered. */
  draining: boolean;
}

/** A request sent to one replica; `release` when its answer is relayed or it failed. */
export interface Lease {
  url: string;
  instance: string;
  release(): void;
}

/** Latencies kept per sample period: enough for a p99, bounded whatever the rate. */
const MAX_LATENCIES = 10_000;

/**
 * The replicas of one function (each a FunctionProcess: its own child process and port), and the
 * load on them. Requests go to the ready replica with the fewest in flight; a replica removed by
 * scaling down takes no new request, answers those it holds, then stops (SIGTERM). A replica that
 * dies stays a member: its FunctionProcess restarts it, and it takes requests again once it listens.
 */
export class ReplicaSet {
  readonly logs: LogRing;
  readonly #replicas: Replica[] = [];
  /** Being drained, then stopped: no longer counted, still answering what they hold. */
  readonly #leaving = new Set<Replica>();
  /** Breaks ties among equally loaded replicas in turn, so that light load spreads too. */
  #turn = 0;
  // The load since the last sample: in flight integrated over time, and the latencies of the calls that ended.
  #sampledAt: number;
  #inFlightArea = 0;
  #lastChange: number;
  #latencies: number[] = [];
  #ended = 0;

  readonly #now: () => number;
  readonly #replica: (options: FunctionProcessOptions) => ReplicaProcess;

  constructor(private readonly options: ReplicaSetOptions) {
    this.logs = new LogRing(options.name);
    this.#now = options.now ?? Date.now;
    this.#replica = options.replica ?? ((o) => new FunctionProcess(o));
    this.#sampledAt = this.#lastChange = this.#now();
  }

  get name(): string {
    return this.options.name;
  }

  /** The replicas it should run (OpenFaaS's `replicas`): the desired count, draining ones not included. */
  get replicas(): number {
    return this.#replicas.length;
  }

  /** Replicas listening and not draining (OpenFaaS's `availableReplicas`). */
  get availableReplicas(): number {
    return this.#replicas.filter((r) => r.process.ready).length;
  }

  /** Requests in flight on every replica, draining ones included. */
  get inFlight(): number {
    let n = 0;
    for (const r of this.#replicas) n += r.inFlight;
    for (const r of this.#leaving) n += r.inFlight;
    return n;
  }

  /** When the oldest replica now running started (OpenFaaS's createdAt), if one runs. */
  get startedAt(): Date | undefined {
    const times = this.#replicas.flatMap((r) => r.process.startedAt ?? []);
    return times.length === 0 ? undefined : new Date(Math.min(...times.map((t) => t.getTime())));
  }

  /**
   * Runs `count` replicas: starts the missing ones (resolving once they listen; rejecting if one
   * exits first, which its restart then retries), or drains the surplus, the least loaded first.
   * Draining replicas are not waited for: they stop on their own once they have answered.
   */
  async scaleTo(count: number): Promise<void> {
    const started: Array<Promise<void>> = [];
    while (this.#replicas.length < count) {
      const replica: Replica = {
        process: this.#replica({
          name: this.name,
          env: this.options.env,
          onLine: this.options.onLine,
          logs: this.logs,
        }),
        inFlight: 0,
        draining: false,
      };
      this.#replicas.push(replica);
      started.push(replica.process.start());
    }
    while (this.#replicas.length > count) {
      const surplus = [...this.#replicas]
        .sort((a, b) => Number(a.process.ready) - Number(b.process.ready) || a.inFlight - b.inFlight)
        .at(0) as Replica;
      this.#replicas.splice(this.#replicas.indexOf(surplus), 1);
      this.#drain(surplus);
    }
    await Promise.all(started);
  }

  /** The ready replica with the fewest requests in flight, leased for one request; undefined if none is ready. */
  lease(): Lease | undefined {
    let best: Replica | undefined;
    const n = this.#replicas.length;
    for (let i = 0; i < n; i++) {
      const r = this.#replicas[(this.#turn + i) % n] as Replica;
      if (r.process.ready && (best === undefined || r.inFlight < best.inFlight)) best = r;
    }
    if (best === undefined) return undefined;
    this.#turn = (this.#turn + 1) % Math.max(1, n);
    const replica = best;
    const started = this.#now();
    this.#account(started);
    replica.inFlight++;
    let released = false;
    return {
      url: replica.process.url,
      instance: replica.process.instance,
      release: () => {
        if (released) return;
        released = true;
        const now = this.#now();
        this.#account(now);
        replica.inFlight--;
        this.#ended++;
        if (this.#latencies.length < MAX_LATENCIES) this.#latencies.push(now - started);
        else this.#latencies[Math.floor(Math.random() * MAX_LATENCIES)] = now - started;
        if (replica.draining && replica.inFlight === 0) void this.#stop(replica);
      },
    };
  }

  /** The load since the previous sample (average in flight, rate, p99), and starts the next period. */
  sample(now = this.#now()): LoadSample {
    this.#account(now);
    const seconds = Math.max(0.001, (now - this.#sampledAt) / 1000);
    const sorted = this.#latencies.sort((a, b) => a - b);
    const sample = {
      inFlight: this.#inFlightArea / 1000 / seconds,
      rate: this.#ended / seconds,
      p99Ms: sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))],
    };
    this.#sampledAt = now;
    this.#inFlightArea = 0;
    this.#latencies = [];
    this.#ended = 0;
    return sample;
  }

  /**
   * Stops every replica at once, those draining included: on SIGTERM each function's server
   * answers what it holds and takes nothing new, as when the whole gateway stops.
   */
  async stop(): Promise<void> {
    const all = [...this.#replicas.splice(0), ...this.#leaving];
    for (const replica of all) {
      replica.draining = true;
      this.#leaving.add(replica);
    }
    await Promise.all(all.map((r) => this.#stop(r)));
  }

  #account(now: number): void {
    this.#inFlightArea += this.inFlight * (now - this.#lastChange);
    this.#lastChange = now;
  }

  #drain(replica: Replica): void {
    replica.draining = true;
    this.#leaving.add(replica);
    if (replica.inFlight === 0) void this.#stop(replica);
    else
      this.options.onLine(
        this.name,
        `${replica.process.instance} draining: ${replica.inFlight} in flight, then it stops`,
      );
  }

  async #stop(replica: Replica): Promise<void> {
    await replica.process.stop();
    this.#leaving.delete(replica);
  }
}
