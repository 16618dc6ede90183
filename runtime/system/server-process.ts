import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { ServiceBase } from "../../lib/infra/service.js";

export interface ServerProcessOptions {
  binary: string;
  args: readonly string[];
  /** A line the server prints once it serves (its store recovered, its port bound). */
  readyLine: RegExp;
  /** How long it gets to print it. */
  readyTimeoutMs: number;
  /** Lines of its output kept, for the error that says why it did not start and for output(). @default 20 */
  keepLines?: number;
}

/**
 * A server binary fanwatch runs as a child (nats-server, Alertmanager) as a service: start()
 * resolves once the server prints its ready line, and rejects with its last lines when it exits
 * first or is not ready in time. drain() stops it with SIGTERM (it flushes its store), close()
 * with SIGKILL. A server that exits by itself ends the service with the reason (`closed`), so
 * that a Supervisor starts it again.
 */
export abstract class ServerProcess extends ServiceBase {
  #child: ChildProcess | undefined;
  readonly #lines: string[] = [];

  constructor(private readonly process: ServerProcessOptions) {
    super();
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines it printed (keepLines of them). */
  output(): string {
    return this.#lines.join("\n");
  }

  protected async onStart(): Promise<void> {
    const { binary, args, readyLine, readyTimeoutMs } = this.process;
    // Through a small shell in a process group of its own: Ctrl-C on the terminal reaches fanwatch,
    // which stops the server after the functions (not at the same moment), and when fanwatch dies
    // outright its pipe to the shell closes and the shell stops the server: no orphan holds the
    // store directory at the next start.
    // (A background job's input is /dev/null unless redirected, hence fd 3.) Once the server has
    // exited, the shell stops its watcher too: a watcher left waiting would, when the pipe closed
    // later, signal a pid that may by then belong to another process.
    const script =
      'exec 3<&0; "$0" "$@" </dev/null & pid=$!; trap \'kill -TERM $pid\' TERM INT; (read -r _ <&3; kill -TERM $pid 2>/dev/null) & watcher=$!; wait $pid; wait $pid; code=$?; kill $watcher 2>/dev/null; exit $code';
    const child = spawn("sh", ["-c", script, binary, ...args], { stdio: ["pipe", "pipe", "pipe"], detached: true });
    this.#child = child;
    let ready = (_line: string): void => {};
    const keep = this.process.keepLines ?? 20;
    const onLine = (line: string) => {
      this.#lines.push(line);
      if (this.#lines.length > keep) this.#lines.shift();
      ready(line);
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(`did not get ready within ${readyTimeoutMs} ms`), readyTimeoutMs);
      ready = (line: string) => {
        if (!readyLine.test(line)) return;
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve();
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        fail(`exited (${signal ?? `code ${code}`}) before it was ready`);
      const fail = (why: string) => {
        clearTimeout(timer);
        killGroup(child, "SIGKILL");
        reject(new Error(`${binary} ${why}; its last lines:\n${this.#lines.join("\n")}`));
      };
      child.once("error", (error) => fail(error.message));
      child.once("exit", onExit);
    });
    ready = () => {};
    child.once("exit", (code, signal) => {
      if (!this.stopping) this.ended(new Error(`exited (${signal ?? `code ${code}`})`));
    });
  }

  protected override async onDrain(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child);
  }

  protected async onClose(): Promise<void> {
    await this.kill();
  }

  /** SIGKILL, as a crash or a pulled plug: nothing flushed. Tests and the fault suite use it. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    killGroup(child, "SIGKILL");
    await exited;
  }
}

/** Closes the shell's input, so that it stops the server (SIGTERM: it flushes), and waits; SIGKILL after 10 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdin?.end();
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // gone already
  }
}
