import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { InvalidArgumentError, type Command } from "commander";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { FanwatchError, InputError, StoreUnavailableError } from "../lib/errors.js";
import { readSettings } from "../lib/infra/settings.js";
import { FAN_STATES, type FanRecord, type FanState, type SensorLimitOverrides } from "../lib/registry/fan-record.js";
import type { FanDetails, FanRegistry } from "../lib/registry/registry.js";
import { added as addedRecord, sameRecord } from "../lib/registry/changes.js";
import { DeviceIdError, DeviceUnknownError } from "../lib/registry/errors.js";
import { addFansCredentialsCommand } from "./fans-credentials-command.js";
import { NATS_URL_SETTINGS, natsAddress, withNats, type CommandConnection } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";
import type { RegistryAccess } from "./registry-access.js";

const WHY =
  "the device registry lives in NATS (the key-value bucket fan_registry); give the NATS server fanwatch uses (the URL `fanwatch start` prints, or the cluster's, e.g. nats://nats.fanwatch:4222 through a port-forward)";
const CONNECTION: CommandConnection = {
  name: "fanwatch-fans",
  timeoutMs: 5_000,
  unavailable: (message, cause) => new StoreUnavailableError(message, { cause }),
};
/** NATS_URL and --nats as every NATS command has them, with the help of this one. */
const REGISTRY_NATS = {
  NATS_URL: { ...NATS_URL_SETTINGS.NATS_URL, help: "the NATS server (JetStream) holding the device registry" },
};
/** Where the registry is, and the copies of its bucket should this command be the first to make it. */
const REGISTRY_SETTINGS = { ...REGISTRY_NATS, NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS };
/** Fans written at once by an import: a few round trips in flight, not thousands. */
const IMPORT_CONCURRENCY = 16;

type Given = (opts: Record<string, unknown>) => { NATS_URL?: string | undefined };

const repeat = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/**
 * `fanwatch fans list|add|approve|retire|import`: the device registry (docs/registry.md). Returns
 * the `fans` command, for its further subcommands.
 */
