import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finished, freePort, spawnCli, waitForOutput, type Finished } from "./process.js";

export interface StartedSystem {
  child: ChildProcessWithoutNullStreams;
  gatewayUrl: string;
  /**
   * The broker as printed; for the embedded broker, with the login of its operator user for this
   * run (from the file start names), so that a test's own clients get in as a person's tools do.
   */
  brokerUrl: string;
  password: string;
  /** Everything the command printed so far. */
  output(): string;
  /** Ctrl-C, then waits for the exit. */
  interrupt(): Promise<Finished>;
}

/** Runs `fanwatch start` on free ports and waits until it says it is running. */
export async function startFanwatch(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  port?: number,
): Promise<StartedSystem> {
  const gatewayPort = port ?? (await freePort());
  // A health state of its own for every run (unless the test names one): by default fanwatch start
  // keeps it in the repository's .fanwatch/nats, and an alarm acknowledged by one test would still
  // be acknowledged in the next run.
  // Alertmanager's too: its notification log would otherwise say an alarm was notified already.
  const stateDir = await mkdtemp(join(tmpdir(), "fanwatch-start-nats-"));
  const child = spawnCli(["start", "--port", String(gatewayPort), ...args], {
    NATS_STORE_DIR: join(stateDir, "nats"),
    ALERTMANAGER_DATA_DIR: join(stateDir, "alertmanager"),
    // The embedded broker's operator password of this run: one file per run, runs side by side.
    BROKER_OPERATOR_FILE: join(stateDir, "broker-operator-password"),
    ...env,
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exit = finished(child);
  void exit.finally(() => rm(stateDir, { recursive: true, force: true }));
  await waitForOutput(child, /running; Ctrl-C stops everything/, 60_000);
  const printed = /^broker {3}(\S+)/m.exec(output)?.[1];
  const password = /password (\S+)\)/.exec(output)?.[1];
  if (printed === undefined || password === undefined)
    throw new Error(`fanwatch start did not say its broker and password:\n${output}`);
  const brokerUrl = new URL(printed);
  const operator = /-u (\S+) -P "\$\(cat '([^']+)'\)"/.exec(output);
  if (operator !== null) {
    brokerUrl.username = operator[1] as string;
    brokerUrl.password = (await readFile(operator[2] as string, "utf8")).trim();
  }
  return {
    child,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    brokerUrl: brokerUrl.toString().replace(/\/$/, ""),
    password,
    output: () => output,
    async interrupt() {
      child.kill("SIGINT");
      return exit;
    },
  };
}
