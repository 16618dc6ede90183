/**
 * A setting as people see it: the environment variables and the flag that set it, what it does,
 * and its default. Config modules describe their settings with this and the CLI renders the help
 * from it, so the default a help line shows is the one the code uses: `default` is always taken
 * from the module's exported defaults, never written out again.
 */
export interface Setting {
  /** The environment variables that set it, the first one set winning: the main name, then its aliases. */
  env: readonly string[];
  /** Its command-line flag as commander writes it (`--batch-size <n>`); none when only the environment sets it. */
  flag?: string;
  /** What it does, in one line. */
  help: string;
  /** What applies when it is not set; none when the help says it. */
  default?: string | number | boolean;
}

/** "points per write (default 1000)"; a boolean default reads "off" or "on". */
export function helpLine(setting: Setting): string {
  if (setting.default === undefined) return setting.help;
  const shown = typeof setting.default === "boolean" ? (setting.default ? "on" : "off") : String(setting.default);
  return `${setting.help} (default ${shown})`;
}

/** Help lines for settings read from the environment only: `  NAME (or ALIAS)  help (default …)`, names aligned. */
export function environmentHelp(settings: Readonly<Record<string, Setting>>): string[] {
  const rows = Object.values(settings).map((s) => [s.env.join(" or "), helpLine(s)] as const);
  const width = Math.max(...rows.map(([names]) => names.length));
  return rows.map(([names, help]) => `  ${names.padEnd(width)}  ${help}`);
}
