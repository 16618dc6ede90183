import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { z } from "zod";
import { HEALTH_SETTINGS, readHealthConfig } from "../../functions/health/config.js";
import { defineSettings, readSettings } from "../../lib/infra/settings.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import type { Logger } from "../../lib/infra/log.js";
import { freePort, reachableHost } from "../../lib/infra/net.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { ServerProcess } from "./server-process.js";
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
 * nats-server with JetStream (`-js`) as a service (server-process.ts): ready once it says "Server
 * is ready", which it prints after JetStream recovered its streams from the store directory.
 */
export class NatsServerProcess extends ServerProcess {
  readonly name = "nats-server";
  readonly url: string;

  constructor(private readonly options: NatsServerOptions) {
    const host = options.host ?? DEFAULT_NATS_HOST;
    super({
      binary: options.binary,
      args: ["-js", "-sd", options.storeDir, "-a", host, "-p", String(options.port)],
      readyLine: /Server is ready/,
      readyTimeoutMs: NATS_READY_TIMEOUT_MS,
    });
    this.url = `nats://${reachableHost(host)}:${options.port}`;
  }

  get port(): number {
    return this.options.port;
  }

  get storeDir(): string {
    return this.options.storeDir;
  }

  protected override async onStart(): Promise<void> {
    await mkdir(this.options.storeDir, { recursive: true });
    await super.onStart();
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
