import { relative } from "node:path";
import type { Command } from "commander";
import { TRAIN_DEFAULTS } from "../model/defaults.js";
import type { EpochProgress } from "../model/train.js";
import { formatDuration, formatMetrics } from "./output.js";
import { readBackendSetting, SCORE_SETTINGS } from "../functions/score/config.js";
import { addSettingsHelp, integer, number, type Io } from "./parse.js";
import { SITE_TRAINING_DEFAULTS } from "../model/site-data.js";
import { DEFAULT_MAX_HEALTHY } from "../model/site-history.js";
import { UsageError } from "../lib/errors.js";
import { SITE_TRAIN_SETTINGS, trainFromSiteCommand, type SiteTrainFlags } from "./train-site.js";

/** What train and evaluate read: the TF.js backend, as the score function does. */
const BACKEND_HELP = [{ title: "The TF.js backend", settings: { TFJS_BACKEND: SCORE_SETTINGS.TFJS_BACKEND } }];

function backendOption(): { backend?: string } {
  const backend = readBackendSetting();
  return backend === undefined ? {} : { backend };
}

/** generate-data, train and evaluate. */
export function addModelCommands(program: Command, io: Io): void {
  addGenerateDataCommand(program, io);
  addTrainCommand(program, io);
  addEvaluateCommand(program, io);
}

function addGenerateDataCommand(program: Command, io: Io): void {
  program
    .command("generate-data")
    .description("write synthetic fan readings in the reference CSV format")
    .requiredOption("--out <file>", "CSV file to write")
    .option("--fans <n>", "number of fans; half healthy, half faulty", integer("--fans"), 100)
    .option("--rows <n>", "number of readings", integer("--rows"), 20_000)
    .option("--seed <n>", "random seed (same seed, same file)", integer("--seed"), 1)
    .action(async (opts: { out: string; fans: number; rows: number; seed: number }) => {
      const { generateReadings, writeCsv } = await import("../model/dataset.js");
      const rows = generateReadings(opts);
      await writeCsv(opts.out, rows);
      const faulty = rows.filter((r) => r.faulty === 1).length;
      io.out(`wrote ${rows.length} readings from ${opts.fans} fans (${faulty} faulty) to ${opts.out}`);
    });
}

/** `train --from-site`'s defaults where they differ from `train`'s: the committed model's recipe (package.json "model"). */
const SITE_TRAIN_RECIPE = { epochs: 100, batchSize: 128, testSplit: 0.2 } as const;

interface TrainFlags extends SiteTrainFlags {
  data?: string;
  fromSite?: boolean;
}

function addTrainCommand(program: Command, io: Io): void {
  const command = program
    .command("train")
    .description(
      "train the fan-fault model on a CSV file and write a model directory; or, with --from-site, on the site's findings, and push the candidate to the model registry",
    )
    .option("--data <file>", "training data (reference CSV format)")
    .option(
      "--from-site",
      "train on the site's own history instead (SITE's findings and evidence in NATS, mixed with the base data set) and push the candidate, its parent the site's active model (docs/models.md, \"Learning from findings\")",
    )
    .option(
      "--out <dir>",
      "model directory to write (model.json, weights.bin, metadata.json); required with --data, optional with --from-site",
    )
    .option(
      "--epochs <n>",
      `training epochs (--from-site: ${SITE_TRAIN_RECIPE.epochs})`,
      integer("--epochs"),
      TRAIN_DEFAULTS.epochs,
    )
    .option(
      "--batch-size <n>",
      `mini-batch size (--from-site: ${SITE_TRAIN_RECIPE.batchSize})`,
      integer("--batch-size"),
      TRAIN_DEFAULTS.batchSize,
    )
    .option("--seed <n>", "seed for split, shuffles and initial weights", integer("--seed"), TRAIN_DEFAULTS.seed)
    .option(
      "--test-split <fraction>",
      `share of rows held out for testing (--from-site: ${SITE_TRAIN_RECIPE.testSplit})`,
      number("--test-split"),
      TRAIN_DEFAULTS.testSplit,
    )
    .option(
      "--base-rows <n>",
      "--from-site: generated base rows mixed in, at least (never fewer than the site's rows)",
      integer("--base-rows"),
      SITE_TRAINING_DEFAULTS.baseRows,
    )
    .option(
      "--held-out <fraction>",
      "--from-site: share of each episode's and fan's readings, the newest, kept out of training to compare the candidate with the active model",
      number("--held-out"),
      SITE_TRAINING_DEFAULTS.heldOut,
    )
    .option(
      "--site-share <fraction>",
      "--from-site: the share of the training rows the site's healthy rows (false alarms, healthy samples) are repeated up to, so that what the engineers found outweighs the base where they disagree",
      number("--site-share"),
      SITE_TRAINING_DEFAULTS.siteShare,
    )
    .option(
      "--max-healthy <n>",
      "--from-site: the most healthy samples read, the newest",
      integer("--max-healthy"),
      DEFAULT_MAX_HEALTHY,
    )
    .option("--by <name>", "--from-site: who pushes the candidate (default: your user name)")
    .option("--json", "print the test metrics (--from-site: the whole result) as one JSON object on the last line");
  addSettingsHelp(command, [
    ...BACKEND_HELP,
    { title: "With --from-site: the registry and the site", settings: SITE_TRAIN_SETTINGS },
  ]).action(async (opts: TrainFlags, self: Command) => {
    if ((opts.data === undefined) === (opts.fromSite !== true))
      throw new UsageError("give either --data <file> or --from-site");
    if (opts.fromSite === true) {
      // The committed model's recipe where not given: the reference's 250 epochs of 32 take
      // minutes longer on a site's larger set and are no better (docs/model.md, "Quality").
      const recipe = Object.entries(SITE_TRAIN_RECIPE).filter(
        ([flag]) => self.getOptionValueSource(flag) === "default",
      );
      const flags = { ...opts, ...Object.fromEntries(recipe) };
      return trainFromSiteCommand(flags, io, { ...backendOption(), onEpoch: (p) => io.progress(formatEpoch(p)) });
    }
    if (opts.out === undefined) throw new UsageError("--out <dir> is required with --data");
    return train({ ...opts, data: opts.data as string, out: opts.out }, io);
  });
}

