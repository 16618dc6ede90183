import { spawn } from "node:child_process";
import { once } from "node:events";
import { peakRssMb } from "../support/process-stats.js";

export interface Measured {
  seconds: number;
  /** The highest VmHWM seen while it ran (polled every 10 ms, so the last few ms may be missed). */
  peakRssMb: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion and times it from spawn to exit, process start included (the same
 * for the command measured and its floor: both are Node processes). Fails when it exits non-zero.
 */
export async function measure(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Measured> {
  const started = performance.now();
  const child = spawn(command, args, { env: { ...process.env, LOG_LEVEL: "silent", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let peak = 0;
  const sample = () =>
    void peakRssMb(child.pid).then(
      (mb) => (peak = Number.isFinite(mb) ? Math.max(peak, mb) : peak),
      () => undefined, // gone between two polls
    );
  sample();
  const poll = setInterval(sample, 10);
  const [code] = (await once(child, "close")) as [number | null];
  clearInterval(poll);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${code}:\n${stderr}\n${stdout}`);
  return { seconds, peakRssMb: peak, stdout, stderr };
}

export const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** `a / b` with two decimals (null when b is not positive). */
export function ratio(a: number, b: number): number | null {
  return b > 0 && Number.isFinite(a) ? Math.round((a / b) * 100) / 100 : null;
}
