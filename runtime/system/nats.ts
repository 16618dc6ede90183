import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import { HEALTH_SETTINGS, readHealthConfig } from "../../functions/health/config.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import type { Logger } from "../../lib/infra/log.js";
import { freePort, reachableHost } from "../../lib/infra/net.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { Supervisor } from "../../lib/infra/supervisor.js";

/** Where Debian's package `nats-server` installs it. */
export const DEBIAN_NATS_SERVER = "/usr/sbin/nats-server";

/** Where `fanwatch start` keeps JetStream's data unless NATS_STORE_DIR says otherwise (gitignored). */
export const DEFAULT_STORE_DIR = ".fanwatch/nats";

/** Where `fanwatch start` keeps the fans' health (docs/start.md). */
export const NATS_SETTINGS = defineSettings({
  NATS_URL: {
    ...HEALTH_SETTINGS.NATS_URL,
    help: "a NATS server (JetStream) of your own for the fans' health; else a nats-server started here, else memory",
    doc: "a NATS server (JetStream) of your own for the fans' health; else a `nats-server` started here, else memory (not durable)",
  },
  NATS_SERVER: {
    env: ["NATS_SERVER"],
    help: "the nats-server to start when NATS_URL is not set",
    default: `${DEBIAN_NATS_SERVER}, else one on the PATH`,
    schema: z.string().optional(),
  },
  // Read only to find nats-server, as a shell would.
  PATH: {
    env: ["PATH"],
    help: "where nats-server is looked for when NATS_SERVER is not set and Debian's is not installed",
    schema: z.string().default(""),
  },
  NATS_STORE_DIR: {
    env: ["NATS_STORE_DIR"],
    help: "JetStream's data directory for the nats-server started here (relative to the working directory)",
    default: DEFAULT_STORE_DIR,
    schema: z.string().default(DEFAULT_STORE_DIR),
  },
});

/** The nats-server to run: NATS_SERVER, Debian's, or one on the PATH; undefined when none is installed. */
export function findNatsServer(env?: NodeJS.ProcessEnv): string | undefined {
  const s = readSettings(NATS_SETTINGS, env);
  const named = s.NATS_SERVER;
  if (named !== undefined) return existsSync(named) ? named : undefined;
  if (existsSync(DEBIAN_NATS_SERVER)) return DEBIAN_NATS_SERVER;
  return s.PATH.split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, "nats-server"))
    .find((path) => existsSync(path));
}

export const DEFAULT_NATS_HOST = "127.0.0.1";
/** How long nats-server gets to say "Server is ready" (JetStream recovers its streams first). */
const NATS_READY_TIMEOUT_MS = 15_000;

export interface NatsServerOptions {
  binary: string;
  port: number;
  /** @default DEFAULT_NATS_HOST */
  host?: string;
  /** JetStream's data directory (created if missing): the key-value buckets live here. */
  storeDir: string;
}

/**
 * nats-server with JetStream (`-js`) as a service: start() resolves once it says "Server is
 * ready", which it prints after JetStream recovered its streams from the store directory, and
 * rejects with the server's last lines when it exits first or does not get ready in time. drain()
 * stops it with SIGTERM (JetStream flushes), close() with SIGKILL. A server that exits by itself
 * ends the service with the reason (`closed`), so that a Supervisor starts it again.
 */
export class NatsServerProcess extends ServiceBase {
  readonly name = "nats-server";
  readonly url: string;
  #child: ChildProcess | undefined;
  readonly #lines: string[] = [];

  constructor(private readonly options: NatsServerOptions) {
    super();
    const host = options.host ?? DEFAULT_NATS_HOST;
    this.url = `nats://${reachableHost(host)}:${options.port}`;
  }

  get port(): number {
    return this.options.port;
  }

