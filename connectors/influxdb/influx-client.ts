import type { Logger } from "../../lib/infra/log.js";
import type { InfluxTarget } from "./config.js";
import { InfluxUnavailableError } from "../../lib/errors.js";
import { parseUntrustedJson } from "../../lib/infra/json.js";
import { authHeaders, credentialsHint, request, type Answer } from "./influx-http.js";

export interface WriteOutcome {
  /** Lines InfluxDB refused as bad data (400 on them alone), by index into the batch, with its reason. */
  rejected: Array<{ index: number; error: string }>;
}

export interface LineWriter {
  /**
   * Stores the lines. Resolves with the lines that are bad data (never retry those); the rest are
   * stored. Rejects with an InfluxUnavailableError only when InfluxDB cannot store anything for now
   * (see `judge`), and with the signal's reason when the caller aborts. A missing 1.x database is
   * created first.
   */
  write(lines: readonly string[], signal?: AbortSignal): Promise<WriteOutcome>;
}

/**
 * The precision of every line's timestamp (points.ts): nanoseconds, so that two dead letters of
 * the same millisecond get distinct times (one InfluxDB point is one series and one time).
 */
export const PRECISION = "ns";

export function createLineWriter(target: InfluxTarget, options: { log?: Logger } = {}): LineWriter {
  return new BatchWriter(target.api === "v1" ? new V1Endpoint(target, options.log) : new V2Endpoint(target));
}

/** Posts a body of lines: undefined once stored, InfluxDB's answer when it refused the data (400, 413, 422); throws otherwise. */
interface Endpoint {
  post(body: string, signal: AbortSignal | undefined): Promise<Answer | undefined>;
}

interface Entry {
  line: string;
  index: number;
}

/**
 * Finds the bad lines of a refused batch. When InfluxDB names them (`unable to parse '<line>': …`)
 * they are rejected and the rest is written again; otherwise (a field type conflict, `points beyond
 * retention policy dropped=N`, a body too large) the batch is split in halves until each bad line
 * stands alone: k bad lines in n cost about 2·k·log2(n) requests. Writing a good point again is
 * harmless: InfluxDB keeps one point per series and timestamp, so the second write overwrites the
 * first with the same values (1.x already stored the good points of a partial write; 2.x stores
 * nothing of a batch with a line it cannot parse).
 */
class BatchWriter implements LineWriter {
  constructor(private readonly endpoint: Endpoint) {}

  async write(lines: readonly string[], signal?: AbortSignal): Promise<WriteOutcome> {
    const rejected: WriteOutcome["rejected"] = [];
    await this.#store(
      lines.map((line, index) => ({ line, index })),
      rejected,
      signal,
    );
    return { rejected: rejected.sort((a, b) => a.index - b.index) };
  }

  async #store(batch: Entry[], rejected: WriteOutcome["rejected"], signal: AbortSignal | undefined): Promise<void> {
    if (batch.length === 0) return;
    const refusal = await this.endpoint.post(batch.map((e) => e.line).join("\n"), signal);
    if (refusal === undefined) return;
    const rest: Entry[] = [];
    for (const e of batch) {
      const reason = parseFailure(refusal.message, e.line);
      if (reason === undefined) rest.push(e);
      else rejected.push({ index: e.index, error: `InfluxDB cannot parse the point: ${reason}` });
    }
    if (rest.length < batch.length) return this.#store(rest, rejected, signal);
    const [only] = batch;
    if (batch.length === 1 && only !== undefined) {
      rejected.push({
        index: only.index,
        error: `InfluxDB refused the point (${refusal.status}): ${refusal.message.replace(/^partial write: /, "").replace(/ dropped=\d+$/, "")}`,
      });
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await this.#store(batch.slice(0, half), rejected, signal);
    await this.#store(batch.slice(half), rejected, signal);
  }
}

/** The reason InfluxDB gives for not parsing this exact line, if its message names the line. */
function parseFailure(message: string, line: string): string | undefined {
  const prefix = `unable to parse '${line}': `;
  const at = message.indexOf(prefix);
  if (at === -1) return undefined;
  // 1.x joins the failures with newlines and ends a partial write with " dropped=N".
  return (message.slice(at + prefix.length).split("\nunable to parse '")[0] ?? "").replace(/ dropped=\d+$/, "");
}

/**
 * What an answer to a write means. Stored: 2xx. Bad data: 400, 413 (too large), 422 (2.x: beyond
 * retention). Everything else throws, to be retried: 5xx, 429, a wrong URL, and also 401/403 and a
 * missing database or bucket. Those are configuration mistakes, not outages, but stopping would
 * only leave the messages unacknowledged with the broker all the same; retrying lets an operator
 * fix the credentials or create the database while the writer runs, and /healthz says what to fix.
 */
