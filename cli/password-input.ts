import { UsageError } from "../lib/errors.js";

/** Shorter passwords are refused: the users file may leak with a backup, and scrypt only slows guessing. */
export const MIN_PASSWORD_LENGTH = 12;

/**
 * A password from standard input, never from the command line (argv shows in `ps` and the shell's
 * history): on a terminal asked for twice without echo, otherwise the first line of what is piped in.
 */
export async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  let password: string;
  if (stdin.isTTY) {
    password = await prompt("Password: ");
    const again = await prompt("Again: ");
    if (again !== password) throw new UsageError("the two passwords differ");
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? "";
  }
  if ([...password].length < MIN_PASSWORD_LENGTH)
    throw new UsageError(`the password is shorter than ${MIN_PASSWORD_LENGTH} characters`);
  return password;
}

/** One line typed on the terminal, not echoed (raw mode: each key arrives as it is pressed). */
function prompt(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let typed = "";
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (error?: Error): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error === undefined) resolve(typed);
      else reject(error);
    };
    const onData = (keys: string): void => {
      for (const key of keys) {
        if (key === "\r" || key === "\n") return done();
        if (key === "\u0003" || key === "\u0004") return done(new UsageError("no password given"));
        if (key === "\u007f" || key === "\b") typed = [...typed].slice(0, -1).join("");
        else if (key >= " ") typed += key;
      }
    };
    stdin.on("data", onData);
  });
}
