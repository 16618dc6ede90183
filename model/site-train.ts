import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { DataFormatError, ModelNotFoundError } from "../lib/errors.js";
import type { EvaluationMetrics } from "../lib/inference/metadata.js";
import { ScoringModel } from "../lib/inference/runtime.js";
import { bundleFromDirectory, bundleId, encodeBundle, GOLDEN_FILE, loadBundleModel } from "../lib/models/bundle.js";
import { goldenReadings, makeGoldenSet, type LabelledInput } from "../lib/models/golden.js";
import type { ModelRegistry } from "../lib/models/registry.js";
import type { GoldenSet, ModelBundle } from "../lib/models/schemas.js";
import { evaluatePredictions } from "./metrics.js";
import {
  buildTrainingSet,
  describeTrainingSet,
  type SiteOrigin,
  type SiteRow,
  type SiteTrainingOptions,
  type TrainingSummary,
} from "./site-data.js";
import { readSiteHistory } from "./site-history.js";
import { trainModel, type EpochProgress } from "./train.js";

/**
 * `fanwatch train --from-site` (docs/model.md, "Training from the site"): the site's findings and
 * evidence as a training set (site-data.ts), a candidate trained on it, pushed to the registry
 * with the site's active model as its parent, and both models compared on what neither trained on.
 * The candidate is only pushed: promoting it (after a shadow, through the gates) is the user's call.
 */
export interface SiteTrainOptions extends SiteTrainingOptions {
  site: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  registry: ModelRegistry;
  /** Who pushes the candidate (the registry records it). */
  by: string;
  /** Where to write the candidate's model directory; a temporary one, removed after, if not given. */
  outDir?: string;
  maxHealthy?: number;
  epochs: number;
  batchSize: number;
  seed: number;
  testSplit: number;
  backend?: string;
  command?: string;
  onEpoch?: (progress: EpochProgress) => void;
}

/** One model's numbers on each part of the comparison. */
export interface ModelScores {
  id: string;
  /** On the site's held-out readings, all together. */
  site: EvaluationMetrics;
  /** Share of each kind of site reading answered as labelled (false alarms: called healthy); null when there are none. */
  byOrigin: Record<SiteOrigin, number | null>;
  /** On fresh base readings neither model trained on. */
  base: EvaluationMetrics;
  /** On both golden sets' labelled readings together. */
  golden: { accuracy: number; readings: number };
}

export interface SiteTrainResult {
  candidate: { id: string; created: boolean; parent: string; dir: string | null };
  summary: TrainingSummary;
  /** The trainer's own test split (in the metadata, what `fanwatch model list` shows). */
  trainerMetrics: EvaluationMetrics;
  seconds: number;
  active: ModelScores;
  candidateScores: ModelScores;
}

/** Site readings put in the candidate's golden set, at most this many of each kind: the lesson travels with it. */
export const SITE_GOLDEN_PER_ORIGIN = 50;

