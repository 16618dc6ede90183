import { readFile, stat, writeFile } from "node:fs/promises";
import { userName } from "./user-name.js";
import { InvalidArgumentError, type Command } from "commander";
import { HEALTH_SETTINGS } from "../functions/health/config.js";
import { SCORE_SETTINGS } from "../functions/score/config.js";
import {
  ModelGateError,
  ModelNotFoundError,
  NoRegistryError,
  RegistryUnavailableError,
  UsageError,
} from "../lib/errors.js";
import { SITE_SETTINGS } from "../lib/infra/config.js";
import { readSettings, readSettingsFrom } from "../lib/infra/settings.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import type { JetStreamAccess } from "../lib/models/gate-sources.js";
import type { PromotionGates } from "../lib/models/gates.js";
import type { ModelRegistry, PointerEntry } from "../lib/models/registry.js";
import type { ActivePointer, ModelBundle, PointerReason } from "../lib/models/schemas.js";
import { sumComparisons } from "../lib/models/comparison-sum.js";
import { formatComparison } from "./model-compare.js";
import { formatShow, formatVersions } from "./model-registry-format.js";
import { NATS_URL_SETTINGS, withNats, type CommandConnection } from "./nats-connection.js";
import { addSettingFlags, addSettingsHelp, type Io } from "./parse.js";

/** Where the registry is: NATS_URL (--nats) and the site (SITE, --site) whose pointer the commands move. */
const WHERE = {
  NATS_URL: { ...NATS_URL_SETTINGS.NATS_URL, help: "the NATS server (JetStream) holding the model registry" },
  SITE: { ...SITE_SETTINGS.SITE, flag: "--site <name>" },
};
/** Read, not flagged: the buckets' copies should this command make them, and push's TF.js backend. */
const MORE = {
  NATS_KV_REPLICAS: HEALTH_SETTINGS.NATS_KV_REPLICAS,
  TFJS_BACKEND: SCORE_SETTINGS.TFJS_BACKEND,
};
const CONNECTION: CommandConnection = {
  name: "fanwatch-model",
  timeoutMs: 5_000,
  unavailable: (message, cause) => new RegistryUnavailableError(message, { cause }),
};
const MODEL_ID = /^fan-[0-9a-f]{16}$/;

/** What promote checks a candidate with, given the command's connection; and how to let go of what they loaded. */
export type GatesFor = (
  nats: JetStreamAccess,
  registry: ModelRegistry,
) => { gates: PromotionGates; dispose: () => void };

/** The site's promotion gates (cli/model-gates.ts), loaded only by promote: they bring TensorFlow.js. */
const siteGatesFor: GatesFor = (nats, registry) => {
  let loaded: Promise<{ gates: PromotionGates; dispose: () => void }> | undefined;
  const site = () => (loaded ??= import("./model-gates.js").then(({ siteGates }) => siteGates(nats, registry)));
  return {
    gates: async (question) => (await site()).gates(question),
    dispose: () => void loaded?.then((g) => g.dispose()),
  };
};

interface Context {
  registry: ModelRegistry;
  nats: JetStreamAccess;
  site: string;
  by: string;
}

type Given = (opts: Record<string, unknown>) => { NATS_URL?: string | undefined; SITE?: string | undefined };

/**
 * `fanwatch model push|pull|list|show|promote|rollback|shadow|compare`: the model registry
 * (docs/models.md). `gates` is what promote checks a candidate with.
 */
