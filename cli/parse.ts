import { InvalidArgumentError } from "commander";

/** Where a command writes: results to stdout, progress and diagnostics to stderr. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** A progress line: rewritten in place on a terminal, one line per update otherwise. */
  progress(line: string): void;
  progressDone(): void;
}

export function processIo(): Io {
  const tty = process.stderr.isTTY === true;
  let open = false;
  return {
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    progress: (line) => {
      open = tty;
      process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    },
    progressDone: () => {
      if (open) process.stderr.write("\n");
      open = false;
    },
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
