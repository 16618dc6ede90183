import { spawn, type ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { freePort } from "../../lib/infra/net.js";
import { backoffDelay } from "../../lib/infra/retry.js";
import type { LogRing } from "./logs.js";

const CLI = fileURLToPath(new URL("../../../bin/fanwatch.js", import.meta.url));

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

/** What `fanwatch function` sends on its IPC channel once its server answers requests. */
function isReadyMessage(message: unknown): boolean {
  return typeof message === "object" && message !== null && (message as { event?: unknown }).event === "ready";
}

export interface FunctionProcessOptions {
  name: string;
  /** The environment the function sees (its stack.yml environment with local addresses). */
  env: NodeJS.ProcessEnv;
  /** Every line the function prints, and the runner's own notes about it. */
  onLine: (name: string, line: string) => void;
  /** Where its lines are kept for the log API: the function's one ring, shared by its replicas. */
  logs: LogRing;
}

/**
 * One replica of a function, run as the watchdog runs it: our template's server in a child process
 * on a loopback port, restarted with backoff if it dies (the watchdog would exit and Kubernetes
 * would restart the pod). `url` is where the local gateway proxies to.
 */
export class FunctionProcess {
  #child: Child | undefined;
  #port = 0;
  #ready = false;
  #stopping = false;
  #restarts = 0;
  #startedAt: Date | undefined;
  #instance = "";
  /** The stop under way, so that a second stop waits for it rather than signalling again. */
  #stopped: { child: Child; exited: Promise<void> } | undefined;

  constructor(private readonly options: FunctionProcessOptions) {}

  get name(): string {
    return this.options.name;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** True while the process is up and listening. */
  get ready(): boolean {
    return this.#ready;
  }

  /** When the process now running was started (undefined before the first start). */
  get startedAt(): Date | undefined {
    return this.#startedAt;
  }

  /** The process now running, as the log API names it (OpenFaaS: the pod): `<function>-<pid>`. */
  get instance(): string {
    return this.#instance;
  }

  /** Starts the process, if it is not running, and resolves once it listens; rejects if it exits first. */
  async start(): Promise<void> {
    this.#stopping = false;
    const running = this.#child;
    if (running !== undefined && running.exitCode === null && running.signalCode === null) return;
    this.#port = await freePort();
    // --stop-with-stdin: a runner killed outright (SIGKILL) leaves no orphaned function holding a
    // port and a broker session; its pipe to the child closes and the child drains and exits.
    // Detached (a process group of its own): Ctrl-C on the terminal reaches the runner alone, which
    // stops its functions in order, rather than every function at once, each then "restarted".
    // An IPC channel as well as the pipes: the function says it is ready by a message on it, not
    // by a line of its output (every line it prints is kept and shown as it is).
    // (@types/node types no spawn() with pipes and a channel: stdio names the three pipes it has.)
    const child = spawn(
      process.execPath,
      [CLI, "function", this.name, "--port", String(this.#port), "--host", "127.0.0.1", "--stop-with-stdin"],
      {
        env: this.options.env,
        detached: true,
        stdio: ["pipe", "pipe", "pipe", "ipc"],
      },
    ) as Child;
    this.#child = child;
    this.#startedAt = new Date();
    // OpenFaaS names an instance by its pod; here, by the function and the process id.
    const instance = `${this.name}-${child.pid ?? "unstarted"}`;
    this.#instance = instance;
    const ready = new Promise<void>((resolve) => {
      child.on("message", (message) => {
        if (isReadyMessage(message)) resolve();
      });
    });
    const onLine = (line: string) => {
      this.options.logs.push(instance, line);
      this.options.onLine(this.name, line);
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    child.on("exit", (code, signal) => {
      if (this.#child !== child) return; // an earlier process, stopped and replaced
      this.#ready = false;
      if (!this.#stopping) void this.#restart(`exited (${signal ?? `code ${code}`})`);
    });
    const exited = once(child, "exit").then(() => {
      throw new Error(`${this.name} exited before it was ready`);
    });
    await Promise.race([ready, exited]);
    exited.catch(() => {}); // it may exit later: the exit handler restarts it
    this.#ready = true;
  }

  /** Sends SIGTERM (SIGKILL 10 s later) and resolves once it exited; calling it again waits for the same exit. */
  stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    if (this.#stopped?.child !== child) this.#stopped = { child, exited: this.#terminate(child) };
    return this.#stopped.exited;
  }

  async #terminate(child: Child): Promise<void> {
    const exit = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exit;
    clearTimeout(timer);
  }

  async #restart(reason: string): Promise<void> {
    this.#restarts++;
    const delay = backoffDelay({ baseMs: 500 }, Math.min(this.#restarts, 5));
    this.options.onLine(
      this.name,
      `${this.name} ${reason}; restarting in ${Math.round(delay)} ms (restart ${this.#restarts})`,
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.#stopping) return;
    await this.start().catch((error: unknown) => this.options.onLine(this.name, (error as Error).message));
  }
}
