import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CONNECTOR_NODE_OPTIONS } from "../connectors/mqtt/node-options.js";
import { freePort } from "../lib/net.js";
import { startInfluxDB, type Influx } from "../test/support/influxdb.js";
import { startMosquitto, type Broker } from "../test/support/mosquitto.js";
import { spawnCli, waitForOutput } from "../test/support/process.js";

export type Role = "score" | "predict" | "connector" | "writer";
export const ROLES: readonly Role[] = ["score", "predict", "connector", "writer"];

interface RoleSpec {
  args: string[];
  env: Record<string, string>;
  ready: RegExp;
  /** Port of its /healthz, for the services that have one. */
  healthPort?: number;
}

/**
 * The whole pipeline as real processes on this machine, as a user would run it: Mosquitto from the
 * shipped configuration (persistence on), InfluxDB 1.x, `fanwatch function score` and `predict`,
 * `fanwatch connector` (a static route to predict) and `fanwatch influx-writer`. Each process keeps
 * its ports and MQTT client id across restarts, as a supervisor would restart it. Their output goes
 * to <logDir>/<role>.log.
 */
export class FaultSystem {
  readonly #specs: Record<Role, RoleSpec>;
  readonly #children = new Map<Role, ChildProcessWithoutNullStreams>();
  readonly #logs = new Map<Role, WriteStream>();
  #influxd: number | undefined;

  private constructor(
    readonly broker: Broker,
    readonly influx: Influx,
    readonly logDir: string,
    specs: Record<Role, RoleSpec>,
  ) {
    this.#specs = specs;
  }

  static async start(logDir: string): Promise<FaultSystem> {
    const [broker, influx] = await Promise.all([startMosquitto(), startInfluxDB()]);
    const [scorePort, predictPort, connectorPort, writerPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const quiet = { LOG_LEVEL: "warn" };
    const specs: Record<Role, RoleSpec> = {
      score: { args: ["function", "score", "--port", String(scorePort)], env: quiet, ready: /listening on/ },
      predict: { args: ["function", "predict", "--port", String(predictPort)], env: { ...quiet, MQTT_URL: broker.url, SCORE_URL: `http://127.0.0.1:${scorePort}/` }, ready: /listening on/ },
      connector: {
        args: ["connector"],
        env: { ...quiet, gateway_url: `http://127.0.0.1:${predictPort}`, broker: broker.url, functions: "fan/messages=predict", port: String(connectorPort), client_id: "faults-connector", NODE_OPTIONS: CONNECTOR_NODE_OPTIONS },
        ready: /connector running/,
        healthPort: connectorPort,
      },
      writer: {
        args: ["influx-writer", "--influx-url", influx.url, "--broker", broker.url, "--port", String(writerPort), "--client-id", "faults-writer"],
        env: quiet,
        ready: /writer running/,
        healthPort: writerPort,
      },
    };
    const system = new FaultSystem(broker, influx, logDir, specs);
    try {
      // Independent of each other (the connector and predict retry until their peers answer).
      await Promise.all(ROLES.map((role) => system.startRole(role)));
    } catch (error) {
      await system.stop();
      throw error;
    }
    return system;
  }

  pid(role: Role): number | undefined {
    return this.#children.get(role)?.pid;
  }

  /** Process ids to sample, by name, including the servers' and this process's own. */
  async pids(): Promise<Record<string, number | undefined>> {
    if (this.#influxd === undefined || (await commOf(this.#influxd)) !== "influxd") this.#influxd = await childPid("influxd");
    return { mosquitto: this.broker.pid, influxd: this.#influxd, ...Object.fromEntries(ROLES.map((r) => [r, this.pid(r)])), harness: process.pid };
  }

  async startRole(role: Role): Promise<void> {
    const spec = this.#specs[role];
    const child = spawnCli(spec.args, spec.env);
    let log = this.#logs.get(role);
    if (log === undefined) this.#logs.set(role, (log = createWriteStream(join(this.logDir, `${role}.log`), { flags: "a" })));
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

  /** HTTP status of each service's /healthz (0: no answer). */
  async health(): Promise<Record<string, number>> {
    const entries = await Promise.all(
      ROLES.filter((r) => this.#specs[r].healthPort !== undefined).map(async (role) => {
        const status = await fetch(`http://127.0.0.1:${this.#specs[role].healthPort}/healthz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.status, () => 0);
        return [role, status] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  async stop(): Promise<void> {
    for (const role of [...ROLES].reverse()) await this.kill(role, "SIGKILL");
    for (const log of this.#logs.values()) log.end();
    await Promise.all([this.broker.stop(), this.influx.stop()]);
  }
}

/** The pid of this process's child named `comm`, if any. */
async function childPid(comm: string): Promise<number | undefined> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const close = stat.lastIndexOf(")");
    if (stat.slice(stat.indexOf("(") + 1, close) !== comm) continue;
    if (Number(stat.slice(close + 2).split(" ")[1]) === process.pid) return Number(entry);
  }
  return undefined;
}

/** The command name in /proc/<pid>/stat, or undefined once the process is gone. */
async function commOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat?.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
}
