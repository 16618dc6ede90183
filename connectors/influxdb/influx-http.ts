import type { InfluxTarget } from "./config.js";
import { InfluxQueryError, InfluxUnavailableError } from "../../lib/errors.js";
import { HttpClient, HttpTimeoutError } from "../../lib/infra/http/client.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { basicAuthHeader } from "../../lib/infra/http/basic-auth.js";

/** Longest wait for one answer from InfluxDB; a batch of 1000 points takes about 10 ms. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** An HTTP answer: its status and the server's message (the `error` or `message` of its JSON body). */
export interface Answer {
  status: number;
  message: string;
  body: string;
}

export function authHeaders(target: InfluxTarget): Record<string, string> {
  if (target.api === "v2") return { authorization: `Token ${target.token}` };
  if (target.username === undefined) return {};
  return { authorization: basicAuthHeader({ user: target.username, password: target.password ?? "" }) };
}

/**
 * One client for every InfluxDB this process talks to (one, in practice): a keep-alive connection
 * per server, and idle ones do not keep the process alive. Answers may be large (`fanwatch
 * deadletters --limit`), hence a cap well above the default, which only guards against no end.
 */
const http = new HttpClient({ maxAnswerBytes: 256 * 1024 * 1024 });

/**
 * One request with a timeout. A connection failure or a timeout becomes an InfluxUnavailableError;
 * an abort by the caller's signal is rethrown as is (the caller stopped, InfluxDB is not to blame).
 */
export async function request(
  url: string,
  init: {
    method: "GET" | "POST";
    headers: Record<string, string>;
    body?: string;
    signal?: AbortSignal | undefined;
    /** Longer than REQUEST_TIMEOUT_MS for a heavy query (influx-setup's backfill of a day). */
    timeoutMs?: number;
  },
): Promise<Answer> {
  const { signal, timeoutMs = REQUEST_TIMEOUT_MS, ...rest } = init;
  try {
    const answer = await http.request({ ...rest, signal, url, timeoutMs });
    return { status: answer.status, message: messageOf(answer.body), body: answer.body };
  } catch (error) {
    if (signal?.aborted === true) throw signal.reason;
    const why = error instanceof HttpTimeoutError ? `no answer within ${timeoutMs / 1000} s` : causeOf(error);
    throw new InfluxUnavailableError(`InfluxDB at ${new URL(url).origin} is unreachable: ${why}`, { cause: error });
  }
}

export interface Series {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

/**
 * Runs one InfluxQL statement through /query (every 1.x server; 2.x and 3.x through their 1.x
 * compatibility API, where the bucket is the database) and returns its series.
 */
export async function influxQuery(
  target: InfluxTarget,
  statement: string,
  options: { database?: boolean; signal?: AbortSignal } = {},
): Promise<Series[]> {
  const params = new URLSearchParams({ q: statement });
  if (options.database !== false) params.set("db", target.api === "v1" ? target.database : target.bucket);
  const answer = await request(`${target.url}/query`, {
    method: "POST",
    headers: { ...authHeaders(target), "content-type": "application/x-www-form-urlencoded" },
    body: params.toString(),
    signal: options.signal,
  });
  if (answer.status === 401 || answer.status === 403)
    throw new InfluxUnavailableError(
      `InfluxDB refused the credentials (${answer.status}: ${answer.message}): ${credentialsHint(target)}`,
    );
  if (answer.status !== 200)
    throw new InfluxUnavailableError(`InfluxDB answered ${answer.status} to ${statement}: ${answer.message}`);
  let body: { results?: Array<{ series?: Series[]; error?: string }> };
  try {
    body = parseUntrustedJson(answer.body) as typeof body;
  } catch {
    throw new InfluxQueryError(
      `${target.url}/query answered something other than InfluxDB's JSON: ${answer.body.slice(0, 100)}`,
    );
  }
  const error = body.results?.[0]?.error;
  if (error !== undefined) throw new InfluxQueryError(error);
  return body.results?.[0]?.series ?? [];
}

export function credentialsHint(target: InfluxTarget): string {
  return target.api === "v1"
    ? "check INFLUX_USERNAME and INFLUX_PASSWORD"
    : "check INFLUX_TOKEN (it needs write access to the bucket)";
}

function messageOf(text: string): string {
  try {
    const body = parseUntrustedJson(text) as { error?: unknown; message?: unknown };
    if (typeof body.error === "string") return body.error;
    if (typeof body.message === "string") return body.message;
  } catch {
    // not JSON: the text itself
  }
  return text.trim();
}

function causeOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
