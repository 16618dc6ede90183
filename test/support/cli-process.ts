import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { ServiceBase } from "../../lib/infra/service.js";
import { spawnCli, waitForOutput, waitUntilReady } from "./process.js";

export interface CliProcessOptions {
  /** What the lifecycle and the reports call it: "connector", "predict". */
  name: string;
  /** `fanwatch` arguments: ["connector"], ["function", "score", "--port", "3000"]. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Ready when it prints this, or (a URL) when that server's GET /_/ready answers 200. */
  ready: RegExp | string;
  /** A file that gets everything it prints, stdout and stderr (appended): its log, to read after a run. */
  logFile?: string;
}

/**
 * A part of the system run as a process of its own (`fanwatch <command>`), as the benchmarks and
 * the system tests run them, with the same lifecycle as the parts `fanwatch start` runs in one
 * process: drain() is SIGTERM (the part finishes what it holds and exits; SIGKILL after 10 s),
 * close() is SIGKILL. One that exits by itself ends the service with the reason.
 */
export class CliProcess extends ServiceBase {
  readonly name: string;
  #child: ChildProcessWithoutNullStreams | undefined;

  constructor(private readonly options: CliProcessOptions) {
    super();
    this.name = options.name;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  protected async onStart(): Promise<void> {
    const child = spawnCli(this.options.args, this.options.env);
    this.#child = child;
    if (this.options.logFile !== undefined) {
      const log = createWriteStream(this.options.logFile, { flags: "a" });
      child.stdout.pipe(log, { end: false });
      child.stderr.pipe(log, { end: false });
      child.once("close", () => log.end());
    }
    const { ready } = this.options;
    await (typeof ready === "string" ? waitUntilReady(ready, child) : waitForOutput(child, ready));
    // Keep reading what it prints, so that a full pipe never stalls it.
    child.stdout.resume();
    child.stderr.resume();
    child.once("exit", (code, signal) => {
      if (!this.stopping) this.ended(new Error(`exited (${signal ?? `code ${code}`})`));
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited in time. */
  protected override async onDrain(): Promise<void> {
    await this.#kill("SIGTERM", 10_000);
  }

  protected async onClose(): Promise<void> {
    await this.#kill("SIGKILL");
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `killAfterMs`, when given). */
  async #kill(signal: NodeJS.Signals, killAfterMs?: number): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    await exited;
    clearTimeout(timer);
  }
}
