import { InvalidArgumentError } from "commander";

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
    if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} takes a number, not "${value}".`);
    return n;
  };
}

/** A flag that sets an environment variable: [commander flag, variable, help]. */
export type EnvFlag = [flag: string, env: string, help: string];

/** The environment with every given flag's variable set, for services configured by environment. */
export function envWithFlags(flags: readonly EnvFlag[], opts: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...env };
  for (const [flag, name] of flags) {
    const key = (flag.split(" ")[0] ?? "").slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = opts[key];
    if (value !== undefined) result[name] = String(value);
  }
  return result;
}
