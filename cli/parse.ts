import { InvalidArgumentError, Option, type Command } from "commander";
import type { z } from "zod";
import { environmentHelp, helpLine, type Setting, type Settings, type SettingValues } from "../lib/infra/settings.js";

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
export function addSettingFlags<S extends Settings>(
  command: Command,
  settings: S,
): (opts: Record<string, unknown>) => Partial<SettingValues<S>> {
  const options: Array<{ name: string; option: Option }> = [];
  for (const [name, setting] of Object.entries<Setting>(settings)) {
    if (setting.flag === undefined) continue;
    const option = new Option(setting.flag, helpLine(setting));
    // A flag without an argument (--autoscale) is a switch: commander gives true.
    if (option.required || option.optional)
      option.argParser(
        setting.sensitive === true ? unechoedParser(command, option, setting.schema) : settingParser(setting.schema),
      );
    command.addOption(option);
    options.push({ name, option });
  }
  return (opts) =>
    Object.fromEntries(
      options
        .filter(({ option }) => opts[option.attributeName()] !== undefined)
        .map(({ name, option }) => [name, opts[option.attributeName()]]),
    ) as Partial<SettingValues<S>>;
}

/**
 * settingParser for a value that may carry credentials: commander's own refusal quotes the value
 * whole, so this one refuses through the command itself, naming the flag and the schema's reason only.
 */
function unechoedParser<T extends z.ZodType>(
  command: Command,
  option: Option,
  schema: T,
): (text: string) => z.output<T> {
  return (text) => {
    const parsed = schema.safeParse(text);
    // Not commander's code "commander.invalidArgument": commander would refuse it again, quoting the value.
    const options = { code: "fanwatch.invalidArgument" };
    if (!parsed.success)
      command.error(
        `error: option '${option.flags}' argument is invalid. ${parsed.error.issues[0]?.message ?? "invalid"}.`,
        options,
      );
    return parsed.data;
  };
}

/** An option's parser from a setting's schema: the flag's text is checked as its variable's is, and refused naming the flag. */
export function settingParser<T extends z.ZodType>(schema: T): (text: string) => z.output<T> {
  return (text) => {
    const parsed = schema.safeParse(text);
    if (!parsed.success) throw new InvalidArgumentError(`${parsed.error.issues[0]?.message ?? "invalid"}.`);
    return parsed.data;
  };
}

/**
 * The settings a command reads, as help text after its options: each section's variables, their
 * help and default (those with a flag of the command point to it), then any notes. Generated from
 * the descriptors, so a setting a command reads is never left out of its help. Call it after the
 * options are added.
 */
export function addSettingsHelp(
  command: Command,
  sections: ReadonlyArray<{ title: string; settings: Settings; except?: readonly string[] }>,
  notes: readonly string[] = [],
): Command {
  const hasFlag = (flag: string) => command.options.some((option) => option.long === flag);
  const lines = sections.flatMap(({ title, settings, except }) => {
    const rows = environmentHelp(settings, except, hasFlag);
    return rows.length === 0 ? [] : ["", `${title}:`, ...rows];
  });
  return command.addHelpText("after", [...lines, ...(notes.length === 0 ? [] : ["", ...notes])].join("\n"));
}
