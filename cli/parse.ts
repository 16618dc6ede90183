import { InvalidArgumentError, Option, type Command } from "commander";
import type { z } from "zod";
import { helpLine, type Setting } from "../lib/infra/settings.js";

/** Where a command writes: results to stdout, progress and diagnostics to stderr. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** A progress line: rewritten in place on a terminal, one line per update otherwise. */
  progress(line: string): void;
  progressDone(): void;
  /** True on a terminal, where progress lines are rewritten in place. */
  readonly interactive: boolean;
}

export function processIo(): Io {
  const tty = process.stderr.isTTY === true;
  let open = false;
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    // A diagnostic clears an open progress line first; the next progress update redraws it.
    err: (line) => {
      process.stderr.write(`${open ? "\r\x1b[2K" : ""}${line}\n`);
      open = false;
    },
    progress: (line) => {
      open = tty;
      process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    },
    progressDone: () => {
      if (open) process.stderr.write("\n");
      open = false;
    },
    interactive: tty,
  };
}

export function integer(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} takes a whole number, not "${value}".`);
    return n;
  };
}

export function number(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n))
      throw new InvalidArgumentError(`${flag} takes a number, not "${value}".`);
    return n;
  };
}

/**
 * Adds an option for each of `settings` that has a flag, its help line generated from the setting
 * (so the default it shows is the code's). A value is parsed by the setting's own schema, the one
 * its environment variables go through, and refused naming the flag. Returns what the command
 * line gave, typed and keyed by setting name, for the config reader to put before the environment.
 */
export function addSettingFlags<S extends z.ZodObject>(
  command: Command,
  schema: S,
  settings: Readonly<Partial<Record<keyof z.output<S> & string, Setting>>>,
): (opts: Record<string, unknown>) => Partial<z.output<S>> {
  const options: Array<{ name: string; option: Option }> = [];
  for (const [name, setting] of Object.entries<Setting | undefined>(settings)) {
    if (setting?.flag === undefined) continue;
    const option = new Option(setting.flag, helpLine(setting));
    const field = schema.shape[name] as z.ZodType | undefined;
    // A flag without an argument (--autoscale) is a switch: commander gives true.
    if (field !== undefined && (option.required || option.optional))
      option.argParser((text: string) => parseFlag(field, text));
    command.addOption(option);
    options.push({ name, option });
  }
  return (opts) =>
    Object.fromEntries(
      options
        .filter(({ option }) => opts[option.attributeName()] !== undefined)
        .map(({ name, option }) => [name, opts[option.attributeName()]]),
    ) as Partial<z.output<S>>;
}

function parseFlag(field: z.ZodType, text: string): unknown {
  const parsed = field.safeParse(text);
  if (!parsed.success) throw new InvalidArgumentError(`${parsed.error.issues[0]?.message ?? "invalid"}.`);
  return parsed.data;
}
