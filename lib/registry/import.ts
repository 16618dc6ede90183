import { ownLimitProblem } from "../domain/plausibility.js";
import { CsvError, parse } from "csv-parse/sync";
import { z } from "zod";
import { FEATURES, type FeatureName } from "../domain/features.js";
import { deviceIdProblem, FanRecordSchema } from "./fan-record.js";
import type { FanDetails } from "./registry.js";

/**
 * The file `fanwatch fans import` reads (docs/registry.md, "Import"): CSV with a header or JSON
 * lines, one fan per line, with the fields below. Every line is checked before anything is
 * written: an OT officer's import is all or nothing, and a file with one bad line is refused
 * whole, each bad line named with its number and why.
 */
export const IMPORT_FIELDS = ["id", "name", "site", "location", "type", "tags"] as const;
/** JSON lines may also carry a fan's sensor limits (an object, as `fans list --json` shows them). */
const JSON_FIELDS = [...IMPORT_FIELDS, "limits"] as const;

export type ImportFormat = "csv" | "jsonl";

/** One fan of the file: a field left out (a column the header lacks, a key a JSON line lacks) leaves the fan's value as it is. */
export interface ImportRow {
  line: number;
  id: string;
  details: FanDetails;
}

export interface ImportProblem {
  /** 1 is the first line of the file (a CSV's header). */
  line: number;
  problem: string;
}

export interface ParsedImport {
  rows: ImportRow[];
  problems: ImportProblem[];
}

/** JSON lines when the name says so (.jsonl, .ndjson, .json) or the first text is `{`; CSV otherwise. */
export function importFormat(path: string, text: string): ImportFormat {
  if (/\.(jsonl|ndjson|json)$/i.test(path)) return "jsonl";
  if (/\.csv$/i.test(path)) return "csv";
  return text
    .replace(/^\uFEFF/, "")
    .trimStart()
    .startsWith("{")
    ? "jsonl"
    : "csv";
}

/** Tags as a CSV cell holds them: separated by ";", each trimmed, empty ones dropped. */
export function splitTags(cell: string): string[] {
  return cell
    .split(";")
    .map((t) => t.trim())
    .filter((t) => t !== "");
}

/** The record's own checks, less its defaults: a field left out must stay out (FanRecordSchema would fill it with ""). */
const { shape } = FanRecordSchema;
const DetailsSchema = z
  .object({
    name: shape.name.unwrap(),
    site: shape.site.unwrap(),
    location: shape.location.unwrap(),
    type: shape.type.unwrap(),
    tags: shape.tags.unwrap(),
    limits: shape.limits,
  })
  .partial();

export function parseImport(text: string, format: ImportFormat): ParsedImport {
  const parsed = format === "csv" ? parseCsv(text) : parseJsonLines(text);
  if (parsed.rows.length === 0 && parsed.problems.length === 0)
    parsed.problems.push({ line: 1, problem: "the file holds no fans" });
  return {
    rows: parsed.rows,
    problems: [...parsed.problems, ...duplicates(parsed.rows)].sort((a, b) => a.line - b.line),
  };
}

function parseCsv(text: string): ParsedImport {
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = parse(text, {
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      info: true,
    }) as unknown as Array<{ record: string[]; info: { lines: number } }>;
  } catch (error) {
    const line = error instanceof CsvError && typeof error["lines"] === "number" ? error["lines"] : 1;
    return { rows: [], problems: [{ line, problem: `not CSV: ${(error as Error).message}` }] };
  }
  const [header, ...body] = records;
  if (header === undefined) return { rows: [], problems: [] };
  const columns = header.record.map((c) => c.toLowerCase());
  const headerProblems = columns.flatMap((c, i) => {
    if (!(IMPORT_FIELDS as readonly string[]).includes(c))
      return [`column ${i + 1} "${c}" is not a field (the fields: ${IMPORT_FIELDS.join(",")})`];
    if (columns.indexOf(c) !== i) return [`column "${c}" is there twice`];
    return [];
  });
  if (!columns.includes("id"))
    headerProblems.push(`the header has no "id" column (the fields: ${IMPORT_FIELDS.join(",")})`);
  if (headerProblems.length > 0)
    return { rows: [], problems: [{ line: header.info.lines, problem: headerProblems.join("; ") }] };

  const rows: ImportRow[] = [];
  const problems: ImportProblem[] = [];
  for (const { record, info } of body) {
    if (record.length !== columns.length) {
      problems.push({
        line: info.lines,
        problem: `${record.length} ${record.length === 1 ? "cell" : "cells"}; the header has ${columns.length} (${columns.join(",")})`,
      });
      continue;
    }
    const fields: Record<string, unknown> = {};
    columns.forEach((c, i) => (fields[c] = c === "tags" ? splitTags(record[i] ?? "") : record[i]));
    const row = checkFan(fields, info.lines);
    if ("problem" in row) problems.push(row);
    else rows.push(row);
  }
  return { rows, problems };
}

