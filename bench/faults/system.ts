import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CONNECTOR_NODE_OPTIONS } from "../../connectors/mqtt/node-options.js";
import { freePort } from "../../lib/infra/net.js";
import { startInfluxDB, type Influx } from "../../test/support/influxdb.js";
import { startMosquitto, type Broker } from "../../test/support/mosquitto.js";
import { startNats, type TestNats } from "../../test/support/nats.js";
import { spawnCli, waitForOutput } from "../../test/support/process.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import { childPids, readArgs } from "../support/process-stats.js";
import { openRegistry, registerFleet } from "./registry.js";

export type Role = "gateway" | "connector" | "writer";
export const ROLES: readonly Role[] = ["gateway", "connector", "writer"];
/** The functions, which the gateway runs as its child processes. */
export type FunctionName = "score" | "predict" | "health";

export interface FaultSystemOptions {
  /**
   * The device registry (KV bucket fan_registry in the suite's nats-server): these fans are
   * registered active before the connector starts; the connector quarantines readings of any
   * other id (UNKNOWN_DEVICE_POLICY=quarantine, the default), at most `maxPending` fans pending
   * (REGISTRY_MAX_PENDING), then refuses new ids.
   */
  registry: { fans: readonly string[]; maxPending: number };
  /**
   * The health path too: the connector routing fan/anomaly to health as `fanwatch start` and
   * deploy/k3s do. Without it health runs (the gateway runs every function of stack.yml) and keeps
   * its state in the nats-server, but nothing invokes it.
   */
  health?: { silentAfterMs: number };
}

interface RoleSpec {
  args: string[];
  env: Record<string, string>;
  ready: RegExp;
  /** Port of its /healthz, for the services that have one. */
  healthPort?: number;
}

/**
 * The whole pipeline as real processes on this machine, as a user would run it: Mosquitto from the
 * shipped configuration (persistence on), InfluxDB 1.x, `fanwatch gateway` (which runs score and
 * predict from stack.yml as its child processes), `fanwatch connector` (routes from the gateway's
 * /system/functions, basic auth from secret files) and `fanwatch influx-writer`. Each process keeps
 * its ports and MQTT client id across restarts, as a supervisor would restart it. Their output goes
 * to <logDir>/<role>.log. A nats-server (`nats`: killed, halted and started again on the same
 * port and store, as a supervisor would) holds the device registry, the connector's quarantine
 * and health's state; the connector checks every reading against the registry (NATS_URL), and
 * takes registered fans' readings on the bare `fan/messages` too (ALLOW_UNBOUND_FANS=true, as
 * `fanwatch start` runs it: the load publishes there).
 */
export class FaultSystem {
  readonly #specs: Record<Role, RoleSpec>;
  readonly #children = new Map<Role, ChildProcessWithoutNullStreams>();
  readonly #logs = new Map<Role, WriteStream>();
  #influxd: number | undefined;
  readonly #functionPids = new Map<FunctionName, number>();

  private constructor(
    readonly broker: Broker,
    readonly influx: Influx,
    readonly nats: TestNats,
    /** The registry as the suite's own client sees it (for its counts at the end). */
    readonly registry: FanRegistry,
    readonly logDir: string,
    specs: Record<Role, RoleSpec>,
    private readonly gateway: { url: string; secrets: string },
  ) {
    this.#specs = specs;
  }