  get storeDir(): string {
    return this.options.storeDir;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  protected async onStart(): Promise<void> {
    const { options } = this;
    await mkdir(options.storeDir, { recursive: true });
    // Through a small shell in a process group of its own: Ctrl-C on the terminal reaches fanwatch,
    // which stops nats-server after the functions (not at the same moment), and when fanwatch dies
    // outright its pipe to the shell closes and the shell stops nats-server: no orphan holds the
    // store directory at the next start.
    // (A background job's input is /dev/null unless redirected, hence fd 3.)
    const script =
      'exec 3<&0; "$0" "$@" </dev/null & pid=$!; trap \'kill -TERM $pid\' TERM INT; (read -r _ <&3; kill -TERM $pid 2>/dev/null) & wait $pid; wait $pid';
    const args = ["-js", "-sd", options.storeDir, "-a", options.host ?? DEFAULT_NATS_HOST, "-p", String(options.port)];
    const child = spawn("sh", ["-c", script, options.binary, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    this.#child = child;
    let ready = (_line: string): void => {};
    const onLine = (line: string) => {
      this.#lines.push(line);
      if (this.#lines.length > 20) this.#lines.shift();
      ready(line);
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", onLine);
    await new Promise<void>((resolve, reject) => {
      const timeoutMs = NATS_READY_TIMEOUT_MS;
      const timer = setTimeout(() => fail(`did not get ready within ${timeoutMs} ms`), timeoutMs);
      ready = (line: string) => {
        if (!line.includes("Server is ready")) return;
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve();
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        fail(`exited (${signal ?? `code ${code}`}) before it was ready`);
      const fail = (why: string) => {
        clearTimeout(timer);
        killGroup(child, "SIGKILL");
        reject(new Error(`${options.binary} ${why}; its last lines:\n${this.#lines.join("\n")}`));
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

/** Closes the shell's input, so that it stops nats-server (SIGTERM: JetStream flushes), and waits; SIGKILL after 10 s. */
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

/**
 * Where `fanwatch start` keeps fan health: NATS_URL when set; otherwise a nats-server of its own
 * (Debian's, with JetStream, its data in NATS_STORE_DIR or .fanwatch/nats under the working
 * directory, so that state survives restarts) on a free port when one is installed, supervised:
 * restarted with backoff on the same port and store if it stops; otherwise memory. Says which on
 * the console.
 */
export class HealthState extends ServiceBase {
  readonly name = "health state";
  #natsUrl: string | undefined;
  #server: Supervisor<NatsServerProcess> | undefined;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly say: (line: string) => void,
    private readonly log: Logger,
    private readonly port: () => Promise<number> = freePort,
  ) {
    super();
  }

  /** What the health function is given as NATS_URL; undefined: it keeps its state in memory. */
  get natsUrl(): string | undefined {
    return this.#natsUrl;
  }

  /** The nats-server started here, if one was (its supervisor: the instance running now is `current`). */
  get server(): Supervisor<NatsServerProcess> | undefined {
    return this.#server;
  }

  protected async onStart(): Promise<void> {
    const { env, say } = this;
    const settings = readSettings(NATS_SETTINGS, env);
    const url = settings.NATS_URL;
    if (url !== undefined) {
      say(`health state in NATS at ${redactUrl(url)} (NATS_URL), bucket ${readHealthConfig(env).bucket}`);
      this.#natsUrl = url;
      return;
    }
    const binary = findNatsServer(env);
    if (binary === undefined) {
      say(
        "health state in memory: not durable, lost when fanwatch stops (install nats-server, apt-get install nats-server, or set NATS_URL to keep it)",
      );
      return;
    }
    const storeDir = resolve(settings.NATS_STORE_DIR);
    const port = await this.port();
    const server = new Supervisor({
      create: () => new NatsServerProcess({ binary, port, storeDir }),
      log: this.log,
      say,
    });
    await server.start();
    this.#server = server;
    this.#natsUrl = server.current.url;
    say(`health state in NATS JetStream: ${binary} on ${this.#natsUrl}, data in ${storeDir}`);
  }

  protected override async onDrain(): Promise<void> {
    await this.#server?.drain();
  }

  protected async onClose(): Promise<void> {
    await this.#server?.close();
  }
}
