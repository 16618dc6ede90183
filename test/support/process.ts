import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { eventually } from "./eventually.js";
import { CLI, REPO_ROOT } from "./paths.js";

export { freePort } from "../../lib/infra/net.js";

export interface Finished {
  code: number | null;
  /** The signal that ended the process, when one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `fanwatch` binary to completion. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  const child = spawnCli(args, env);
  return finished(child);
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "silent", ...env },
  });
}

export async function finished(child: ChildProcessWithoutNullStreams): Promise<Finished> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

/** Resolves once `pattern` appears on the child's stdout or stderr; rejects if it exits first. */
export function waitForOutput(
  child: ChildProcessWithoutNullStreams,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (d: Buffer) => {
      seen += d.toString();
      const match = pattern.exec(seen);
      if (match !== null) {
        cleanup();
        resolve(match[0]);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before printing ${pattern}; output:\n${seen}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${seen}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.stderr.off("data", onData);
      child.off("exit", onExit);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", onExit);
  });
}

/**
 * Resolves once the function server at `url` answers GET /_/ready with 200 (its module loaded);
 * rejects if `child` exits first or `timeoutMs` passes, with what it printed.
 */
export async function waitUntilReady(
  url: string,
  child: ChildProcessWithoutNullStreams,
  timeoutMs = 20_000,
): Promise<void> {
  let seen = "";
  const onData = (d: Buffer) => (seen += d.toString());
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  try {
    await eventually(
      `${url} to be ready`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${url} was ready`);
        const status = await fetch(new URL("/_/ready", url)).then(
          (response) => response.status,
          () => 0, // not listening yet
        );
        return status === 200;
      },
      { timeoutMs, onError: "fail" },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; output:\n${seen}`, { cause: error });
  } finally {
    child.stdout.off("data", onData);
    child.stderr.off("data", onData);
  }
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const type = response.headers.get("content-type") ?? "";
  return { status: response.status, type, body: type.includes("json") ? JSON.parse(text) : text };
}

/** SIGTERM, then waits for the exit (at once if it has exited already). */
export async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, "exit");
  child.kill("SIGTERM");
  await exit;
}