function parseJsonLines(text: string): ParsedImport {
  const rows: ImportRow[] = [];
  const problems: ImportProblem[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((source, index) => {
      const line = index + 1;
      if (source.trim() === "") return;
      let value: unknown;
      try {
        value = JSON.parse(source);
      } catch (error) {
        problems.push({ line, problem: `not JSON: ${(error as Error).message}` });
        return;
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problems.push({ line, problem: "not a JSON object" });
        return;
      }
      const fields: Record<string, unknown> = { ...value };
      const unknown = Object.keys(fields).filter((k) => !(JSON_FIELDS as readonly string[]).includes(k));
      if (unknown.length > 0) {
        problems.push({
          line,
          problem: `${unknown.map((k) => `"${k}"`).join(", ")} ${unknown.length === 1 ? "is not a field" : "are not fields"} (the fields: ${JSON_FIELDS.join(", ")})`,
        });
        return;
      }
      if (typeof fields.tags === "string") fields.tags = splitTags(fields.tags);
      const row = checkFan(fields, line);
      if ("problem" in row) problems.push(row);
      else rows.push(row);
    });
  return { rows, problems };
}

/** The fan of one line, or why it cannot be one: every problem of the line, not the first only. */
function checkFan(fields: Record<string, unknown>, line: number): ImportRow | ImportProblem {
  const { id, ...rest } = fields;
  const reasons: string[] = [];
  if (typeof id !== "string" || id === "") reasons.push("no id");
  else {
    const problem = deviceIdProblem(id);
    if (problem !== undefined) reasons.push(problem);
  }
  const details = DetailsSchema.safeParse(rest);
  if (!details.success) reasons.push(...details.error.issues.map(describeIssue));
  if (reasons.length > 0 || !details.success) return { line, problem: reasons.join("; ") };
  return { line, id: id as string, details: dropUndefined(details.data) };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.map(String).join(".");
  return `${where === "" ? "" : `${where}: `}${issue.message}`;
}

/** zod's partial() keeps absent fields as undefined keys; a field left out must not count as given. */
function dropUndefined(details: FanDetails): FanDetails {
  return Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined));
}

/** An id on two lines is a mistake in the file, not an update: both lines named. */
function duplicates(rows: readonly ImportRow[]): ImportProblem[] {
  const first = new Map<string, number>();
  const problems: ImportProblem[] = [];
  for (const row of rows) {
    const seen = first.get(row.id);
    if (seen === undefined) first.set(row.id, row.line);
    else problems.push({ line: row.line, problem: `fan "${row.id}" is on line ${seen} already` });
  }
  return problems;
}

/**
 * `sensor=min:max` (`fans add --limit temperature=-20:90`): the fan's own limits for one sensor,
 * where they differ from the defaults (lib/domain/plausibility.ts). Throws a message for anything else.
 */
export function parseLimit(text: string): { sensor: FeatureName; min: number; max: number } {
  const match = /^([a-z]+)=([^:]+):(.+)$/.exec(text.trim());
  const sensor = match?.[1];
  if (match === null || sensor === undefined || !(FEATURES as readonly string[]).includes(sensor))
    throw new Error(`"${text}" is not sensor=min:max with a sensor of ${FEATURES.join(", ")} (temperature=-20:90)`);
  const min = Number(match[2]);
  const max = Number(match[3]);
  if (match[2]?.trim() === "" || match[3]?.trim() === "" || !Number.isFinite(min) || !Number.isFinite(max))
    throw new Error(`"${text}": min and max must be numbers`);
  if (!(min < max)) throw new Error(`"${text}": min must be below max`);
  const narrower = ownLimitProblem(sensor as FeatureName, { min, max });
  if (narrower !== undefined) throw new Error(`"${text}": ${narrower}`);
  return { sensor: sensor as FeatureName, min, max };
}
