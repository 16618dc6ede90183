import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { z } from "zod";

/** The namespace every function of the local gateway runs in, as faas-netes' default. */
export const NAMESPACE = "openfaas-fn";

/** One line a function printed, as OpenFaaS's log API sends it (one JSON object a line). */
export interface LogMessage {
  name: string;
  namespace: string;
  /** The process that printed it (OpenFaaS: the pod). */
  instance: string;
  /** RFC 3339 with milliseconds, UTC. */
  timestamp: string;
  text: string;
}

/** Kept per function: enough to see what led to a restart, bounded whatever a function prints. */
const RING_LINES = 1_000;
const MAX_LINE_CHARS = 4_096;
/** A follower that stops reading is dropped once this much waits for it. */
const MAX_UNREAD_BYTES = 1024 * 1024;

/** The recent lines of one function's processes, oldest first; new lines are announced to followers. */
export class LogRing {
  readonly #lines: LogMessage[] = [];
  readonly #events = new EventEmitter().setMaxListeners(0);

  constructor(readonly name: string) {}

  push(instance: string, text: string, at = new Date()): void {
    const line =
      text.length > MAX_LINE_CHARS
        ? `${text.slice(0, MAX_LINE_CHARS)}… (${text.length - MAX_LINE_CHARS} more characters)`
        : text;
    const message = { name: this.name, namespace: NAMESPACE, instance, timestamp: at.toISOString(), text: line };
    this.#lines.push(message);
    if (this.#lines.length > RING_LINES) this.#lines.shift();
    this.#events.emit("line", message);
  }

  /** The kept lines that pass `query`'s instance and since, the last `tail` of them when tail > 0. */
  select(query: Pick<LogQuery, "instance" | "since" | "tail">): LogMessage[] {
    const kept = this.#lines.filter((m) => passes(m, query));
    return query.tail > 0 ? kept.slice(-query.tail) : kept;
  }

  /** Calls `listener` with every new line until the returned function is called. */
  follow(listener: (message: LogMessage) => void): () => void {
    this.#events.on("line", listener);
    return () => this.#events.off("line", listener);
  }
}

function passes(message: LogMessage, query: Pick<LogQuery, "instance" | "since">): boolean {
  return (
    (query.instance === undefined || message.instance === query.instance) &&
    (query.since === undefined || Date.parse(message.timestamp) >= query.since)
  );
}

// Go's strconv.ParseBool, which the provider uses for `follow`.
const GoBool = z
  .enum(["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"], {
    error: "follow must be true or false",
  })
  .transform((v) => ["1", "t", "T", "TRUE", "true", "True"].includes(v));
const LogQuerySchema = z.object({
  name: z.string({ error: "name (the function) is required" }).min(1, "name (the function) is required"),
  namespace: z.string().optional(),
  instance: z.string().min(1, "instance must name one (faas-cli logs --instance prints them)").optional(),
  // faas-cli sends tail=-1 for "all": <= 0 means unlimited (OpenFaaS API).
  tail: z
    .string()
    .regex(/^-?\d+$/, "tail must be a whole number")
    .transform(Number)
    .default(0),
  follow: GoBool.default(false),
  since: z
    .string()
    .refine(
      (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) && !Number.isNaN(Date.parse(s)),
      "since must be an RFC 3339 time such as 2026-11-27T10:00:00Z",
    )
    .transform(Date.parse)
    .optional(),
});
export type LogQuery = z.infer<typeof LogQuerySchema>;

/** The query of GET /system/logs (the last value of a repeated parameter, as the provider reads it), or why it is wrong. */
export function parseLogQuery(params: URLSearchParams): { query: LogQuery } | { error: string } {
  const last = Object.fromEntries([...new Set(params.keys())].map((key) => [key, params.getAll(key).at(-1)]));
  const parsed = LogQuerySchema.safeParse(last);
  if (parsed.success) return { query: parsed.data };
  return { error: parsed.error.issues.map((issue) => issue.message).join("; ") };
}

/**
 * Answers GET /system/logs as OpenFaaS does: 200 with application/x-ndjson, one message a line,
 * first the kept lines that match, then (follow) every new one until the client goes or `stop`
 * is called. Returns a function that ends the stream.
 */
export function streamLogs(res: ServerResponse, ring: LogRing, query: LogQuery): () => void {
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-cache" });
  res.flushHeaders();
  const send = (message: LogMessage) => {
    if (res.writableLength > MAX_UNREAD_BYTES) return end();
    res.write(`${JSON.stringify(message)}\n`);
  };
  const unfollow = query.follow
    ? ring.follow((m) => {
        if (passes(m, query)) send(m);
      })
    : () => {};
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    unfollow();
    res.end();
  };
  for (const message of ring.select(query)) send(message);
  if (!query.follow) end();
  res.once("close", end);
  return end;
}