async function train(opts: TrainFlags & { data: string; out: string }, io: Io): Promise<void> {
  // Loaded here, not at the top: TensorFlow.js would add ~100 MB to every other command.
  const [{ readCsv }, { trainModel }] = await Promise.all([import("../model/dataset.js"), import("../model/train.js")]);
  const dataset = await readCsv(opts.data);
  io.err(`training on ${dataset.rows.length} readings from ${opts.data} for ${opts.epochs} epochs`);
  const command = `fanwatch train --data ${relative(process.cwd(), opts.data)} --out ${relative(process.cwd(), opts.out)} --epochs ${opts.epochs} --batch-size ${opts.batchSize} --seed ${opts.seed} --test-split ${opts.testSplit}`;
  const metadata = await trainModel({
    dataset,
    dataFile: relative(process.cwd(), opts.data),
    outDir: opts.out,
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    seed: opts.seed,
    testSplit: opts.testSplit,
    ...backendOption(),
    command,
    onEpoch: (p) => io.progress(formatEpoch(p)),
  });
  io.progressDone();
  io.out(
    `model ${metadata.id} written to ${opts.out} (backend ${metadata.training.backend}, ${metadata.training.seconds} s)`,
  );
  io.out(`test set (${metadata.training.testRows} rows held out):`);
  io.out(formatMetrics(metadata.metrics));
  if (opts.json === true) io.out(JSON.stringify({ model: metadata.id, ...metadata.metrics }));
}

function addEvaluateCommand(program: Command, io: Io): void {
  const command = program
    .command("evaluate")
    .description("score a labelled CSV file with a model and report its quality")
    .requiredOption("--model <dir>", "model directory")
    .requiredOption("--data <file>", "labelled data (reference CSV format)")
    .option("--json", "print the metrics as one JSON object on the last line");
  addSettingsHelp(command, BACKEND_HELP).action(async (opts: { model: string; data: string; json?: boolean }) => {
    const [{ readCsv }, { evaluateModel }] = await Promise.all([
      import("../model/dataset.js"),
      import("../model/evaluate.js"),
    ]);
    const dataset = await readCsv(opts.data);
    const { model, metrics } = await evaluateModel(opts.model, dataset, backendOption());
    io.out(`model ${model.metadata.id} (backend ${model.backend}, threshold ${model.threshold}) on ${opts.data}:`);
    io.out(formatMetrics(metrics));
    if (opts.json === true) io.out(JSON.stringify({ model: model.metadata.id, ...metrics }));
    model.dispose();
  });
}

function formatEpoch(p: EpochProgress): string {
  const left = (p.elapsedSeconds / p.epoch) * (p.epochs - p.epoch);
  return `epoch ${String(p.epoch).padStart(String(p.epochs).length)}/${p.epochs}  loss ${p.loss.toFixed(4)}  accuracy ${p.accuracy.toFixed(4)}  test accuracy ${p.testAccuracy.toFixed(4)}  ${formatDuration(p.elapsedSeconds)} elapsed, ~${formatDuration(left)} left`;
}
