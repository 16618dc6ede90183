import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ConfigError } from "../errors.js";

/**
 * The one registry of settings. A config module declares its settings as descriptors
 * (`defineSettings`) and reads them with `readSettings`, the only code that reads the
 * environment: so every value is parsed once, at the edge, by the schema its descriptor holds,
 * and a bad one stops the start with a ConfigError naming the variable. The CLI renders its help
 * from the same descriptors, and `npm run docs:config` the tables in docs/ (cli/settings-registry.ts
 * lists every module's). Exceptions, said so in docs/architecture.md: stack.yml's own
 * `${VAR:-default}` substitution, the template's server (it builds alone) and the benchmarks' knobs.
 */

/** A setting: the environment variables and the flag that set it, what it does, its default and how its text is parsed. */
export interface Setting {
  /** The environment variables that set it, the first one set winning: the main name, then its aliases. */
  readonly env: readonly string[];
  /** Its command-line flag as commander writes it (`--batch-size <n>`); none when only the environment sets it. */
  readonly flag?: string;
  /** What it does, in one line (the help's). */
  readonly help: string;
  /** What the docs' table says about it when that is more than the help (markdown). */
  readonly doc?: string;
  /**
   * What applies when it is not set, as people read it; none when the help says it. Always taken
   * from the module's exported defaults, never written out again (a unit test holds it to the schema's).
   */
  readonly default?: string | number | boolean;
  /** Parses the variable's (or the flag's) text into the typed value; its default or `.optional()` is for unset. */
  readonly schema: z.ZodType;
  /**
   * A secret: when its variable is not set, the file that `<NAME>_FILE` names, else the OpenFaaS
   * secret of this name under SECRET_MOUNT_PATH, is read instead (a missing file counts as unset).
   */
  readonly secret?: string;
  /**
   * Its value may carry credentials (a URL's user and password, a token in its path): a flag's
   * bad value is refused naming the flag, never echoed. (A schema's own messages must not echo it
   * either.)
   */
  readonly sensitive?: boolean;
}

export type Settings = Readonly<Record<string, Setting>>;

/** The typed values of a module's settings, by key. */
export type SettingValues<S extends Settings> = { -readonly [K in keyof S]: z.output<S[K]["schema"]> };

/** A module's settings, frozen, their keys and schemas kept in the type so that `readSettings` returns typed values. */
export function defineSettings<const S extends Record<string, Setting>>(settings: S): Readonly<S> {
  return Object.freeze(settings);
}

/** One setting shared by several modules' settings (HEALTH_HOST), its schema kept in the type. */
export function defineSetting<const S extends Setting>(setting: S): Readonly<S> {
  return Object.freeze(setting);
}

/** Where OpenFaaS mounts secrets. */
export const DEFAULT_SECRET_PATH = "/var/openfaas/secrets";

/** Where the secrets of every module are unless a module's own setting says (the connector's secret_mount_path). */
export const SECRET_SETTINGS = defineSettings({
  SECRET_MOUNT_PATH: {
    env: ["SECRET_MOUNT_PATH"],
    help: "where secrets are mounted (the OpenFaaS secret folder)",
    default: DEFAULT_SECRET_PATH,
    schema: z.string().default(DEFAULT_SECRET_PATH),
  },
});

/**
 * Defaults that a command gives the code it runs in its own process, in place of the descriptors'
 * own: `fanwatch function score` finds the repository's model from any working directory, as the
 * container finds its own under /home/app. The environment still beats them, and unlike a
 * variable written into process.env they reach no child process.
 */
const commandDefaults = new Map<Setting, string>();

export function setCommandDefault(setting: Setting, text: string): void {
  commandDefaults.set(setting, text);
}

export interface ReadOptions {
  /** Where the secrets are: a module's own setting gave it; otherwise SECRET_MOUNT_PATH. */
  secretPath?: string | undefined;
}

/**
 * What was read, and where each value came from: the variable, the secret file, or for a given
 * value its setting's flag (absent: the default).
 */
export interface SettingsRead<S extends Settings> {
  values: SettingValues<S>;
  from: Partial<Record<keyof S & string, string>>;
}

/**
 * A module's settings: those `given` (typed, from flags or from code) as they are, the others
 * read from `env` (the process's environment unless a caller passes its own) by the names their
 * descriptors list, secrets from their files, and parsed by their schemas. A given setting's
 * variables are not read at all, so it beats them. Empty values count as unset. A value its
 * schema refuses throws a ConfigError naming the variable that held it.
 */