export function addFansCommand(program: Command, io: Io): Command {
  const fans = program
    .command("fans")
    .description(
      "the device registry: which fans may send readings (pending, active, retired), in NATS (bucket fan_registry)",
    );

  const list = fans
    .command("list")
    .description("the registered fans: id, state, name, site, type, who approved them, when they were created")
    .option("--state <state>", `only fans in this state (${FAN_STATES.join(", ")})`, oneOf(FAN_STATES))
    .option("--json", "one JSON object per fan and line, every field of its record but the password hash");
  const listGiven = withSettings(list);
  list.action(async (opts: { state?: FanState; json?: boolean } & Record<string, unknown>) => {
    await withRegistry(opts, listGiven, async (registry) => {
      const records = await registry.list(opts.state);
      if (opts.json === true) {
        for (const record of records) io.out(JSON.stringify(shown(record)));
        return;
      }
      if (records.length === 0) {
        io.err(opts.state === undefined ? "no fans in the registry" : `no ${opts.state} fans in the registry`);
        return;
      }
      // 2 before 17: ids are often numbers.
      const sorted = [...records].sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true }));
      for (const line of table(sorted)) io.out(line);
      io.out(summary(records));
    });
  });

  const add = fans
    .command("add")
    .description(
      "register a fan as active (approved by --by): a pending fan is let in, an active one updated, a retired one let in again",
    )
    .argument("<id>", 'the device id: letters, digits, ".", "_", ":" and "-", at most 64')
    .option("--name <name>", "what people call it (Hall A, supply fan 2)")
    .option("--site <site>", "the plant or site it is at")
    .option("--location <location>", "where on the site (roof 2, line 4)")
    .option("--type <type>", "its make and model; sensor limits may follow it (docs/registry.md)")
    .option("--tag <tag>", "a tag (repeatable); given, it replaces the fan's tags", repeat)
    .option(
      "--limit <sensor=min:max>",
      "its own physical limits for a sensor (repeatable), e.g. temperature=-20:90; the others keep the defaults",
      repeat,
    );
  withBy(add);
  const addGiven = withSettings(add);
  add.action(async (id: string, opts: AddOptions & Record<string, unknown>) => {
    const details = await detailsOf(opts);
    await withRegistry(opts, addGiven, async (registry) => {
      const before = await registry.get(id);
      const after = await registry.add(id, details, byOf(opts));
      io.out(`${outcomeOf(before, after)} fan ${id}: ${describe(after)}`);
    });
  });

  const approve = fans
    .command("approve")
    .description("let pending fans in (pending → active): their readings are held back until then")
    .argument("<id...>", "the fans' ids");
  withBy(approve);
  const approveGiven = withSettings(approve);
  approve.action(async (ids: string[], opts: ByOptions & Record<string, unknown>) => {
    await withRegistry(opts, approveGiven, (registry) =>
      eachFan(io, ids, "approved", (id) => registry.approve(id, byOf(opts))),
    );
  });

  const retire = fans
    .command("retire")
    .description(
      "retire fans (any state → retired): a pending fan so refused, an active one taken out of the counts; its history stays",
    )
    .argument("<id...>", "the fans' ids");
  withBy(retire);
  const retireGiven = withSettings(retire);
  retire.action(async (ids: string[], opts: ByOptions & Record<string, unknown>) => {
    await withRegistry(opts, retireGiven, (registry) =>
      eachFan(io, ids, "retired", (id) => registry.retire(id, byOf(opts))),
    );
  });

  const importCommand = fans
    .command("import")
    .description(
      "register every fan of a file as active: all or nothing (any bad line and nothing is written, each bad line named)",
    )
    .argument("<file>", "CSV with a header (id,name,site,location,type,tags; tags separated by ;) or JSON lines")
    .option("--check", "check the file only: say what it would do, write nothing");
  withBy(importCommand);
  const importGiven = withSettings(importCommand, [
    "The file: CSV (.csv, or text not starting with {) with a header naming its columns, any of",
    "id,name,site,location,type,tags, id required; or JSON lines (.jsonl, .ndjson, .json, or text",
    'starting with {), one object per line with the same fields (tags a list or "a;b") and limits',
    '({"temperature":{"min":-20,"max":90}}). A field left out keeps the fan\'s value; an empty cell',
    "sets it empty. An id twice in the file is a bad line.",
  ]);
  importCommand.action(async (file: string, opts: ByOptions & { check?: boolean } & Record<string, unknown>) => {
    const { importFormat, parseImport } = await import("../lib/registry/import.js");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      throw new InputError(`cannot read ${file}: ${(error as Error).message}`, "file", { cause: error });
    }
    const format = importFormat(file, text);
    const { rows, problems } = parseImport(text, format);
    if (problems.length > 0) {
      for (const p of problems) io.err(`${file} line ${p.line}: ${p.problem}`);
      throw new InputError(
        `${problems.length} bad ${problems.length === 1 ? "line" : "lines"} in ${file} (above): nothing imported`,
        "file",
      );
    }
    const by = byOf(opts);
    await withRegistry(opts, importGiven, async (registry) => {
      const known = new Map((await registry.list()).map((r) => [r.id, r]));
      const counts = { new: 0, updated: 0, unchanged: 0, letIn: 0 };
      let done = 0;
      let next = 0;
      const writer = async () => {
        while (next < rows.length) {
          const row = rows[next++] as (typeof rows)[number];
          const before = known.get(row.id);
          // A fan the file leaves as it is costs no round trip: importing the same file again is quick.
          const wanted = wouldAdd(before, row.id, row.details, by);
          const after =
            opts.check === true || sameRecord(before, wanted) ? wanted : await registry.add(row.id, row.details, by);
          const outcome = outcomeOf(before, after);
          if (outcome === "added") counts.new++;
          else if (outcome === "unchanged") counts.unchanged++;
          else counts.updated++;
          if (before !== undefined && before.state !== "active") counts.letIn++;
          if (++done % 500 === 0) io.progress(`${done} of ${rows.length} fans`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(IMPORT_CONCURRENCY, rows.length) }, writer));
      io.progressDone();
      const letIn = counts.letIn === 0 ? "" : ` (${counts.letIn} of them pending or retired, now active)`;
      io.out(
        `${opts.check === true ? "would import" : "imported"} ${rows.length} fans from ${file}: ${counts.new} new, ${counts.updated} updated${letIn}, ${counts.unchanged} unchanged`,
      );
    });
  });

  addFansCredentialsCommand(fans, io, NATS_REGISTRY);
  return fans;
}

