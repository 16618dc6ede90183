/**
 * What the function server needs to know about of-watchdog, read from the environment the
 * watchdog passes on to the process it starts (its own, unchanged).
 *
 * On SIGTERM of-watchdog (http mode) forwards the signal to us at once, yet goes on accepting and
 * proxying requests for its health-check interval (`healthcheck_interval`, by default
 * `write_timeout`, by default 30 s) before it stops listening. A function that stopped at the
 * signal would leave every request of that interval to fail with 500 "connection refused"; so,
 * behind the watchdog, the server keeps serving that long (plus a margin for a request the watchdog
 * accepted at the last moment), and only then drains and closes. Anywhere else (the local gateway,
 * `fanwatch function`, tests) nothing sends after the signal, and the server stops at once.
 */

import { tmpdir } from "node:os";
import { join } from "node:path";

/** Time for a request the watchdog accepted just before it stopped listening to reach us. */
export const WATCHDOG_MARGIN_MS = 1000;

/** of-watchdog's own default for write_timeout (and so for healthcheck_interval). */
const WATCHDOG_DEFAULT_TIMEOUT_MS = 30_000;

/**
 * True when of-watchdog started this process in http mode: it runs `fprocess` (or
 * `function_process`) with its own environment, which says `mode=http`. Our Dockerfile sets both;
 * the local gateway and `fanwatch function` set neither.
 */
export function behindWatchdog(env: NodeJS.ProcessEnv): boolean {
  const command = env.fprocess ?? env.function_process ?? "";
  return env.mode === "http" && command.trim() !== "";
}

/**
 * How long to keep serving after SIGTERM: the watchdog's health-check interval plus a margin
 * behind of-watchdog, 0 elsewhere. Reads the settings as the watchdog does: a whole number is
 * seconds, otherwise a Go duration ("15s", "1m30s"); a value it cannot read falls back to the default.
 */
export function keepServingMs(env: NodeJS.ProcessEnv): number {
  if (!behindWatchdog(env)) return 0;
  const writeTimeout = watchdogDuration(env.write_timeout, WATCHDOG_DEFAULT_TIMEOUT_MS);
  return watchdogDuration(env.healthcheck_interval, writeTimeout) + WATCHDOG_MARGIN_MS;
}

function watchdogDuration(value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  if (/^\+?\d+$/.test(value)) return Number(value) * 1000;
  return goDurationMs(value) ?? fallbackMs;
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration ("300ms", "1h2m3.5s", "0") in milliseconds; undefined if it is not one. Negative counts as 0. */
export function goDurationMs(text: string): number | undefined {
  if (text === "0") return 0;
  const match = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(text);
  if (match === null) return undefined;
  let total = 0;
  for (const [, amount, unit] of (match[2] as string).matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(amount) * (UNIT_MS[unit as string] as number);
  }
  return match[1] === "-" ? 0 : total;
}

/**
 * The watchdog's lock file, when the function is to write it: behind of-watchdog with
 * `suppress_lock=true`, the watchdog writes none and its /_/health (which OpenFaaS probes for
 * liveness, and CE for readiness too) answers 200 only while `$TMPDIR/.lock` exists. Written by the
 * function once init() has finished, it says the function is alive: it stays while a dependency is
 * away (the function's /_/ready, which the watchdog's /_/ready asks, says that), so that an outage
 * elsewhere never gets the pod restarted.
 */
export function watchdogLockFile(env: NodeJS.ProcessEnv): string | undefined {
  if (!behindWatchdog(env) || env.suppress_lock !== "true") return undefined;
  // Where Go's os.TempDir() looks, as the watchdog does.
  return join(env.TMPDIR !== undefined && env.TMPDIR !== "" ? env.TMPDIR : tmpdir(), ".lock");
}