function judge(answer: Answer, target: InfluxTarget, missing: string): Answer | undefined {
  if (answer.status >= 200 && answer.status < 300) return undefined;
  if (answer.status === 400 || answer.status === 413 || answer.status === 422) return answer;
  const said = `${answer.status}: ${answer.message.slice(0, 300)}`;
  if (answer.status === 401 || answer.status === 403)
    throw new InfluxUnavailableError(`InfluxDB refused the credentials (${said}): ${credentialsHint(target)}`);
  if (answer.status === 404 && /not found/i.test(answer.message))
    throw new InfluxUnavailableError(`${missing} (${said})`);
  if (answer.status === 404)
    throw new InfluxUnavailableError(
      `InfluxDB at ${target.url} has no write API (${said}): check INFLUX_URL and INFLUX_API`,
    );
  throw new InfluxUnavailableError(`InfluxDB answered ${said}`);
}

/** InfluxDB 1.x: POST /write?db=…&precision=ns, which 1.x servers of every version have (Debian ships 1.6). */
class V1Endpoint implements Endpoint {
  readonly #url: string;
  readonly #headers: Record<string, string>;

  constructor(
    private readonly target: Extract<InfluxTarget, { api: "v1" }>,
    private readonly log: Logger | undefined,
  ) {
    this.#url = `${target.url}/write?${new URLSearchParams({ db: target.database, precision: PRECISION }).toString()}`;
    this.#headers = { ...authHeaders(target), "content-type": "text/plain; charset=utf-8" };
  }

  async post(body: string, signal: AbortSignal | undefined): Promise<Answer | undefined> {
    let answer = await request(this.#url, { method: "POST", headers: this.#headers, body, signal });
    if (answer.status === 404 && /database not found/i.test(answer.message)) {
      // As Telegraf's InfluxDB output does by default (skip_database_creation = false).
      await this.#createDatabase(signal);
      answer = await request(this.#url, { method: "POST", headers: this.#headers, body, signal });
    }
    return judge(answer, this.target, `InfluxDB has no database "${this.target.database}"`);
  }

  async #createDatabase(signal: AbortSignal | undefined): Promise<void> {
    const db = this.target.database;
    const statement = `CREATE DATABASE "${db.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    const answer = await request(`${this.target.url}/query`, {
      method: "POST",
      headers: { ...authHeaders(this.target), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ q: statement }).toString(),
      signal,
    });
    const error =
      answer.status === 200 ? statementError(answer.body) : `${answer.status}: ${answer.message.slice(0, 300)}`;
    if (error !== undefined) {
      throw new InfluxUnavailableError(
        `InfluxDB has no database "${db}" and refused to create it (${error}): run ${statement} as an InfluxDB admin (influx -execute '${statement}'), or set INFLUX_DB to a database that exists`,
      );
    }
    this.log?.info({ event: "database_created", database: db }, `InfluxDB had no database "${db}": created it`);
  }
}

function statementError(body: string): string | undefined {
  try {
    const parsed = parseUntrustedJson(body) as { results?: Array<{ error?: string }>; error?: string };
    return parsed.error ?? parsed.results?.[0]?.error;
  } catch {
    return `not an answer to a query: ${body.slice(0, 100)}`;
  }
}

/**
 * InfluxDB 2.x and 3.x (and 1.8+): POST /api/v2/write. A missing bucket is not created: that
 * needs the org's id, a token allowed to create buckets, and a retention period, which are the
 * operator's to choose; the error says how.
 */
class V2Endpoint implements Endpoint {
  readonly #url: string;
  readonly #headers: Record<string, string>;

  constructor(private readonly target: Extract<InfluxTarget, { api: "v2" }>) {
    this.#url = `${target.url}/api/v2/write?${new URLSearchParams({ org: target.org, bucket: target.bucket, precision: PRECISION }).toString()}`;
    this.#headers = { ...authHeaders(target), "content-type": "text/plain; charset=utf-8" };
  }

  async post(body: string, signal: AbortSignal | undefined): Promise<Answer | undefined> {
    const answer = await request(this.#url, { method: "POST", headers: this.#headers, body, signal });
    const { bucket, org } = this.target;
    return judge(
      answer,
      this.target,
      `InfluxDB has no bucket "${bucket}" in org "${org}": create it (influx bucket create --name ${bucket} --org ${org}) or set INFLUX_BUCKET to a bucket that exists`,
    );
  }
}