/** The registry in NATS, for subcommands written elsewhere (`fans credentials`). */
const NATS_REGISTRY: RegistryAccess = {
  flags: (command) => withSettings(command),
  with: (given, work) => withRegistry({}, () => given as { NATS_URL?: string }, work),
};

interface ByOptions {
  by?: string;
}

interface AddOptions extends ByOptions {
  name?: string;
  site?: string;
  location?: string;
  type?: string;
  tag?: string[];
  limit?: string[];
}

function withBy(command: Command): void {
  command.option(
    "--by <name>",
    "who acts, as the record keeps it (approvedBy, retiredBy) (default: the name of the user running the command)",
    (value: string) => {
      const name = value.trim();
      if (name === "" || name.length > 200) throw new InvalidArgumentError("a name of 1 to 200 characters.");
      return name;
    },
  );
}

/** NATS_URL (--nats) and NATS_KV_REPLICAS, in the flags and the help. */
function withSettings(command: Command, notes: readonly string[] = []): Given {
  const given = addSettingFlags(command, REGISTRY_NATS);
  addSettingsHelp(
    command,
    [{ title: "Where the registry is (a flag beats its variable)", settings: REGISTRY_SETTINGS }],
    [...notes, ...(notes.length === 0 ? [] : [""]), "docs/registry.md: the registry, its states and who moves a fan."],
  );
  command.exitOverride();
  return given;
}

async function withRegistry(
  opts: Record<string, unknown>,
  given: Given,
  work: (registry: FanRegistry) => Promise<void>,
): Promise<void> {
  const where = natsAddress(given(opts), WHY);
  const replicas = readSettings({ NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS }).NATS_KV_REPLICAS;
  const { NatsFanRegistry } = await import("../lib/registry/nats-registry.js");
  await withNats(where, CONNECTION, async ({ js }) => {
    const registry = await NatsFanRegistry.open(js, { replicas }).catch((error: unknown) => {
      throw CONNECTION.unavailable(
        `cannot open the device registry (bucket fan_registry) in NATS at ${where.shown}: ${(error as Error).message}`,
        error,
      );
    });
    try {
      await work(registry);
    } finally {
      await registry.close();
    }
  });
}

function byOf(opts: ByOptions): string {
  if (opts.by !== undefined) return opts.by;
  try {
    return userInfo().username;
  } catch {
    return "unknown user";
  }
}

/**
 * Applies `act` to each fan, saying what became of it; a fan that cannot be acted on (unknown,
 * in another state, an impossible id) is named and the others are still done. NATS failing ends it.
 */
async function eachFan(io: Io, ids: string[], done: string, act: (id: string) => Promise<FanRecord>): Promise<void> {
  const failed: string[] = [];
  for (const id of ids) {
    try {
      const record = await act(id);
      io.out(`${done} fan ${id}: ${describe(record)}`);
    } catch (error) {
      if (!(error instanceof DeviceUnknownError || error instanceof DeviceIdError)) throw error;
      io.err(`fan ${id} not ${done}: ${error.message} [${(error as FanwatchError).code}]`);
      failed.push(id);
    }
  }
  if (failed.length > 0)
    throw new DeviceUnknownError(`${failed.length} of ${ids.length} fans not ${done} (above): ${failed.join(", ")}`);
}