export function readSettings<S extends Settings>(
  settings: S,
  env?: NodeJS.ProcessEnv,
  given: Partial<SettingValues<S>> = {},
  options: ReadOptions = {},
): SettingValues<S> {
  return readSettingsFrom(settings, env, given, options).values;
}

/** readSettings, saying where each value came from, for messages that name it ("cannot reach the broker in MQTT_URL"). */
export function readSettingsFrom<S extends Settings>(
  settings: S,
  env: NodeJS.ProcessEnv = process.env,
  given: Partial<SettingValues<S>> = {},
  options: ReadOptions = {},
): SettingsRead<S> {
  const values: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  let secretPath = options.secretPath;
  for (const [key, setting] of Object.entries<Setting>(settings)) {
    const value = (given as Record<string, unknown>)[key];
    if (value !== undefined) {
      values[key] = value;
      from[key] = flagName(setting) ?? "given";
      continue;
    }
    let name = setting.env.find((n) => nonEmpty(env[n]) !== undefined);
    let text = name === undefined ? undefined : env[name];
    if (name === undefined && setting.secret !== undefined) {
      const fileVariable = `${setting.env[0] ?? setting.secret}_FILE`;
      const named = nonEmpty(env[fileVariable]);
      secretPath ??= readSettings(SECRET_SETTINGS, env).SECRET_MOUNT_PATH;
      const file = named ?? join(secretPath, setting.secret);
      text = readSecret(file);
      if (text !== undefined) name = named === undefined ? file : fileVariable;
    }
    text ??= commandDefaults.get(setting);
    const parsed = setting.schema.safeParse(text);
    if (!parsed.success)
      throw new ConfigError(
        `invalid configuration: ${name ?? setting.env[0] ?? key}: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      );
    values[key] = parsed.data;
    if (name !== undefined) from[key] = name;
  }
  return { values: values as SettingValues<S>, from: from as SettingsRead<S>["from"] };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** A secret file's content without its trailing newline, or undefined when there is no such file. */
export function readSecret(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

/** Like readSecret, for a secret that a setting made mandatory: missing is a configuration error. */
export function requireSecret(dir: string, name: string, because: string): string {
  const value = readSecret(join(dir, name));
  if (value === undefined) throw new ConfigError(`${because} but the secret ${join(dir, name)} cannot be read`);
  return value;
}

/** `--batch-size` of `--batch-size <n>`. */
export function flagName(setting: Setting): string | undefined {
  return setting.flag?.split(" ")[0];
}

/** The default as people read it: a boolean reads "on" or "off". */
export function shownDefault(setting: Setting): string | undefined {
  if (setting.default === undefined) return undefined;
  return typeof setting.default === "boolean" ? (setting.default ? "on" : "off") : String(setting.default);
}

/** For a secret: "or the file in MQTT_PASSWORD_FILE, or the secret mqtt-password". */
export function secretSources(setting: Setting): string | undefined {
  if (setting.secret === undefined) return undefined;
  return `or the file in ${setting.env[0] ?? setting.secret}_FILE, or the secret ${setting.secret}`;
}

/** "points per write (default 1000)"; a secret says where else it may come from. */
export function helpLine(setting: Setting): string {
  const secret = secretSources(setting);
  const help = secret === undefined ? setting.help : `${setting.help} (${secret})`;
  const shown = shownDefault(setting);
  return shown === undefined ? help : `${help} (default ${shown})`;
}

/**
 * Help lines for settings read from the environment: `  NAME or ALIAS  help (default …)`, names
 * aligned; a setting whose flag the command has (`hasFlag`) says so, its help and default being
 * the flag's line above. `except` leaves out the settings a command sets itself.
 */
export function environmentHelp(
  settings: Settings,
  except: readonly string[] = [],
  hasFlag: (flag: string) => boolean = () => false,
): string[] {
  const rows = Object.entries<Setting>(settings)
    .filter(([key, s]) => !except.includes(key) && s.env.length > 0)
    .map(([, s]) => {
      const flag = flagName(s);
      return [s.env.join(" or "), flag !== undefined && hasFlag(flag) ? `as ${flag}` : helpLine(s)] as const;
    });
  const width = Math.max(0, ...rows.map(([names]) => names.length));
  return rows.map(([names, help]) => `  ${names.padEnd(width)}  ${help}`);
}