export function addModelRegistryCommand(program: Command, io: Io, gatesFor: GatesFor = siteGatesFor): Command {
  const model = program
    .command("model")
    .description("the model registry in NATS: versions, each site's active model and shadow, promote and rollback");

  const push = model
    .command("push")
    .description(
      "store a model directory (fanwatch train's) or a bundle file (fanwatch model pull's) as a version, after checking it loads and answers its golden set",
    )
    .argument("<path>", "a model directory (model.json, weights.bin, metadata.json, golden.json) or a bundle file")
    .option("--parent <id>", "the version a directory's model was trained from (its lineage)", modelId)
    .option("--json", "print {id, created, parent} as one JSON object");
  withBy(push);
  registryAction(push, async (ctx, path: string, opts: { parent?: string; json?: boolean }) => {
    const bundle = await bundleAt(path, opts.parent, ctx.registry);
    const { id, created } = await ctx.registry.push(bundle, ctx.by);
    if (opts.json === true) io.out(JSON.stringify({ id, created, parent: bundle.parent }));
    else
      io.out(
        `${created ? "pushed" : "already stored:"} model ${id} from ${path} (accuracy ${bundle.metadata.metrics.accuracy.toFixed(4)}, golden set of ${bundle.golden.readings.length} readings${bundle.parent === null ? "" : `, parent ${bundle.parent}`})`,
      );
  });

  const pull = model
    .command("pull")
    .description(
      "write a version to a bundle file, as stored: pushed into another site's registry, it keeps its id and lineage",
    )
    .argument("<id>", "the version", modelId)
    .option("--out <file>", "the file to write (default: <id>.json here)");
  registryAction(pull, async (ctx, id: string, opts: { out?: string }) => {
    const { encodeBundle } = await import("../lib/models/bundle.js");
    const bytes = encodeBundle(await ctx.registry.get(id));
    const file = opts.out ?? `${id}.json`;
    await writeFile(file, bytes);
    io.out(
      `wrote model ${id} (${bytes.length.toLocaleString("en")} bytes) to ${file}; at another site: fanwatch model push ${file}`,
    );
  });

  const list = model
    .command("list")
    .description(
      "every stored version, oldest first, which is the site's active, previous and shadow model, and the pointer's last changes",
    )
    .option("--json", "one JSON object per version and line");
  registryAction(list, async (ctx, opts: { json?: boolean }) => {
    const [versions, history] = await Promise.all([ctx.registry.list(), ctx.registry.history(ctx.site)]);
    const pointer = history.at(-1);
    if (opts.json === true) {
      for (const v of versions) io.out(JSON.stringify({ ...v, role: roleOf(v.id, pointer?.pointer) }));
      return;
    }
    for (const line of formatVersions(versions, ctx.site, history)) io.out(line);
  });

  const show = model
    .command("show")
    .description("one version: metadata, golden set, lineage, the replicas serving it and those that refused it")
    .argument("<id>", "the version's id", modelId)
    .option("--json", "the same as one JSON object");
  registryAction(show, async (ctx, id: string, opts: { json?: boolean }) => {
    const { describeVersion } = await import("./model-registry-show.js");
    const shown = await describeVersion(ctx.registry, ctx.site, id);
    if (opts.json === true) io.out(JSON.stringify(shown));
    else for (const line of formatShow(shown)) io.out(line);
  });

  const promote = model
    .command("promote")
    .description(
      "make a version the site's active model, if it passes the promotion gates; every score replica follows",
    )
    .argument("<id>", "the version to serve", modelId)
    .option("--force", "promote even if a gate fails (the pointer records it was forced)")
    .option("--note <text>", "why, kept with the pointer");
  withBy(promote);
  registryAction(promote, async (ctx, id: string, opts: { force?: boolean; note?: string }) => {
    await ctx.registry.get(id); // there, and its bytes are its id's
    const current = await ctx.registry.pointer(ctx.site);
    if (current?.pointer.active === id) {
      io.out(
        `model ${id} is already the active model of site ${ctx.site} (revision ${current.revision}); nothing changed`,
      );
      return;
    }
    const { gates, dispose } = gatesFor(ctx.nats, ctx.registry);
    const results =
      current === undefined
        ? []
        : await gates({ site: ctx.site, active: current.pointer.active, candidate: id }).finally(dispose);
    for (const r of results) io.out(`${r.passed ? "passed" : "FAILED"}  ${r.gate}: ${r.detail}`);
    const failed = results.filter((r) => !r.passed);
    if (failed.length > 0 && opts.force !== true)
      throw new ModelGateError(
        `model ${id} not promoted: it failed ${failed.map((r) => `${r.gate} (${r.detail})`).join(", ")}; --force to promote it all the same`,
      );
    const pointer = change(ctx, current, "promote", {
      active: id,
      previous: current?.pointer.active ?? null,
      shadow: current?.pointer.shadow === id ? null : (current?.pointer.shadow ?? null),
      forced: failed.length > 0,
      note: opts.note ?? null,
    });
    const revision = await ctx.registry.setPointer(ctx.site, pointer, current?.revision ?? 0);
    io.out(
      `promoted model ${id} at site ${ctx.site} (revision ${revision}${pointer.forced ? ", forced past failing gates" : ""}); ${pointer.previous === null ? "no previous model" : `rollback returns to ${pointer.previous}`}`,
    );
  });

  const rollback = model
    .command("rollback")
    .description("serve the site's previous model again (the one before the last promote): one pointer update")
    .option("--note <text>", "why, kept with the pointer");
  withBy(rollback);
  registryAction(rollback, async (ctx, opts: { note?: string }) => {
    const started = performance.now();
    const current = await mustHavePointer(ctx);
    const previous = current.pointer.previous;
    if (previous === null)
      throw new UsageError(`site ${ctx.site} has no previous model to roll back to (active ${current.pointer.active})`);
    const pointer = change(ctx, current, "rollback", {
      active: previous,
      previous: current.pointer.active,
      // As promote does: the model served again is no longer a candidate shadowing itself.
      shadow: current.pointer.shadow === previous ? null : current.pointer.shadow,
      note: opts.note ?? null,
    });
    const revision = await ctx.registry.setPointer(ctx.site, pointer, current.revision);
    io.out(
      `rolled back site ${ctx.site} to model ${previous} (revision ${revision}, in ${Math.round(performance.now() - started)} ms); ${current.pointer.active} is now the previous model`,
    );
  });

  const shadow = model
    .command("shadow")
    .description("score every reading with a candidate next to the active model, compared but never published")
    .argument("[id]", "the candidate", modelId)
    .option("--off", "stop shadowing");
  withBy(shadow);
  registryAction(shadow, async (ctx, id: string | undefined, opts: { off?: boolean }) => {
    if ((id === undefined) === (opts.off !== true))
      throw new UsageError("give a model id to shadow, or --off (not both)");
    const current = await mustHavePointer(ctx);
    if (id === undefined) {
      if (current.pointer.shadow === null) {
        io.out(`site ${ctx.site} has no shadow model; nothing changed`);
        return;
      }
      const revision = await ctx.registry.setPointer(
        ctx.site,
        change(ctx, current, "shadow-off", { shadow: null }),
        current.revision,
      );
      io.out(`stopped shadowing ${current.pointer.shadow} at site ${ctx.site} (revision ${revision})`);
      return;
    }
    if (id === current.pointer.active)
      throw new UsageError(`model ${id} is the active model of site ${ctx.site}: shadow another`);
    await ctx.registry.get(id);
    const revision = await ctx.registry.setPointer(
      ctx.site,
      change(ctx, current, "shadow", { shadow: id }),
      current.revision,
    );
    io.out(
      `model ${id} now scores every reading at site ${ctx.site} as a shadow of ${current.pointer.active} (revision ${revision}); fanwatch model compare`,
    );
  });

  const compare = model
    .command("compare")
    .description("how the site's shadow compares with the active model: agreement, alarms, fans, cost")
    .option("--json", "the totals as one JSON object");
  registryAction(compare, async (ctx, opts: { json?: boolean }) => {
    const current = await mustHavePointer(ctx);
    const { shadow, active } = current.pointer;
    if (shadow === null) throw new UsageError(`site ${ctx.site} has no shadow model: fanwatch model shadow <id>`);
    const totals = sumComparisons(await ctx.registry.comparisons(ctx.site, shadow), active, shadow, ctx.site);
    if (opts.json === true) io.out(JSON.stringify(totals));
    else for (const line of formatComparison(totals)) io.out(line);
  });

  return model;
}

