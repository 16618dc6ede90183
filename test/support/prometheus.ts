import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { eventually } from "./eventually.js";
import { REPO_ROOT } from "./paths.js";
import { finished, freePort, terminate, type Finished } from "./process.js";

// deploy/prometheus as the tests run it: Debian's promtool and prometheus (2.42) on a folder made by
// kubernetes-sd-stand-in.ts.

export const PROMETHEUS_DIR = join(REPO_ROOT, "deploy/prometheus");
export const PROMTOOL = process.env.PROMTOOL_BINARY ?? "/usr/bin/promtool";
export const PROMETHEUS = process.env.PROMETHEUS_BINARY ?? "/usr/bin/prometheus";

/** Runs promtool with `args` from `cwd` to completion. */
export async function promtool(args: string[], cwd = PROMETHEUS_DIR): Promise<Finished> {
  return finished(spawn(PROMTOOL, args, { cwd }));
}

export interface TestPrometheus {
  url: string;
  get<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/** Debian's prometheus on a free loopback port with the folder's prometheus.yml and a storage of its own. */
export async function startPrometheus(dir: string): Promise<TestPrometheus> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcessWithoutNullStreams = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { cwd: dir },
  );
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const get = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`);
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
    return ((await response.json()) as { data: T }).data;
  };
  try {
    // An exit ends the wait at once; a refused connection only means not yet.
    await eventually(
      "Prometheus ready",
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode})`);
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true;
      },
      { onError: "fail" },
    );
  } catch (error) {
    await terminate(child);
    throw new Error(`${String(error)}\n${output}`, { cause: error });
  }
  return {
    url,
    get,
    async stop() {
      await terminate(child);
    },
  };
}

/** Deletes a folder made by prometheusDirForTest (kubernetes-sd-stand-in.ts). */
export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}
