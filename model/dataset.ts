import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { CsvError, parse } from "csv-parse/sync";
import { DataFormatError, UsageError } from "../lib/errors.js";
import { FAULTY_RANGES, HEALTHY_RANGES } from "../lib/domain/fan-ranges.js";
import { drawReading } from "../simulation/draw.js";
import { FEATURES } from "../lib/domain/features.js";
import { seededRandom, shuffleInPlace } from "../simulation/rng.js";
import { formatTime } from "../simulation/timestamp.js";

/** The reference design's CSV header; our generator writes exactly this format. */
export const CSV_COLUMNS = ["DeviceID", "Time", "Rotation", "Temperature", "Vibration", "Sound", "Faulty"] as const;

export interface LabelledReading {
  deviceID: string;
  time: string;
  features: [number, number, number, number];
  faulty: 0 | 1;
}

export interface Dataset {
  rows: LabelledReading[];
  sha256: string;
}

export interface GenerateOptions {
  fans: number;
  rows: number;
  seed: number;
  /** First timestamp; each fan reports every `intervalSeconds`. */
  start?: Date;
  intervalSeconds?: number;
}

/**
 * Synthetic readings drawn from the reference ranges. Half the fans (rounded down) are healthy and
 * the rest faulty for their whole life, assigned at random from the seed; rows go round-robin
 * over the fans, so each class gets about half the rows.
 */
export function generateReadings(options: GenerateOptions): LabelledReading[] {
  const { fans, rows, seed } = options;
  if (!Number.isInteger(fans) || fans < 1) throw new UsageError(`--fans must be a whole number >= 1, not ${fans}`);
  if (!Number.isInteger(rows) || rows < 1) throw new UsageError(`--rows must be a whole number >= 1, not ${rows}`);
  const random = seededRandom(seed);
  const faulty = shuffleInPlace(
    Array.from({ length: fans }, (_, i) => (i < Math.floor(fans / 2) ? 0 : 1)),
    random,
  );
  const start = options.start ?? new Date(Date.UTC(2020, 9, 2, 10, 0, 0));
  const interval = (options.intervalSeconds ?? 2) * 1000;
  return Array.from({ length: rows }, (_, i) => {
    const fan = i % fans;
    const label = faulty[fan] as 0 | 1;
    const ranges = label === 1 ? FAULTY_RANGES : HEALTHY_RANGES;
    const features = FEATURES.map((name) => drawReading(ranges[name], random)) as LabelledReading["features"];
    const time = formatTime(new Date(start.getTime() + Math.floor(i / fans) * interval));
    return { deviceID: String(fan + 1), time, features, faulty: label };
  });
}

export function toCsv(rows: readonly LabelledReading[]): string {
  const lines = rows.map((r) => [r.deviceID, r.time, ...r.features.map((v) => v.toFixed(1)), r.faulty].join(","));
  return `${CSV_COLUMNS.join(",")}\n${lines.join("\n")}\n`;
}

export async function writeCsv(file: string, rows: readonly LabelledReading[]): Promise<void> {
  await writeFile(file, toCsv(rows));
}

const TIME_FORMAT = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}/;

export async function readCsv(file: string): Promise<Dataset> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (error) {
    throw new DataFormatError(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  return { rows: parseCsv(text.toString("utf8"), file), sha256: createHash("sha256").update(text).digest("hex") };
}

/** Parses the reference CSV format; any deviation is an error naming the line and column. */
export function parseCsv(text: string, source = "data"): LabelledReading[] {
  let records: string[][];
  try {
    records = parse(text, { bom: true, trim: true, skip_empty_lines: true, relax_column_count: true });
  } catch (error) {
    const line = error instanceof CsvError ? ` line ${typeof error["lines"] === "number" ? error["lines"] : "?"}` : "";
    throw new DataFormatError(`${source}${line}: not a CSV file (${(error as Error).message})`, { cause: error });
  }
  const [header, ...body] = records;
  if (header === undefined)
    throw new DataFormatError(`${source}: the file is empty; expected the header ${CSV_COLUMNS.join(",")}`);
  if (header.join(",") !== CSV_COLUMNS.join(",")) {
    throw new DataFormatError(
      `${source} line 1: the header is "${header.join(",")}"; expected "${CSV_COLUMNS.join(",")}"`,
    );
  }
  if (body.length === 0) throw new DataFormatError(`${source}: the file has a header but no readings`);
  return body.map((record, index) => parseRecord(record, `${source} line ${index + 2}`));
}

function parseRecord(record: string[], where: string): LabelledReading {
  if (record.length !== CSV_COLUMNS.length) {
    throw new DataFormatError(
      `${where}: ${record.length} columns; expected ${CSV_COLUMNS.length} (${CSV_COLUMNS.join(",")})`,
    );
  }
  const [deviceID, time, ...rest] = record as [string, string, ...string[]];
  if (deviceID === "") throw new DataFormatError(`${where}, column DeviceID: empty`);
  if (!TIME_FORMAT.test(time)) throw new DataFormatError(`${where}, column Time: "${time}" is not YYYY-MM-DD HH:MM:SS`);
  const numbers = rest.map((value, i) => {
    const n = value === "" ? Number.NaN : Number(value);
    if (!Number.isFinite(n))
      throw new DataFormatError(`${where}, column ${CSV_COLUMNS[i + 2]}: "${value}" is not a number`);
    return n;
  });
  const faulty = numbers[4];
  if (faulty !== 0 && faulty !== 1) throw new DataFormatError(`${where}, column Faulty: "${rest[4]}" is not 0 or 1`);
  return { deviceID, time, features: numbers.slice(0, 4) as LabelledReading["features"], faulty };
}