  static async start(logDir: string, options: FaultSystemOptions): Promise<FaultSystem> {
    const [broker, influx, nats] = await Promise.all([startMosquitto(), startInfluxDB(), startNats()]);
    // The fleet is registered before the connector starts: its cache then holds every fan from the
    // first reading on, as on a site where the fans were registered before they were switched on.
    const registry = await openRegistry(nats.url).catch(async (error: unknown) => {
      await Promise.all([broker.stop(), influx.stop(), nats.stop()]);
      throw error;
    });
    try {
      await registerFleet(registry, options.registry.fans);
    } catch (error) {
      await registry.close().catch(() => {});
      await Promise.all([broker.stop(), influx.stop(), nats.stop()]);
      throw error;
    }
    const [gatewayPort, connectorPort, writerPort] = await Promise.all([freePort(), freePort(), freePort()]);
    // The gateway's /system credentials, as OpenFaaS mounts them, for the gateway and the connector.
    const secrets = join(logDir, "secrets");
    await mkdir(secrets, { recursive: true });
    await writeFile(join(secrets, "basic-auth-user"), "admin");
    await writeFile(join(secrets, "basic-auth-password"), randomBytes(12).toString("base64url"));
    const quiet = { LOG_LEVEL: "warn" };
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    const specs: Record<Role, RoleSpec> = {
      gateway: {
        args: ["gateway", "--port", String(gatewayPort)],
        env: {
          ...quiet,
          MQTT_URL: broker.url,
          SECRET_MOUNT_PATH: secrets,
          // Health's state (and its view of the registry) in the suite's nats-server.
          NATS_URL: nats.url,
          ...(options.health === undefined ? {} : { HEALTH_SILENT_AFTER_MS: String(options.health.silentAfterMs) }),
        },
        ready: /gateway running/,
      },
      connector: {
        args: ["connector"],
        env: {
          ...quiet,
          gateway_url: gatewayUrl,
          broker: broker.url,
          basic_auth: "true",
          secret_mount_path: secrets,
          port: String(connectorPort),
          client_id: "faults-connector",
          // Readings for predict, and with the health path predictions for health (its topic annotation).
          topic: options.health === undefined ? "fan/messages" : "fan/messages,fan/anomaly",
          NODE_OPTIONS: CONNECTOR_NODE_OPTIONS,
          // The registry gate: only registered fans get in, new ids are quarantined up to the bound.
          NATS_URL: nats.url,
          UNKNOWN_DEVICE_POLICY: "quarantine",
          REGISTRY_MAX_PENDING: String(options.registry.maxPending),
          ALLOW_UNBOUND_FANS: "true",
        },
        ready: /connector running/,
        healthPort: connectorPort,
      },
      writer: {
        args: [
          "influx-writer",
          "--influx-url",
          influx.url,
          "--broker",
          broker.url,
          "--port",
          String(writerPort),
          "--client-id",
          "faults-writer",
        ],
        env: quiet,
        ready: /writer running/,
        healthPort: writerPort,
      },
    };
    const system = new FaultSystem(broker, influx, nats, registry, logDir, specs, { url: gatewayUrl, secrets });
    try {
      // The connector subscribes once it has read the gateway's routes; the writer is independent.
      await Promise.all([
        system.startRole("gateway").then(() => system.startRole("connector")),
        system.startRole("writer"),
      ]);
    } catch (error) {
      await system.stop();
      throw error;
    }
    return system;
  }

  pid(role: Role): number | undefined {
    return this.#children.get(role)?.pid;
  }

