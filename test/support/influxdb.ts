import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../lib/infra/net.js";
import { eventually, eventuallyValue } from "./eventually.js";
import { terminate } from "./process.js";

const BINARY = "/usr/bin/influxd";

export interface Influx {
  url: string;
  /** host:port of the RPC service that `influxd backup` and `influxd restore` talk to. */
  rpc: string;
  /** Runs an InfluxQL query on database `fan` (as the admin when authentication is on) and returns the first statement's series. */
  query(
    q: string,
  ): Promise<Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }>>;
  stop(): Promise<void>;
  /**
   * Stops the server (SIGTERM) and starts it again on the same port and data: once `down`
   * resolves (what the outage must have caused), or after `down` ms (a benchmark's fault duration).
   */
  restart(down?: number | (() => Promise<void>)): Promise<void>;
}

export interface InfluxOptions {
  /** Create database `fan` at start (default true). */
  createDatabase?: boolean;
  /**
   * Authentication on, with an admin `admin`/`admin-secret` (the harness's queries use it) and a
   * user `writer`/`writer-secret` with no rights until granted.
   */
  auth?: boolean;
  /** With auth: create no user at all, so that the first admin is still to be created (default true). */
  users?: boolean;
}

export const INFLUX_ADMIN = { username: "admin", password: "admin-secret" };
export const INFLUX_WRITER = { username: "writer", password: "writer-secret" };

/** A real InfluxDB 1.x (Debian's influxd) on free ports with its data in a temporary folder, database `fan` created unless told not to. */
export async function startInfluxDB(options: InfluxOptions = {}): Promise<Influx> {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: apt-get install -y influxdb`);
  // A free port may be taken between its pick and influxd's bind (several start at once in some
  // tests): influxd then exits at once, and a fresh start on other ports is the cure.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnFreePorts(options);
    } catch (error) {
      if (attempt >= 3 || !/influxd exited/.test(String((error as Error).message))) throw error;
    }
  }
}

async function startOnFreePorts(options: InfluxOptions): Promise<Influx> {
  const dir = await mkdtemp(join(tmpdir(), "fanwatch-influxdb-"));
  const [httpPort, rpcPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${httpPort}`;
  await writeFile(
    join(dir, "influxdb.conf"),
    [
      "reporting-disabled = true",
      `bind-address = "127.0.0.1:${rpcPort}"`,
      `[meta]\n  dir = "${dir}/meta"`,
      `[data]\n  dir = "${dir}/data"\n  wal-dir = "${dir}/wal"\n  query-log-enabled = false`,
      `[http]\n  bind-address = "127.0.0.1:${httpPort}"\n  log-enabled = false\n  auth-enabled = ${options.auth === true}`,
      "[monitor]\n  store-enabled = false",
      "[continuous_queries]\n  enabled = false",
    ].join("\n"),
  );
  let child = await launch(dir, url).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  const admin =
    options.auth === true
      ? {
          authorization: `Basic ${Buffer.from(`${INFLUX_ADMIN.username}:${INFLUX_ADMIN.password}`).toString("base64")}`,
        }
      : undefined;
  // A set-up statement, repeated until InfluxDB takes it: on a busy machine the admin created a
  // moment ago may not authenticate yet (401), and a silently failed CREATE USER fails a test later.
  const statement = async (q: string, headers = admin) => {
    await eventuallyValue(
      `InfluxDB to take ${q}`,
      async () => {
        const response = await fetch(`${url}/query?q=${encodeURIComponent(q)}`, {
          method: "POST",
          ...(headers === undefined ? {} : { headers }),
        });
        const text = await response.text();
        return { taken: response.ok && !text.includes('"error"'), answer: `${response.status} ${text}` };
      },
      (result) => result.taken,
      { timeoutMs: 10_000, paceMs: 100 },
    );
  };
  if (options.auth === true && options.users !== false) {
    // With no user yet, InfluxDB takes the statement that creates the first admin unauthenticated.
    await statement(
      `CREATE USER ${INFLUX_ADMIN.username} WITH PASSWORD '${INFLUX_ADMIN.password}' WITH ALL PRIVILEGES`,
      undefined,
    );
    await statement(`CREATE USER ${INFLUX_WRITER.username} WITH PASSWORD '${INFLUX_WRITER.password}'`);
  }
  const query: Influx["query"] = async (q) => {
    const response = await fetch(
      `${url}/query?db=fan&q=${encodeURIComponent(q)}`,
      admin === undefined ? {} : { headers: admin },
    );
    const body = (await response.json()) as {
      results?: Array<{
        series?: Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }>;
        error?: string;
      }>;
      error?: string;
    };
    const error = body.error ?? body.results?.[0]?.error;
    if (error !== undefined) throw new Error(`InfluxDB: ${error} (query: ${q})`);
    return body.results?.[0]?.series ?? [];
  };
  if (options.createDatabase !== false && options.users !== false) await statement("CREATE DATABASE fan");
  return {
    url,
    rpc: `127.0.0.1:${rpcPort}`,
    query,
    async stop() {
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
    async restart(down = 0) {
      await terminate(child);
      await (typeof down === "number" ? new Promise((resolve) => setTimeout(resolve, down)) : down());
      child = await launch(dir, url);
    },
  };
}

async function launch(dir: string, url: string): Promise<ChildProcess> {
  const child = spawn(BINARY, ["-config", join(dir, "influxdb.conf")], { stdio: "ignore" });
  try {
    await eventually(
      "influxd to answer /ping",
      async () => {
        if (child.exitCode !== null) throw new Error(`influxd exited (${child.exitCode})`);
        return fetch(`${url}/ping`).then(
          (r) => r.status === 204,
          () => false,
        );
      },
      { timeoutMs: 20_000, paceMs: 100, onError: "fail" },
    );
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return child;
}
