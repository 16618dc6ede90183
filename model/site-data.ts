import { createHash } from "node:crypto";
import { UsageError } from "../lib/errors.js";
import type { EvidenceReading } from "../lib/nats/evidence.js";
import { formatTime } from "../simulation/timestamp.js";
import { generateReadings, toCsv, type Dataset, type LabelledReading } from "./dataset.js";
import type { LabelledResult, SiteHistory } from "./site-history.js";

/**
 * A training set from a site's own history (docs/models.md, "Learning from findings"):
 *
 * - the readings of an episode whose latest finding is `confirmed` are faults: those while it was
 *   open, up to the last one the model called a fault before the episode cleared (the lead,
 *   before it opened, may be a fan not yet failing; the quiet readings that cleared it, a fan that
 *   recovered or was repaired);
 * - the readings of a `false-alarm` episode, lead and all, are healthy: the fan was healthy all
 *   along, which is exactly what the active model got wrong;
 * - the healthy sample (one reading a minute of each fan while it was ok) is healthy;
 * - episodes with no finding, or `not-checked`, are left out: nobody knows what they were.
 *
 * Mixed with the base data set (the generator's balanced healthy and faulty fans, the shipped
 * model's recipe), never fewer base rows than site rows: a site's history is mostly healthy and
 * holds only the faults that site happened to have, so without the base a retrained model forgets
 * the fault kinds the site has not seen yet. The site's healthy rows (false alarms and the
 * healthy sample) are then repeated so that they make up about `siteShare` of the training rows:
 * a few hundred readings an engineer labelled are the truth about this site, and at their natural
 * share (1% of 20,000 base rows) the base outvotes them where they disagree (measured: a hot fan's
 * false-alarm readings were still called faults three times in four). Repeating is weighting: the
 * candidate sees no reading it was not given. Confirmed-fault rows are kept once: the active model
 * raised those episodes, so it knows them, and repeating them only amplifies the faulty readings
 * that fall inside the healthy ranges (measured: base fault precision 0.998 → 0.986).
 */
export interface SiteTrainingOptions {
  /** Base rows at least (more when the site gives more rows). */
  baseRows: number;
  /** Share of each episode's and fan's readings held out for the comparison: its newest. */
  heldOut: number;
  /** The share of the training rows the site's healthy rows are repeated up to (never fewer than once each). */
  siteShare: number;
}

export const SITE_TRAINING_DEFAULTS = { baseRows: 20_000, heldOut: 0.2, siteShare: 0.25 } as const;

/** The base data set's generator settings: the shipped model's (package.json "model"), so the base is a part of its data. */
export const BASE_DATA = { fans: 200, seed: 2 } as const;
/** Fresh base rows for the held-out comparison (the seed docs/model.md measures with): neither model trained on them. */
export const BASE_HELD_OUT_SEED = 1001;

export type SiteOrigin = LabelledResult | "healthy";

/** A site reading with its label, where it came from, and the group its held-out share is taken from. */
export interface SiteRow extends LabelledReading {
  origin: SiteOrigin;
  group: string;
  ms: number;
}

export interface TrainingSummary {
  site: string;
  episodes: { confirmed: number; falseAlarm: number; unlabelled: number };
  /** Site readings by origin (training and held out together). */
  readings: Record<SiteOrigin, number>;
  healthyLeftOut: number;
  /** How many times each healthy site training row is in the training set (confirmed faults: once). */
  siteRepeat: number;
  base: { rows: number; faulty: number };
  trainRows: number;
  heldOutRows: { site: number; base: number };
}

export interface TrainingSet {
  dataset: Dataset;
  heldOut: { site: SiteRow[]; base: LabelledReading[] };
  summary: TrainingSummary;
}

/** Every labelled site reading, oldest first within each episode and fan. */
export function labelSiteReadings(history: SiteHistory): SiteRow[] {
  const rows: SiteRow[] = [];
  for (const episode of history.episodes) {
    const group = `${episode.deviceID}\n${episode.alarmId}`;
    if (episode.result === "false-alarm")
      for (const r of [...episode.lead, ...episode.during])
        rows.push(row(episode.deviceID, r, 0, "false-alarm", group));
    else {
      // Up to its last reading called a fault before it cleared: the quiet tail that cleared it is
      // the fan recovered or repaired, not the fault.
      const open = episode.during.filter((r) => episode.clearedAt === null || Date.parse(r.at) < episode.clearedAt);
      const last = open.findLastIndex((r) => r.fault === 1);
      for (const r of open.slice(0, last + 1)) rows.push(row(episode.deviceID, r, 1, "confirmed", group));
    }
  }
  for (const { deviceID, reading } of history.healthy)
    rows.push(row(deviceID, reading, 0, "healthy", `healthy\n${deviceID}`));
  return rows;
}