/**
 * The bundle at `path`: a bundle file as it is (its id and parent are its bytes'), or a model
 * directory with `parent`, which must be a stored version.
 */
async function bundleAt(path: string, parent: string | undefined, registry: ModelRegistry): Promise<ModelBundle> {
  const { bundleFromDirectory, bundleId, decodeBundle } = await import("../lib/models/bundle.js");
  const info = await stat(path).catch((error: unknown) => {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  });
  if (info.isFile()) {
    if (parent !== undefined) throw new UsageError(`${path} is a bundle file: its parent is inside it (no --parent)`);
    const bytes = await readFile(path);
    return decodeBundle(bytes, bundleId(bytes));
  }
  if (parent !== undefined && (await registry.version(parent)) === undefined)
    throw new ModelNotFoundError(`the parent ${parent} is not in the model registry: fanwatch model list`);
  const backend = readSettings(MORE).TFJS_BACKEND;
  return bundleFromDirectory(path, { parent: parent ?? null, ...(backend === undefined ? {} : { backend }) });
}

/**
 * The site's pointer after a change by this command: `fields` over the current pointer, stamped
 * with who and when; a note and `forced` belong to one change only. A site's first pointer (a
 * promote before any score replica made one) starts empty.
 */
function change(
  ctx: Context,
  current: PointerEntry | undefined,
  reason: PointerReason,
  fields: Partial<ActivePointer> & { active?: string },
): ActivePointer {
  const active = fields.active ?? current?.pointer.active;
  if (active === undefined) throw new Error("a first pointer needs its active model");
  const base = current?.pointer ?? { previous: null, shadow: null };
  return { ...base, forced: false, note: null, ...fields, active, reason, by: ctx.by, at: new Date().toISOString() };
}

