import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

/**
 * Load from wrk (Debian's package): one thread written in C leaves the other core to the server,
 * where a Node.js load generator would take a core itself.
 */
export async function runWrk(
  url: string,
  body: string,
  options: { connections: number; seconds: number; scriptDir: string },
): Promise<WrkResult> {
  const script = join(options.scriptDir, `post-${body.length}.lua`);
  await writeFile(
    script,
    `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(body)}\n`,
  );
  const child = spawn("wrk", [
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--latency",
    "-s",
    script,
    url,
  ]);
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, "close")) as [number];
  if (code !== 0) throw new Error(`wrk failed (${code}): ${out}`);
  return parseWrk(out);
}

export function parseWrk(out: string): WrkResult {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  if (rate === null || total === null) throw new Error(`unexpected wrk output:\n${out}`);
  const errors = [...out.matchAll(/(?:Non-2xx or 3xx responses|Socket errors: connect) (\d+)/g)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  return {
    requestsPerSecond: Number(rate[1]),
    p50Ms: latency(out, "50%"),
    p99Ms: latency(out, "99%"),
    requests: Number(total[1]),
    errors,
  };
}

function latency(out: string, percentile: string): number {
  const m = new RegExp(`^\\s*${percentile}\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(out);
  if (m === null) return Number.NaN;
  const value = Number(m[1]);
  return m[2] === "us" ? value / 1000 : m[2] === "s" ? value * 1000 : value;
}
