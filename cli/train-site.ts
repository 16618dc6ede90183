import { userName } from "./user-name.js";
import { NoRegistryError, RegistryUnavailableError } from "../lib/errors.js";
import { SITE_SETTINGS } from "../lib/infra/config.js";
import { readSettingsFrom } from "../lib/infra/settings.js";
import { redactUrl } from "../lib/mqtt/settings.js";
import type { EpochProgress } from "../model/train.js";
import type { ModelScores, SiteTrainResult } from "../model/site-train.js";
import { NATS_URL_SETTINGS } from "./nats-connection.js";
import type { Io } from "./parse.js";

/** What `fanwatch train --from-site` reads besides its flags: where the registry and the site's history are. */
export const SITE_TRAIN_SETTINGS = { ...NATS_URL_SETTINGS, ...SITE_SETTINGS };

export interface SiteTrainFlags {
  out?: string;
  epochs: number;
  batchSize: number;
  seed: number;
  testSplit: number;
  baseRows: number;
  heldOut: number;
  siteShare: number;
  maxHealthy: number;
  by?: string;
  json?: boolean;
}

/**
 * `fanwatch train --from-site`: connects to NATS (NATS_URL; without it there is no registry),
 * trains a candidate from the site's (SITE) findings, pushes it, and prints how it compares with
 * the active model.
 */
export async function trainFromSiteCommand(
  flags: SiteTrainFlags,
  io: Io,
  options: { backend?: string; onEpoch: (p: EpochProgress) => void },
): Promise<void> {
  const { values } = readSettingsFrom(SITE_TRAIN_SETTINGS);
  if (values.NATS_URL === undefined)
    throw new NoRegistryError(
      "NATS_URL is not set: --from-site reads the site's findings and pushes the candidate to the model registry, both in NATS",
    );
  const site = values.SITE;
  const [{ connect }, { jetstream, jetstreamManager }, { ModelRegistry }, { trainFromSite }] = await Promise.all([
    import("@nats-io/transport-node"),
    import("@nats-io/jetstream"),
    import("../lib/models/registry.js"),
    import("../model/site-train.js"),
  ]);
  const nc = await connect({
    servers: values.NATS_URL,
    timeout: 5_000,
    reconnect: false,
    name: "fanwatch train",
  }).catch((error: unknown) => {
    throw new RegistryUnavailableError(
      `cannot reach NATS at ${redactUrl(values.NATS_URL as string)}: ${(error as Error).message}`,
      { cause: error },
    );
  });
  try {
    const registry = await ModelRegistry.open(nc, options.backend === undefined ? {} : { backend: options.backend });
    io.err(`reading site ${site}'s findings and evidence from ${redactUrl(values.NATS_URL)}`);
    const result = await trainFromSite({
      site,
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      registry,
      by: flags.by ?? userName(),
      ...(flags.out === undefined ? {} : { outDir: flags.out }),
      baseRows: flags.baseRows,
      heldOut: flags.heldOut,
      siteShare: flags.siteShare,
      maxHealthy: flags.maxHealthy,
      epochs: flags.epochs,
      batchSize: flags.batchSize,
      seed: flags.seed,
      testSplit: flags.testSplit,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      command: `fanwatch train --from-site --epochs ${flags.epochs} --batch-size ${flags.batchSize} --seed ${flags.seed} --test-split ${flags.testSplit} --base-rows ${flags.baseRows} --held-out ${flags.heldOut} --site-share ${flags.siteShare} --max-healthy ${flags.maxHealthy} (SITE=${site})`,
      onEpoch: options.onEpoch,
    });
    io.progressDone();
    for (const line of describeResult(result)) io.out(line);
    if (flags.json === true) io.out(JSON.stringify(result));
  } finally {
    await nc.close();
  }
}

function describeResult(result: SiteTrainResult): string[] {
  const { candidate, summary, active, candidateScores: next } = result;
  const share = (v: number | null) => (v === null ? "    –" : v.toFixed(3));
  const row = (label: string, a: number | null, c: number | null) =>
    `  ${label.padEnd(44)} ${share(a).padStart(9)} ${share(c).padStart(9)}`;
  const kinds = (s: ModelScores) => s.byOrigin;
  return [
    `training set: ${summary.trainRows} rows: ${summary.readings.confirmed} fault readings of ${summary.episodes.confirmed} confirmed episodes, ${summary.readings["false-alarm"]} of ${summary.episodes.falseAlarm} false alarms, ${summary.readings.healthy} healthy samples${summary.healthyLeftOut > 0 ? ` (${summary.healthyLeftOut} older ones left out)` : ""}, healthy site rows ${summary.siteRepeat}×, and ${summary.base.rows} base rows; ${summary.episodes.unlabelled} episodes without a confirmed or false-alarm finding left out`,
    `candidate ${candidate.id} ${candidate.created ? "pushed" : "already in the registry"}, parent ${candidate.parent} (trained in ${result.seconds} s${candidate.dir === null ? "" : `, written to ${candidate.dir}`})`,
    `                                               active candidate`,
    `held out at the site (${summary.heldOutRows.site} readings, the newest of each episode and fan):`,
    row("accuracy", active.site.accuracy, next.site.accuracy),
    row("false-alarm readings called healthy", kinds(active)["false-alarm"], kinds(next)["false-alarm"]),
    row("confirmed-fault readings called faulty", kinds(active).confirmed, kinds(next).confirmed),
    row("healthy samples called healthy", kinds(active).healthy, kinds(next).healthy),
    `held out from the base (${summary.heldOutRows.base} fresh generated readings):`,
    row("accuracy", active.base.accuracy, next.base.accuracy),
    row("precision (fault)", active.base.precision, next.base.precision),
    row("recall (fault)", active.base.recall, next.base.recall),
    `golden sets (both models' labelled readings, ${next.golden.readings}):`,
    row("accuracy", active.golden.accuracy, next.golden.accuracy),
    `next: fanwatch model shadow ${candidate.id}, then fanwatch model compare and fanwatch model promote ${candidate.id}`,
  ];
}