async function mustHavePointer(ctx: Context): Promise<PointerEntry> {
  const current = await ctx.registry.pointer(ctx.site);
  if (current === undefined)
    throw new ModelNotFoundError(
      `site ${ctx.site} has no active model yet: the first score replica with NATS_URL makes its shipped model the first, or fanwatch model promote <id>`,
    );
  return current;
}

function roleOf(id: string, pointer: ActivePointer | undefined): "active" | "previous" | "shadow" | null {
  if (pointer === undefined) return null;
  if (pointer.active === id) return "active";
  if (pointer.shadow === id) return "shadow";
  if (pointer.previous === id) return "previous";
  return null;
}

function modelId(value: string): string {
  if (!MODEL_ID.test(value)) throw new InvalidArgumentError(`a model id is fan- and 16 hex digits, not "${value}".`);
  return value;
}

function withBy(command: Command): void {
  command.option(
    "--by <name>",
    "who acts, as the registry keeps it (default: the name of the user running the command)",
    (value: string) => {
      const name = value.trim();
      if (name === "" || name.length > 128) throw new InvalidArgumentError("a name of 1 to 128 characters.");
      return name;
    },
  );
}

/**
 * Adds the settings' flags and help to `command` and runs `work` with the registry open: NATS_URL
 * unset is NoRegistryError; NATS away is RegistryUnavailableError.
 */
function registryAction<A extends unknown[]>(
  command: Command,
  work: (ctx: Context, ...args: A) => Promise<void>,
): void {
  const given: Given = addSettingFlags(command, WHERE);
  addSettingsHelp(
    command,
    [{ title: "Where the registry is (a flag beats its variable)", settings: { ...WHERE, ...MORE } }],
    ["docs/models.md: versions, the pointer, shadow and promotion gates."],
  );
  command.exitOverride();
  command.action(async (...args: unknown[]) => {
    // commander passes the arguments, then the options, then the command: work gets all but the command.
    const opts = args[args.length - 2] as Record<string, unknown>;
    const { values, from } = readSettingsFrom(WHERE, undefined, given(opts));
    if (values.NATS_URL === undefined || values.NATS_URL === "")
      throw new NoRegistryError(
        "NATS_URL is not set (or --nats): the model registry lives in NATS JetStream (Object Store fan_models, KV fan_models_active); without it score serves MODEL_DIR",
      );
    const where = { url: values.NATS_URL, from: from.NATS_URL ?? "NATS_URL", shown: redactUrl(values.NATS_URL) };
    const replicas = readSettings(MORE).NATS_KV_REPLICAS;
    const { ModelRegistry } = await import("../lib/models/registry.js");
    await withNats(where, CONNECTION, async ({ js, jsm }) => {
      const registry = await ModelRegistry.open(js, { replicas });
      await work({ registry, nats: { js, jsm }, site: values.SITE, by: byOf(opts) }, ...(args.slice(0, -1) as A));
    });
  });
}

function byOf(opts: Record<string, unknown>): string {
  return typeof opts["by"] === "string" ? opts["by"] : userName();
}