async function detailsOf(opts: AddOptions): Promise<FanDetails> {
  const { parseLimit } = await import("../lib/registry/import.js");
  let limits: SensorLimitOverrides | undefined;
  for (const text of opts.limit ?? []) {
    try {
      const { sensor, min, max } = parseLimit(text);
      limits = { ...limits, [sensor]: { min, max } };
    } catch (error) {
      throw new InputError(`--limit ${(error as Error).message}`, "limit");
    }
  }
  const details: FanDetails = {
    ...(opts.name === undefined ? {} : { name: opts.name }),
    ...(opts.site === undefined ? {} : { site: opts.site }),
    ...(opts.location === undefined ? {} : { location: opts.location }),
    ...(opts.type === undefined ? {} : { type: opts.type }),
    ...(opts.tag === undefined ? {} : { tags: opts.tag }),
    ...(limits === undefined ? {} : { limits }),
  };
  const { FanRecordSchema } = await import("../lib/registry/fan-record.js");
  // The record's own limits on lengths, checked before NATS is asked anything.
  const checked = FanRecordSchema.partial().safeParse(details);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new InputError(`--${String(issue?.path[0] ?? "value")}: ${issue?.message ?? "invalid"}`, "details");
  }
  return details;
}

/** What add would make of the record (import --check): the registry's own rule, without writing. */
function wouldAdd(before: FanRecord | undefined, id: string, details: FanDetails, by: string): FanRecord {
  return addedRecord(before, id, details, by, new Date().toISOString());
}

function outcomeOf(before: FanRecord | undefined, after: FanRecord): "added" | "approved" | "updated" | "unchanged" {
  if (before === undefined) return "added";
  if (sameRecord(before, after)) return "unchanged";
  return before.state === "active" ? "updated" : "approved";
}

function describe(record: FanRecord): string {
  const who =
    record.state === "retired"
      ? `, retired by ${record.retiredBy ?? "?"}`
      : record.state === "active"
        ? `, approved by ${record.approvedBy ?? "?"}`
        : "";
  const name = record.name === "" ? "" : ` "${record.name}"`;
  return `${record.state}${name}${who}`;
}

/** The record as `list --json` prints it: the password hash stays in the registry. */
function shown(record: FanRecord): Omit<FanRecord, "mqttPasswordHash"> & { hasMqttPassword: boolean } {
  const { mqttPasswordHash, ...rest } = record;
  return { ...rest, hasMqttPassword: mqttPasswordHash !== undefined };
}

const COLUMNS: ReadonlyArray<{ title: string; value: (r: FanRecord) => string; max: number }> = [
  { title: "ID", value: (r) => r.id, max: 64 },
  { title: "STATE", value: (r) => r.state, max: 8 },
  { title: "NAME", value: (r) => r.name, max: 30 },
  { title: "SITE", value: (r) => r.site, max: 20 },
  { title: "TYPE", value: (r) => r.type, max: 20 },
  { title: "APPROVED BY", value: (r) => r.approvedBy ?? "", max: 20 },
  // Minutes are enough to tell fans apart; --json has the whole time.
  { title: "CREATED", value: (r) => `${r.created.slice(0, 16).replace("T", " ")}Z`, max: 17 },
];

function table(records: readonly FanRecord[]): string[] {
  // One line per fan whatever a name holds: whitespace runs become one space, long values are cut.
  const cell = (text: string, max: number) => {
    const flat = text.replace(/\s+/g, " ");
    return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  };
  const rows = records.map((r) => COLUMNS.map((c) => cell(c.value(r), c.max)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(COLUMNS.map((c) => c.title)), ...rows.map(line)];
}

function summary(records: readonly FanRecord[]): string {
  const counts = Object.fromEntries(FAN_STATES.map((s) => [s, records.filter((r) => r.state === s).length]));
  return `${records.length} ${records.length === 1 ? "fan" : "fans"}: ${FAN_STATES.map((s) => `${counts[s]} ${s}`).join(", ")}`;
}

function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(values as readonly string[]).includes(value))
      throw new InvalidArgumentError(`one of ${values.join(", ")}, not "${value}".`);
    return value as T;
  };
}
