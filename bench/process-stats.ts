import { readFile } from "node:fs/promises";

/** Peak resident memory (VmHWM) of a process, in MB, from /proc. */
export async function peakRssMb(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024);
}