function row(deviceID: string, r: EvidenceReading, faulty: 0 | 1, origin: SiteOrigin, group: string): SiteRow {
  const ms = Date.parse(r.at);
  return {
    deviceID,
    time: formatTime(new Date(ms)),
    features: [r.rotation, r.temperature, r.vibration, r.sound],
    faulty,
    origin,
    group,
    ms,
  };
}

/** The site's rows and the base, split into what the candidate trains on and what both models are compared on. */
export function buildTrainingSet(history: SiteHistory, options: SiteTrainingOptions): TrainingSet {
  const { baseRows, heldOut, siteShare } = options;
  if (!(heldOut > 0 && heldOut < 1)) throw new UsageError(`--held-out must be between 0 and 1, not ${heldOut}`);
  if (!(siteShare >= 0 && siteShare < 1))
    throw new UsageError(`--site-share must be at least 0 and below 1, not ${siteShare}`);
  if (!Number.isInteger(baseRows) || baseRows < 1)
    throw new UsageError(`--base-rows must be a whole number >= 1, not ${baseRows}`);
  const site = labelSiteReadings(history);
  // The newest share of each group is held out: neighbouring readings of one episode are alike,
  // so a random split would compare the models on readings the candidate has all but seen.
  const groups = new Map<string, SiteRow[]>();
  for (const r of site) {
    const rows = groups.get(r.group);
    if (rows === undefined) groups.set(r.group, [r]);
    else rows.push(r);
  }
  const siteTrain: SiteRow[] = [];
  const siteHeld: SiteRow[] = [];
  for (const rows of groups.values()) {
    rows.sort((a, b) => a.ms - b.ms);
    const cut = rows.length - Math.floor(rows.length * heldOut);
    siteTrain.push(...rows.slice(0, cut));
    siteHeld.push(...rows.slice(cut));
  }
  const base = generateReadings({ ...BASE_DATA, rows: Math.max(baseRows, site.length) });
  const baseHeld = generateReadings({
    fans: BASE_DATA.fans,
    seed: BASE_HELD_OUT_SEED,
    rows: Math.max(1, Math.ceil(base.length * heldOut)),
  });
  const healthyRows = siteTrain.filter((r) => r.faulty === 0).map(plain);
  const siteRepeat =
    healthyRows.length === 0
      ? 1
      : Math.max(1, Math.round((siteShare * base.length) / ((1 - siteShare) * healthyRows.length)));
  const train: LabelledReading[] = [
    ...Array.from({ length: siteRepeat }, () => healthyRows).flat(),
    ...siteTrain.filter((r) => r.faulty === 1).map(plain),
    ...base,
  ];
  const count = (origin: SiteOrigin) => site.filter((r) => r.origin === origin).length;
  const summary: TrainingSummary = {
    site: history.site,
    episodes: {
      confirmed: history.episodes.filter((e) => e.result === "confirmed").length,
      falseAlarm: history.episodes.filter((e) => e.result === "false-alarm").length,
      unlabelled: history.unlabelled,
    },
    readings: { confirmed: count("confirmed"), "false-alarm": count("false-alarm"), healthy: count("healthy") },
    healthyLeftOut: history.healthyLeftOut,
    siteRepeat,
    base: { rows: base.length, faulty: base.filter((r) => r.faulty === 1).length },
    trainRows: train.length,
    heldOutRows: { site: siteHeld.length, base: baseHeld.length },
  };
  const sha256 = createHash("sha256").update(toCsv(train)).digest("hex");
  return { dataset: { rows: train, sha256 }, heldOut: { site: siteHeld, base: baseHeld }, summary };
}

function plain({ deviceID, time, features, faulty }: SiteRow): LabelledReading {
  return { deviceID, time, features, faulty };
}

/** One line for the model's metadata (training.data.file) and the console: what the set was made of. */
export function describeTrainingSet(summary: TrainingSummary): string {
  const { episodes, readings, base } = summary;
  return (
    `site ${summary.site}: ${episodes.confirmed} confirmed episodes (${readings.confirmed} fault readings), ` +
    `${episodes.falseAlarm} false-alarm episodes (${readings["false-alarm"]} healthy readings), ` +
    `${readings.healthy} healthy samples (healthy ones ${summary.siteRepeat}×); base: ${base.rows} generated rows ` +
    `(${base.faulty} faulty, generate-data --fans ${BASE_DATA.fans} --seed ${BASE_DATA.seed})`
  );
}