export async function trainFromSite(options: SiteTrainOptions): Promise<SiteTrainResult> {
  const { site, registry } = options;
  const entry = await registry.pointer(site);
  if (entry === undefined)
    throw new ModelNotFoundError(
      `site ${site} has no active model to train from: start score with NATS_URL (it pushes its shipped model) or fanwatch model push and promote one`,
    );
  const parent = entry.pointer.active;
  const history = await readSiteHistory(options.js, options.jsm, site, { maxHealthy: options.maxHealthy });
  if (history.episodes.length === 0)
    throw new DataFormatError(
      `site ${site} has no episode whose latest finding is confirmed or false-alarm (${history.unlabelled} without one): record findings first (README, "Fan health")`,
    );
  const set = buildTrainingSet(history, options);
  const dir = options.outDir ?? (await mkdtemp(join(tmpdir(), "fanwatch-site-model-")));
  try {
    const metadata = await trainModel({
      dataset: set.dataset,
      dataFile: describeTrainingSet(set.summary),
      outDir: dir,
      epochs: options.epochs,
      batchSize: options.batchSize,
      seed: options.seed,
      testSplit: options.testSplit,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      command: options.command ?? "",
      onEpoch: options.onEpoch,
    });
    const golden = await candidateGolden(dir, set.heldOut.site, options.backend);
    await writeFile(join(dir, GOLDEN_FILE), `${JSON.stringify(golden)}\n`);
    const bundle = await bundleFromDirectory(dir, { parent, backend: options.backend });
    const pushed = await registry.push(bundle, options.by);
    const activeBundle = await registry.get(parent);
    const goldenUnion = union(labelled(activeBundle), labelled(bundle));
    const score = async (b: ModelBundle, id: string): Promise<ModelScores> => {
      const { model } = await loadBundleModel(b, id, { backend: options.backend });
      try {
        return scores(model, id, set.heldOut, goldenUnion);
      } finally {
        model.dispose();
      }
    };
    return {
      candidate: { id: pushed.id, created: pushed.created, parent, dir: options.outDir ?? null },
      summary: set.summary,
      trainerMetrics: metadata.metrics,
      seconds: metadata.training.seconds,
      active: await score(activeBundle, parent),
      candidateScores: await score(bundle, bundleId(encodeBundle(bundle))),
    };
  } finally {
    if (options.outDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The candidate's golden set: the standard golden readings and up to SITE_GOLDEN_PER_ORIGIN held-out
 * site readings of each kind, labelled, with the candidate's answers. The promotion gates compare
 * golden-set accuracy on both models' sets together, so the site's lesson counts there too.
 */
async function candidateGolden(dir: string, heldOut: readonly SiteRow[], backend?: string): Promise<GoldenSet> {
  const model = await ScoringModel.load(dir, backend === undefined ? {} : { backend });
  try {
    const site = (["confirmed", "false-alarm", "healthy"] as const).flatMap((origin) =>
      spread(
        heldOut.filter((r) => r.origin === origin),
        SITE_GOLDEN_PER_ORIGIN,
      ),
    );
    return makeGoldenSet(model, [
      ...goldenReadings(),
      ...site.map((r): LabelledInput => ({ input: [...r.features], label: r.faulty })),
    ]);
  } finally {
    model.dispose();
  }
}

/** At most `n` of `rows`, evenly spaced (the held-out rows are in time order within each episode). */
function spread<T>(rows: readonly T[], n: number): T[] {
  if (rows.length <= n) return [...rows];
  return Array.from({ length: n }, (_, i) => rows[Math.floor((i * rows.length) / n)] as T);
}

/** Both sets' readings, a reading in both (the standard golden readings) once. */
function union(a: readonly LabelledInput[], b: readonly LabelledInput[]): LabelledInput[] {
  const seen = new Set<string>();
  return [...a, ...b].filter((r) => {
    const key = `${r.input.join(",")}:${r.label}`;
    return !seen.has(key) && seen.add(key);
  });
}

function labelled(bundle: ModelBundle): LabelledInput[] {
  return bundle.golden.readings.flatMap((r) => (r.label === undefined ? [] : [{ input: r.input, label: r.label }]));
}

function scores(
  model: ScoringModel,
  id: string,
  heldOut: { site: readonly SiteRow[]; base: readonly { features: number[]; faulty: 0 | 1 }[] },
  golden: readonly LabelledInput[],
): ModelScores {
  const evaluate = (rows: readonly { features: number[]; faulty: 0 | 1 }[]) =>
    evaluatePredictions(
      rows.map((r) => r.faulty),
      model.probabilities(rows.map((r) => r.features)),
      model.threshold,
    );
  const byOrigin = Object.fromEntries(
    (["confirmed", "false-alarm", "healthy"] as const).map((origin) => {
      const rows = heldOut.site.filter((r) => r.origin === origin);
      return [origin, rows.length === 0 ? null : evaluate(rows).accuracy];
    }),
  ) as Record<SiteOrigin, number | null>;
  const goldenVerdicts = model.probabilities(golden.map((r) => r.input));
  const right = golden.filter((r, i) => ((goldenVerdicts[i] as number) >= model.threshold ? 1 : 0) === r.label).length;
  return {
    id,
    site: evaluate(heldOut.site),
    byOrigin,
    base: evaluate(heldOut.base),
    golden: { accuracy: golden.length === 0 ? 0 : right / golden.length, readings: golden.length },
  };
}
