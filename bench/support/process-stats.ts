import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** Peak resident memory (VmHWM) of a process since it started, in MB, from /proc. */
export async function peakRssMb(pid: number | undefined): Promise<number> {
  return statusMb(pid, "VmHWM");
}

/** Resident memory (VmRSS) of a process now, in MB, from /proc. */
export async function rssMb(pid: number | undefined): Promise<number> {
  return statusMb(pid, "VmRSS");
}

async function statusMb(pid: number | undefined, field: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Math.round(Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) / 1024);
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100; // USER_HZ on Linux
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** The pids of a process's children (none once it is gone). */
export function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
  } catch {
    return [];
  }
}

/** A process's command line, words separated and surrounded by spaces ("" once it is gone). */
export function readArgs(pid: number): string {
  try {
    return ` ${readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")} `;
  } catch {
    return "";
  }
}