  /** Process ids to sample, by name, including the servers', the functions' and this process's own. */
  async pids(): Promise<Record<string, number | undefined>> {
    if (this.#influxd === undefined || (await commOf(this.#influxd)) !== "influxd")
      this.#influxd = childPid(process.pid, (args) => args.startsWith(" /usr/bin/influxd "));
    const functions = await Promise.all(
      (["score", "predict", "health"] as const).map(async (name) => [name, await this.functionPid(name)] as const),
    );
    return {
      mosquitto: this.broker.pid,
      influxd: this.#influxd,
      "nats-server": natsServerPid(this.nats.pid),
      ...Object.fromEntries(ROLES.map((r) => [r, this.pid(r)])),
      ...Object.fromEntries(functions),
      harness: process.pid,
    };
  }

  /** The pid of a function's process, a child of the gateway. */
  async functionPid(name: FunctionName): Promise<number | undefined> {
    const known = this.#functionPids.get(name);
    if (known !== undefined && (await commOf(known)) !== undefined) return known;
    const gateway = this.pid("gateway");
    const pid = childPid(gateway, (args) => args.includes(` function ${name} `));
    if (pid === undefined) this.#functionPids.delete(name);
    else this.#functionPids.set(name, pid);
    return pid;
  }

  /** The gateway's address, for reading a function's answers (health's records) as a user would. */
  get gatewayUrl(): string {
    return this.gateway.url;
  }

  /** The connector's /healthz and /metrics port. */
  get connectorPort(): number {
    return this.#specs.connector.healthPort as number;
  }

  /** Whether health lists the fans (200): its store is open and reachable. */
  async healthAnswers(): Promise<boolean> {
    return fetch(`${this.gateway.url}/function/health?limit=1`, { signal: AbortSignal.timeout(5_000) }).then(
      (r) => r.ok,
      () => false,
    );
  }

  /** Scales a function to 0 (the gateway stops its process: calls fail as in an outage) or back to 1. */
  async scale(name: FunctionName, replicas: 0 | 1): Promise<void> {
    const [user, password] = await Promise.all(
      ["basic-auth-user", "basic-auth-password"].map((file) => readFile(join(this.gateway.secrets, file), "utf8")),
    );
    const response = await fetch(`${this.gateway.url}/system/scale-function/${name}`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ serviceName: name, replicas }),
    });
    if (!response.ok) throw new Error(`scaling ${name} to ${replicas}: ${response.status} ${await response.text()}`);
  }

  async startRole(role: Role): Promise<void> {
    const spec = this.#specs[role];
    const child = spawnCli(spec.args, spec.env);
    let log = this.#logs.get(role);
    if (log === undefined)
      this.#logs.set(role, (log = createWriteStream(join(this.logDir, `${role}.log`), { flags: "a" })));
    log.write(`--- started ${new Date().toISOString()} pid ${child.pid}\n`);
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.#children.set(role, child);
    await waitForOutput(child, spec.ready, 60_000);
  }

  /** Sends `signal` and waits for the exit. */
  async kill(role: Role, signal: NodeJS.Signals): Promise<void> {
    const child = this.#children.get(role);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exit = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exit;
    this.#logs.get(role)?.write(`--- ${signal} ${new Date().toISOString()}\n`);
  }

  /**
   * SIGTERM, so that it stops score and predict (a SIGKILLed gateway would leave them running);
   * SIGKILL for it and them if it has not exited within 10 s.
   */
  async #stopGateway(): Promise<void> {
    const functions = await Promise.all(
      (["score", "predict", "health"] as const).map((name) => this.functionPid(name)),
    );
    const stopped = this.kill("gateway", "SIGTERM");
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
    if ((await Promise.race([stopped, timeout])) !== "timeout") return;
    for (const pid of functions) {
      try {
        if (pid !== undefined) process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    await this.kill("gateway", "SIGKILL");
  }

  /** SIGTERM (the part drains and exits), SIGKILL if it has not exited within 10 s. */
  async #terminate(role: Role): Promise<void> {
    const stopped = this.kill(role, "SIGTERM");
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
    if ((await Promise.race([stopped, timeout])) === "timeout") await this.kill(role, "SIGKILL");
  }

  /** HTTP status of each service's /healthz (0: no answer). */
  async health(): Promise<Record<string, number>> {
    const entries = await Promise.all(
      ROLES.filter((r) => this.#specs[r].healthPort !== undefined).map(async (role) => {
        const status = await fetch(`http://127.0.0.1:${this.#specs[role].healthPort}/healthz`, {
          signal: AbortSignal.timeout(5_000),
        }).then(
          (r) => r.status,
          () => 0,
        );
        return [role, status] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  /**
   * Stops every part gracefully, in the reverse of the order fanwatch start starts them (the
   * Lifecycle's): the connector finishes its batches, then the gateway its functions' calls, then
   * the writer stores what it holds. SIGKILL is only a step's chaos, or after 10 s here.
   */
  async stop(): Promise<void> {
    await this.#terminate("connector");
    await this.#stopGateway();
    await this.#terminate("writer");
    for (const log of this.#logs.values()) log.end();
    await this.registry.close().catch(() => {});
    await Promise.all([this.broker.stop(), this.influx.stop(), this.nats.stop()]);
  }
}

/** nats-server runs under a small shell (runtime/system/nats.ts): the server is the shell's child. */
function natsServerPid(shell: number | undefined): number | undefined {
  return childPid(shell, (args) => args.includes("nats-server"));
}

/** The pid of a child of `parent` whose arguments (bench/support/process-stats.ts readArgs) `match`. */
function childPid(parent: number | undefined, match: (args: string) => boolean): number | undefined {
  return childPids(parent).find((pid) => match(readArgs(pid)));
}

/** The command name in /proc/<pid>/stat, or undefined once the process is gone. */
async function commOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat?.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
}
