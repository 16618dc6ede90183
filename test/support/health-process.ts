import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { eventually } from "./eventually.js";
import { freePort, spawnCli, terminate, waitUntilReady } from "./process.js";

/** One health function as its container runs it: the template's server in its own process. */
export interface HealthProcess {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** What it printed so far (its log lines). */
  output: () => string;
}

const running = new Set<ChildProcessWithoutNullStreams>();

/** Starts `fanwatch function health` on a free port and waits until it answers GET (its store open). */
export async function startHealth(env: NodeJS.ProcessEnv): Promise<HealthProcess> {
  const port = await freePort();
  const child = spawnCli(["function", "health", "--port", String(port), "--host", "127.0.0.1"], {
    LOG_LEVEL: "warn",
    ...env,
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let seen = "";
  child.stdout.on("data", (d: Buffer) => (seen += d.toString()));
  child.stderr.on("data", (d: Buffer) => (seen += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, child);
  await eventually(
    `health on ${url} ready (its store open); output:\n${seen}`,
    async () => (await fetch(url)).status === 200,
  );
  return { url, child, output: () => seen };
}

/** Stops every health process startHealth started and that still runs. */
export async function stopHealthProcesses(): Promise<void> {
  await Promise.all([...running].map((c) => terminate(c)));
}
