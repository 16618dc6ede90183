import { z } from "zod";
import { InputError } from "../../lib/errors.js";

/**
 * The queries of GET /function/health/history and /evidence (docs/health.md, "History" and
 * "Evidence"), checked once here: a bad one is a 400 naming its parameter.
 */

export const HISTORY_DEFAULT_LIMIT = 20;
export const HISTORY_MAX_LIMIT = 200;
export const EVIDENCE_DEFAULT_LIMIT = 1_000;
export const EVIDENCE_MAX_LIMIT = 10_000;

/** Where a page of history goes on: episodes opened before stream sequence `before`, read from `readFrom` down (absent: the stream's end). */
export interface HistoryCursor {
  before: number;
  readFrom?: number | undefined;
}

export interface HistoryQuery {
  deviceID: string;
  since: number | undefined;
  until: number | undefined;
  limit: number;
  cursor: HistoryCursor | undefined;
}

export type EvidenceQuery =
  | { deviceID: string; kind: "episode"; alarmId: string }
  | {
      deviceID: string;
      kind: "healthy";
      since: number | undefined;
      until: number | undefined;
      limit: number;
      /** The stream sequence to go on from (the previous page's next one). */
      after: number | undefined;
    };

/** One value: a parameter given twice is refused rather than one of them picked. */
const one = z.string({ error: "given once" });
const DeviceId = one.trim().min(1, "a device ID").max(128);

/** An ISO 8601 time with a zone (`2026-11-27T18:00:00Z`): one without would mean whichever zone health runs in. */
const Instant = one.pipe(
  z.iso
    .datetime({ offset: true, error: "an ISO 8601 time with a zone, e.g. 2026-11-27T18:00:00Z" })
    .transform((text) => Date.parse(text))
    .pipe(z.number().finite("no such time")),
);

function count(max: number) {
  return one.regex(/^\d+$/, "a whole number").transform(Number).pipe(z.number().int().min(1).max(max));
}

const Cursor = one.regex(/^[A-Za-z0-9_-]{1,64}$/, "a cursor as a previous answer gave it").transform((text, ctx) => {
  const parts = Buffer.from(text, "base64url").toString("utf8").split(".");
  const [before, readFrom] = parts.map((p) => (/^\d{1,15}$/.test(p) ? Number(p) : NaN));
  if (parts.length > 2 || before === undefined || !(before >= 1) || (readFrom !== undefined && !(readFrom >= 1))) {
    ctx.addIssue({ code: "custom", message: "a cursor as a previous answer gave it" });
    return z.NEVER;
  }
  return { before, readFrom } satisfies HistoryCursor;
});

const HistorySchema = z.object({
  deviceID: DeviceId,
  since: Instant.optional(),
  until: Instant.optional(),
  limit: count(HISTORY_MAX_LIMIT).optional(),
  cursor: Cursor.optional(),
});

const EvidenceSchema = z.object({
  deviceID: DeviceId,
  alarmId: one.min(1).max(256).optional(),
  healthy: z.enum(["true", "false"], { error: "true or false" }).optional(),
  since: Instant.optional(),
  until: Instant.optional(),
  limit: count(EVIDENCE_MAX_LIMIT).optional(),
  cursor: one
    .regex(/^[A-Za-z0-9_-]{1,24}$/, "a cursor as a previous answer gave it")
    .transform((text) => Number(Buffer.from(text, "base64url").toString("utf8")))
    .pipe(z.number({ error: "a cursor as a previous answer gave it" }).int().min(1))
    .optional(),
});

type Query = Record<string, string | string[] | undefined>;

export function parseHistoryQuery(query: Query): HistoryQuery {
  const q = parse(HistorySchema, query, "deviceID=<id>, since, until (ISO times), limit=1..200, cursor");
  checkOrder(q.since, q.until);
  return {
    deviceID: q.deviceID,
    since: q.since,
    until: q.until,
    limit: q.limit ?? HISTORY_DEFAULT_LIMIT,
    cursor: q.cursor,
  };
}

export function parseEvidenceQuery(query: Query): EvidenceQuery {
  const q = parse(
    EvidenceSchema,
    query,
    "deviceID=<id> and alarmId=<episode>, or deviceID=<id>&healthy=true with since, until, limit=1..10000, cursor",
  );
  if ((q.alarmId === undefined) === (q.healthy !== "true"))
    throw new InputError(
      "ask for one episode's evidence (alarmId=<episode>) or for the healthy sample (healthy=true), not both or neither",
      q.alarmId === undefined ? "alarmId" : "healthy",
    );
  if (q.alarmId !== undefined) return { deviceID: q.deviceID, kind: "episode", alarmId: q.alarmId };
  checkOrder(q.since, q.until);
  return {
    deviceID: q.deviceID,
    kind: "healthy",
    since: q.since,
    until: q.until,
    limit: q.limit ?? EVIDENCE_DEFAULT_LIMIT,
    after: q.cursor,
  };
}

/** The opaque cursor of a history page: base64url of "before[.readFrom]". */
export function encodeHistoryCursor(cursor: HistoryCursor): string {
  const text = cursor.readFrom === undefined ? `${cursor.before}` : `${cursor.before}.${cursor.readFrom}`;
  return Buffer.from(text, "utf8").toString("base64url");
}

/** The opaque cursor of a page of the healthy sample: base64url of the stream sequence to go on from. */
export function encodeEvidenceCursor(after: number): string {
  return Buffer.from(String(after), "utf8").toString("base64url");
}

function parse<S extends z.ZodType>(schema: S, query: Query, usage: string): z.output<S> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = String(issue?.path[0] ?? "query");
  throw new InputError(`${field}: ${issue?.message ?? "invalid"} (the query is ${usage})`, field, {
    cause: parsed.error,
  });
}

function checkOrder(since: number | undefined, until: number | undefined): void {
  if (since !== undefined && until !== undefined && until < since)
    throw new InputError(
      `until (${new Date(until).toISOString()}) is before since (${new Date(since).toISOString()})`,
      "until",
    );
}
