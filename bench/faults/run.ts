import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";
import { HealthRecordSchema, type HealthRecord } from "../../lib/domain/health.js";
import { FORGED, INVALID_DEVICE, Ledger, type ForgedSummary, type LedgerSummary, type PathWindow } from "./ledger.js";
import { Load } from "./load.js";
import { gateMetrics, quarantinedReadings, type GateMetrics } from "./registry.js";
import { RssSampler, rssSlopes } from "./rss.js";
import { FaultSystem } from "./system.js";

export interface RunOptions {
  /** Messages a second of the steady load (1% malformed). */
  rate: number;
  fans: number;
  /** How long a "down" fault lasts (score, predict, InfluxDB) and the overload's length cap. */
  faultMs: number;
  /** Steady load before the fault, and after it ends, before the drain. */
  beforeMs: number;
  afterMs: number;
  /** Distinct new device IDs in the poison scenario (the registry knows none of them). */
  distinctDevices: number;
  /** The connector's REGISTRY_MAX_PENDING: new IDs that become pending; past it, new IDs are refused. */
  registryMaxPending: number;
  /** The drain ends once nothing changed for quietMs (or everything arrived), or after drainCapMs. */
  quietMs: number;
  drainCapMs: number;
  /** Where each run's process logs go (a folder per scenario). */
  logDir: string;
  progress(line: string): void;
  /** Keep an RSS timeline every this many ms (the soak). */
  rssTimelineMs?: number;
  /**
   * Health's HEALTH_SILENT_AFTER_MS in the scenarios with the health path: the default (30 s) in
   * the full run; shorter than the short run's NATS outage, so that an outage mistaken for the
   * fans' silence would show there too.
   */
  healthSilentAfterMs: number;
}

type Settings = Omit<RunOptions, "logDir" | "progress" | "rssTimelineMs">;

/** The benchmark: the issue's load and fault lengths. */
export const FULL: Settings = {
  rate: 2000,
  fans: 200,
  faultMs: 60_000,
  beforeMs: 10_000,
  afterMs: 20_000,
  distinctDevices: 100_000,
  // The default: of the 100,000 new IDs the first 1,000 become pending, the rest are refused.
  registryMaxPending: 1_000,
  // Longer than the writer's longest backoff (30 s), so a retry still to come is not taken for a loss.
  quietMs: 35_000,
  drainCapMs: 300_000,
  healthSilentAfterMs: 30_000,
};

/** What `npm test` runs (test/system/faults.test.ts) and `--short` selects: a tenth of the load, 5 s faults. */
export const SHORT: Settings = {
  rate: 200,
  fans: 20,
  faultMs: 5_000,
  beforeMs: 3_000,
  afterMs: 3_000,
  distinctDevices: 1_000,
  // A tenth of the new IDs, as in the full run: both outcomes, quarantined and refused, occur.
  registryMaxPending: 100,
  quietMs: 15_000,
  drainCapMs: 90_000,
  healthSilentAfterMs: 10_000,
};

export interface FaultContext {
  system: FaultSystem;
  load: Load;
  ledger: Ledger;
  options: RunOptions;
  /** A plain function (no `this`): scenarios take it out of the context. */
  sleep: (ms: number) => Promise<void>;
}

export interface Scenario {
  name: string;
  /** What the fault is, in words, for the report. */
  fault: string;
  /** No fault at all (the baseline, the soak): no recovery to measure. */
  noFault?: boolean;
  /**
   * Run the health path too (nats-server, health routed from fan/anomaly): a tenth of the fans turn
   * faulty when the fault starts, and health's records and transitions are checked at the end.
   */
  withHealth?: boolean;
  /** The fault is one of health's (NATS): the prediction path must not notice it. */
  healthFault?: boolean;
  /** Injects the fault and resolves when it is over (the process back, the load normal again). */
  inject(context: FaultContext): Promise<void>;
}

/**
 * Peak resident memory each process must stay under, in every scenario: "bounded" made a number.
 * Before the registry the poison's 100,000 forged IDs took InfluxDB to 1.2 GB (100,000 series);
 * every service's peak in the full suite was otherwise under 500 MB. The harness is left out: it
 * keeps a ledger of every message (and grows over the scenarios of a run, being one process).
 */
export const RSS_BOUND_MB = 1_000;

/** What the device registry made of the load (docs/reliability.md, "The registry"). */
export interface RegistryResult {
  /** Fans registered active before the load started: the load's fans and INVALID_DEVICE. */
  registered: number;
  /** Fans pending at the end, as the registry lists them, and REGISTRY_MAX_PENDING. */
  pending: number;
  maxPending: number;
  /** Distinct deviceID tag values in InfluxDB (every measurement), and of them the ones not registered. */
  storedDevices: number;
  storedUnregistered: number;
  /** InfluxDB's series (SHOW SERIES CARDINALITY on the database). */
  seriesCardinality: number;
  /** The connector's gate counters (undefined: its /metrics did not answer). */
  gate: GateMetrics | undefined;
}

/** The poison's forged device IDs, one reading each (ForgedSummary), and what of them InfluxDB holds. */
export interface ForgedResult extends ForgedSummary {
  /** Readings FAN_QUARANTINE holds (of any fan: only forged ones are unknown). */
  quarantinedReadings: number;
  /** Points in InfluxDB with a forged deviceID (any measurement). */
  stored: number;
}

export interface StoredCounts {
  telemetry: number;
  predictions: number;
  deadLetters: number;
}

export interface ScenarioResult {
  kind: "scenario";
  scenario: string;
  fault: string;
  rate: number;
  faultMs: number;
  sent: {
    valid: number;
    invalid: number;
    invalidByKind: Record<string, number>;
    refusedByBroker: number;
    publishesFailed: number;
  };
  predictions: { readingsPredicted: number; duplicates: number; forInvalid: number; unidentified: number };
  deadLetters: {
    received: number;
    byReason: Record<string, number>;
    /** By the letter's error code (`none`: the letter has none). */
    byCode: Record<string, number>;
    withoutReason: number;
    forValidReadings: number;
    forPredictions: number;
    unidentified: number;
  };
  stored: StoredCounts & { invalidAsTelemetry: number; invalidWithStoredDeadLetter: number };
  lost: {
    unpredicted: number;
    telemetryNotStored: number;
    predictionsNotStored: number;
    invalidWithoutDeadLetter: number;
    invalidWithoutStoredDeadLetter: number;
  };
  latencyMs: LedgerSummary["latencyMs"];
  /**
   * The prediction path during the fault, over as long before it, and from its end until the load
   * stopped (the recovery: catching up competes for the same CPU): readings sent (and a second:
   * the load's own pace), predicted before the stretch ended, latency.
   */
  predictionPath: { beforeFault: PathWindow; duringFault: PathWindow; afterFault: PathWindow };
  /** Health's view at the end (scenarios with the health path). */
  fanHealth?: FanHealthResult;
  registry: RegistryResult;
  /** The poison's forged device IDs (scenarios that send them). */
  forged?: ForgedResult;
  recovery: { predictionsMs: number | null; storageMs: number | null };
  peakRssMb: Record<string, number>;
  /** When each peak was sampled, and when the fault started and ended and the load stopped: seconds since the load started. */
  peakRssAtS: Record<string, number>;
  timelineS: { faultStart: number; faultEnd: number; loadStopped: number };
  rssSlopeMbPerMin?: Record<string, number>;
  health: Record<string, number>;
  drainMs: number;
  totalMs: number;
  logDir: string;
  missed: string[];
}

/**
 * What health made of the load (docs/reliability.md, "NATS faults"): its records read through the
 * gateway at the end, and the transitions received on fan/alarm.
 */
export interface FanHealthResult {
  /** The fault is health's own: its outage must not look like the fans' silence. */
  healthFault: boolean;
  /** Fans of the load, and records health lists. */
  fans: number;
  records: number;
  /** Fans whose record's lastSeen is not their last reading (or that have no record): health did not catch up. */
  behind: number;
  /** Fans turned faulty when the fault started, and how many of them have an alarm announced on fan/alarm that is their record's. */
  faulty: number;
  faultyAlarmed: number;
  /** Fans whose current state (state and alarmId) no transition received announced: a transition lost. */
  unannounced: number;
  /** Fans whose latest transition (by its sequence) differs from their record although an earlier one matches. */
  latestDiffers: number;
  /** Transitions received, by event. */
  transitions: Record<string, number>;
  /** Received twice (same fan and sequence). */
  duplicateTransitions: number;
  /** `silent` transitions made before the load stopped (after it, every fan does fall silent). */
  silentWhileSending: number;
  /** Alarms of fans that never sent a faulty reading (the model's false positives). */
  alarmsOfHealthyFans: number;
  /** From the fault's end until the last faulty fan's first alarm arrived (null if one never did). */
  alarmsAfterFaultEndMs: number | null;
}

/** The load's fans: neither INVALID_DEVICE (`bad-…`) nor a forged ID (`dev-…`). */
const VALID = `"deviceID" =~ /^fan-[0-9]+$/`;

/**
 * One scenario on a fresh system: steady load, the fault, steady load again, then a quiet drain;
 * then everything is counted (see docs/reliability.md for what each number means).
 */
export async function runScenario(scenario: Scenario, options: RunOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const logDir = join(options.logDir, scenario.name);
  await mkdir(logDir, { recursive: true });
  const say = (line: string) => options.progress(`${scenario.name}: ${line}`);
  say(
    `starting Mosquitto, InfluxDB, ${scenario.withHealth === true ? "nats-server, " : ""}the gateway with score, predict and health, the connector and the writer (logs in ${logDir})`,
  );
  // The registered fleet: the load's fans, and the device its invalid messages come from.
  const fleet = [...Array.from({ length: options.fans }, (_, i) => `fan-${i}`), INVALID_DEVICE];
  const system = await FaultSystem.start(logDir, {
    registry: { fans: fleet, maxPending: options.registryMaxPending },
    ...(scenario.withHealth === true ? { health: { silentAfterMs: options.healthSilentAfterMs } } : {}),
  });
  // A tenth of the fans turn faulty with the fault: their alarms come from predictions health can
  // only take once the fault is over.
  const faultyFans =
    scenario.withHealth === true ? Array.from({ length: Math.ceil(options.fans / 10) }, (_, i) => `fan-${i}`) : [];
  const ledger = new Ledger();
  const sampler = new RssSampler(
    () => system.pids(),
    500,
    () => ledger.now(),
    options.rssTimelineMs,
  );
  let collector: MqttClient | undefined;
  let load: Load | undefined;
  try {
    collector = await collect(system.broker.url, ledger);
    load = await Load.start(system.broker.url, ledger, {
      rate: options.rate,
      fans: options.fans,
      clientId: "faults-fleet",
    });
    const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
    say(`steady load at ${options.rate}/s`);
    await sleep(options.beforeMs);
    say(`fault: ${scenario.fault}`);
    const faultStart = ledger.now();
    load.setFaulty(faultyFans);
    const ticker = setInterval(
      () =>
        say(
          `${ledger.validSent} valid readings sent, ${ledger.readingsPredicted} predicted, ${ledger.deadLettersReceived} dead letters`,
        ),
      30_000,
    );
    await scenario.inject({ system, load, ledger, options, sleep }).finally(() => clearInterval(ticker));
    const faultEnd = ledger.now();
    const storage = watchStorage(system, ledger, faultEnd);
    say("fault over; steady load continues");
    await sleep(options.afterMs);
    await load.stop();
    const loadStopped = ledger.now();
    say(`load stopped after ${ledger.validSent} valid readings; draining`);
    const drainStarted = Date.now();
    const stored = await drain(system, ledger, options, say, scenario.withHealth === true ? faultyFans : undefined);
    const drainMs = Date.now() - drainStarted;
    const storageMs = await storage.stop();
    const health = await system.health();
    const invalidStored = await storedInvalid(system, ledger);
    const invalidAsTelemetry = await count(
      system,
      `SELECT count("rotation") FROM "telemetry" WHERE "deviceID" =~ /^bad-/`,
    );
    const summary = ledger.summary(scenario.noFault === true ? undefined : faultEnd);
    const fanHealth =
      scenario.withHealth === true
        ? fanHealthOf(ledger, await healthRecords(system), faultyFans, {
            healthFault: scenario.healthFault === true,
            faultEnd,
            loadStoppedAt: ledger.started + loadStopped,
          })
        : undefined;
    const accepted = ledger.acceptedInvalid();
    const registry = await registryResult(system, fleet, options.registryMaxPending);
    const forged = ledger.forgedSent === 0 ? undefined : await forgedResult(system, ledger);
    const result: ScenarioResult = {
      kind: "scenario",
      scenario: scenario.name,
      fault: scenario.fault,
      rate: options.rate,
      faultMs: options.faultMs,
      sent: {
        valid: summary.validSent,
        invalid: summary.invalidSent,
        invalidByKind: summary.invalidByKind,
        refusedByBroker: summary.refusedByBroker,
        publishesFailed: load.failed,
      },
      predictions: {
        readingsPredicted: summary.predicted,
        duplicates: summary.duplicates,
        forInvalid: summary.invalidPredicted,
        unidentified: ledger.predictionsUnidentified,
      },
      deadLetters: {
        received: ledger.deadLettersReceived,
        byReason: Object.fromEntries([...ledger.deadLettersByReason].sort((a, b) => b[1] - a[1])),
        byCode: Object.fromEntries([...ledger.deadLettersByCode].sort((a, b) => b[1] - a[1])),
        withoutReason: ledger.deadLettersWithoutReason,
        forValidReadings: summary.validDeadLettered,
        forPredictions: summary.predictionsDeadLettered,
        unidentified: ledger.deadLettersUnidentified,
      },
      stored: { ...stored, invalidAsTelemetry, invalidWithStoredDeadLetter: invalidStored.size },
      lost: {
        unpredicted: summary.unpredicted,
        telemetryNotStored: Math.max(0, summary.validSent - stored.telemetry),
        predictionsNotStored: Math.max(0, summary.predicted - stored.predictions),
        invalidWithoutDeadLetter: summary.invalidWithoutDeadLetter,
        invalidWithoutStoredDeadLetter: accepted.filter((m) => !invalidStored.has(m)).length,
      },
      latencyMs: summary.latencyMs,
      predictionPath: {
        beforeFault: ledger.window(Math.max(0, 2 * faultStart - faultEnd), faultStart),
        duringFault: ledger.window(faultStart, faultEnd),
        afterFault: ledger.window(faultEnd, loadStopped),
      },
      ...(fanHealth === undefined ? {} : { fanHealth }),
      registry,
      ...(forged === undefined ? {} : { forged }),
      recovery: { predictionsMs: summary.backlogClearedMs, storageMs: scenario.noFault === true ? null : storageMs },
      peakRssMb: sampler.peak,
      peakRssAtS: Object.fromEntries(Object.entries(sampler.peakAt).map(([name, at]) => [name, seconds(at)])),
      timelineS: { faultStart: seconds(faultStart), faultEnd: seconds(faultEnd), loadStopped: seconds(loadStopped) },
      ...(options.rssTimelineMs === undefined ? {} : { rssSlopeMbPerMin: rssSlopes(sampler.timeline) }),
      health,
      drainMs,
      totalMs: Date.now() - started,
      logDir,
      missed: [],
    };
    result.missed = targetsMissed(result);
    return result;
  } finally {
    sampler.stop();
    await load?.stop(0).catch(() => {});
    await collector?.endAsync().catch(() => {});
    await system.stop();
  }
}

/**
 * The issue's targets, as sentences for what a result misses: every valid reading predicted and
 * stored with its prediction, no valid reading dead-lettered, every invalid message the broker took
 * dead-lettered with a reason and stored as such, never predicted, the services healthy at the end.
 */
export function targetsMissed(r: ScenarioResult): string[] {
  const missed: string[] = [];
  const check = (ok: boolean, sentence: string) => {
    if (!ok) missed.push(sentence);
  };
  check(r.lost.unpredicted === 0, `${r.lost.unpredicted} of ${r.sent.valid} valid readings got no prediction`);
  check(r.lost.telemetryNotStored === 0, `${r.lost.telemetryNotStored} valid readings not stored in InfluxDB`);
  check(r.lost.predictionsNotStored === 0, `${r.lost.predictionsNotStored} predictions not stored in InfluxDB`);
  check(r.deadLetters.forValidReadings === 0, `${r.deadLetters.forValidReadings} valid readings dead-lettered`);
  check(
    r.deadLetters.forPredictions === 0,
    `${r.deadLetters.forPredictions} predictions of valid readings dead-lettered`,
  );
  check(
    r.lost.invalidWithoutDeadLetter === 0,
    `${r.lost.invalidWithoutDeadLetter} invalid messages without a dead letter`,
  );
  check(
    r.lost.invalidWithoutStoredDeadLetter === 0,
    `${r.lost.invalidWithoutStoredDeadLetter} invalid messages without a stored dead letter`,
  );
  check(r.predictions.forInvalid === 0, `${r.predictions.forInvalid} invalid messages predicted`);
  check(r.stored.invalidAsTelemetry === 0, `${r.stored.invalidAsTelemetry} invalid messages stored as readings`);
  check(r.deadLetters.withoutReason === 0, `${r.deadLetters.withoutReason} dead letters without a reason`);
  check(r.sent.publishesFailed === 0, `${r.sent.publishesFailed} publishes of the load failed`);
  for (const [service, status] of Object.entries(r.health))
    check(status === 200, `${service} /healthz answered ${status === 0 ? "nothing" : status} at the end`);
  for (const [name, mb] of Object.entries(r.peakRssMb))
    check(name === "harness" || mb <= RSS_BOUND_MB, `${name}'s memory reached ${mb} MB (bound: ${RSS_BOUND_MB} MB)`);
  const g = r.registry;
  check(
    g.storedUnregistered === 0,
    `InfluxDB holds ${g.storedUnregistered} device IDs the registry never let in (${g.storedDevices} in all)`,
  );
  check(g.pending <= g.maxPending, `${g.pending} fans pending, over REGISTRY_MAX_PENDING (${g.maxPending})`);
  const f = r.forged;
  if (f !== undefined) {
    check(f.predicted === 0, `${f.predicted} of ${f.sent} forged device IDs got past the registry (predicted)`);
    check(f.stored === 0, `${f.stored} forged device IDs stored in InfluxDB`);
    check(
      f.unaccounted === 0,
      `${f.unaccounted} of ${f.sent} forged device IDs' readings neither refused nor quarantined`,
    );
    const refusedOtherwise = Object.entries(f.refusedByCode)
      .filter(([code]) => !REFUSAL_CODES.includes(code))
      .reduce((n, [, k]) => n + k, 0);
    check(
      refusedOtherwise === 0,
      `${refusedOtherwise} forged readings refused without ${REFUSAL_CODES.join(" or ")}: ${JSON.stringify(f.refusedByCode)}`,
    );
    const counted =
      g.gate === undefined
        ? 0
        : g.gate.quarantined + (g.gate.refusedByReason.unknown ?? 0) + (g.gate.refusedByReason.full ?? 0);
    check(
      counted >= f.sent,
      `the connector's metrics count ${counted} quarantined or refused readings of the ${f.sent} forged ones`,
    );
  }
  const h = r.fanHealth;
  if (h !== undefined) {
    check(h.behind === 0, `health did not catch up: ${h.behind} of ${h.fans} fans' records miss their last reading`);
    check(
      h.faultyAlarmed === h.faulty,
      `${h.faulty - h.faultyAlarmed} of ${h.faulty} faulty fans have no alarm announced`,
    );
    check(
      h.unannounced === 0,
      `${h.unannounced} fans' current health never announced on fan/alarm (a transition lost)`,
    );
  }
  if (h?.healthFault === true) {
    check(
      h.silentWhileSending === 0,
      `${h.silentWhileSending} fans marked silent while they were sending: health's outage taken for theirs`,
    );
    // Counts, not times: a prediction path held up by health's fault (as when one session carried
    // both topics: it stopped within 5 s of the fault's start) predicts a small part of the
    // readings sent during a 15 s or longer fault before it ends; one that is not held up, nearly all.
    const { sent, predictedWithin } = r.predictionPath.duringFault;
    check(
      predictedWithin * 2 >= sent,
      `predictions stopped during health's fault: ${predictedWithin} of the ${sent} readings sent during it were predicted before it ended`,
    );
  }
  return missed;
}

/** The codes a reading of an unknown device ID is dead-lettered with (docs/errors.md). */
const REFUSAL_CODES = ["FANWATCH_DEVICE_UNKNOWN", "FANWATCH_REGISTRY_FULL"];

/** The result in one line of text, for progress and test diagnostics. */
export function summaryLine(r: ScenarioResult): string {
  const rss = Object.entries(r.peakRssMb)
    .map(([name, mb]) => `${name} ${mb}`)
    .join(", ");
  return [
    `sent ${r.sent.valid} valid + ${r.sent.invalid} invalid (${r.sent.refusedByBroker} refused by the broker)`,
    `predicted ${r.predictions.readingsPredicted} (+${r.predictions.duplicates} duplicates)`,
    `stored ${r.stored.telemetry} readings, ${r.stored.predictions} predictions, ${r.stored.deadLetters} dead letters`,
    `dead letters ${r.deadLetters.received} (${r.deadLetters.forValidReadings} for valid readings, ${r.deadLetters.forPredictions} for their predictions)`,
    `lost: ${r.lost.unpredicted} unpredicted, ${r.lost.telemetryNotStored} readings and ${r.lost.predictionsNotStored} predictions not stored, ${r.lost.invalidWithoutDeadLetter} invalid without a dead letter`,
    `recovery: predictions ${r.recovery.predictionsMs ?? "–"} ms, storage ${r.recovery.storageMs ?? "–"} ms`,
    `latency p50/p99 ${r.latencyMs.p50}/${r.latencyMs.p99} ms`,
    `during the fault: ${r.predictionPath.duringFault.sent} readings sent (${r.predictionPath.duringFault.sentPerSecond}/s), ${r.predictionPath.duringFault.predictedWithin} predicted within it, p50/p99 ${r.predictionPath.duringFault.latencyMs.p50}/${r.predictionPath.duringFault.latencyMs.p99} ms (before it ${r.predictionPath.beforeFault.latencyMs.p50}/${r.predictionPath.beforeFault.latencyMs.p99} ms, after it ${r.predictionPath.afterFault.latencyMs.p50}/${r.predictionPath.afterFault.latencyMs.p99} ms)`,
    ...(r.fanHealth === undefined
      ? []
      : [
          `health: ${r.fanHealth.records} records, ${r.fanHealth.behind} behind, ${r.fanHealth.faultyAlarmed}/${r.fanHealth.faulty} faulty fans alarmed (${r.fanHealth.alarmsAfterFaultEndMs ?? "–"} ms after the fault), ${r.fanHealth.unannounced} unannounced, ${r.fanHealth.silentWhileSending} silent while sending, transitions ${JSON.stringify(r.fanHealth.transitions)}`,
        ]),
    `registry: ${r.registry.registered} fans registered, ${r.registry.pending} pending (max ${r.registry.maxPending}); InfluxDB: ${r.registry.storedDevices} device IDs (${r.registry.storedUnregistered} unregistered), ${r.registry.seriesCardinality} series`,
    ...(r.forged === undefined
      ? []
      : [
          `forged IDs: ${r.forged.sent} sent, ${r.forged.refused} refused ${JSON.stringify(r.forged.refusedByCode)}, ${r.forged.quarantined} quarantined (${r.forged.quarantinedReadings} readings held), ${r.forged.predicted} predicted, ${r.forged.stored} stored, ${r.forged.unaccounted} unaccounted; connector: ${JSON.stringify(r.registry.gate ?? "no metrics")}`,
        ]),
    `peak RSS MB: ${rss}`,
    ...(r.rssSlopeMbPerMin === undefined
      ? []
      : [
          `RSS slope MB/min: ${Object.entries(r.rssSlopeMbPerMin)
            .map(([name, s]) => `${name} ${s}`)
            .join(", ")}`,
        ]),
  ].join("; ");
}

async function collect(url: string, ledger: Ledger): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, {
    clientId: "faults-collector",
    clean: false,
    reconnectPeriod: 500,
    log: () => {},
  });
  client.on("error", () => {});
  client.on("message", (topic, payload) => {
    if (topic === "fan/anomaly") ledger.onPrediction(payload);
    else if (topic === "fan/alarm") ledger.onTransition(payload);
    else ledger.onDeadLetter(payload);
  });
  await client.subscribeAsync(["fan/anomaly", "fan/deadletter", "fan/alarm"], { qos: 1 });
  return client;
}

const HealthListing = z.object({ fans: z.array(HealthRecordSchema) });

/** Health's records, as a user lists them through the gateway; undefined while health cannot answer. */
async function healthRecords(system: FaultSystem): Promise<HealthRecord[] | undefined> {
  try {
    const response = await fetch(`${system.gatewayUrl}/function/health?limit=1000000`, {
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) return undefined;
    return HealthListing.parse(await response.json()).fans;
  } catch {
    return undefined;
  }
}

/** Fans of the load whose record does not (yet) hold their last reading. */
function fansBehind(ledger: Ledger, records: readonly HealthRecord[]): number {
  const lastSeen = new Map(records.map((r) => [r.deviceID, Date.parse(r.lastSeen)]));
  return ledger.fanIDs.filter((id) => {
    const last = ledger.lastReadingOf(id);
    return last !== undefined && lastSeen.get(id) !== Date.parse(last);
  }).length;
}

/** Faulty fans with an alarm received whose alarmId is their record's. */
function faultyAlarmed(ledger: Ledger, records: readonly HealthRecord[], faulty: readonly string[]): number {
  const byId = new Map(records.map((r) => [r.deviceID, r]));
  return faulty.filter((id) => {
    const alarmId = byId.get(id)?.alarmId;
    return (ledger.transitions.get(id) ?? []).some((t) => t.event === "alarm" && t.alarmId === alarmId);
  }).length;
}

function fanHealthOf(
  ledger: Ledger,
  records: HealthRecord[] | undefined,
  faulty: readonly string[],
  at: { healthFault: boolean; faultEnd: number; loadStoppedAt: number },
): FanHealthResult {
  const list = records ?? [];
  const transitions: Record<string, number> = {};
  let duplicates = 0;
  let silentWhileSending = 0;
  for (const received of ledger.transitions.values()) {
    const seen = new Set<number>();
    for (const t of received) {
      transitions[t.event] = (transitions[t.event] ?? 0) + 1;
      if (seen.has(t.seq)) duplicates++;
      seen.add(t.seq);
      if (t.event === "silent" && t.at <= at.loadStoppedAt) silentWhileSending++;
    }
  }
  let unannounced = 0;
  let latestDiffers = 0;
  // The load's fans: INVALID_DEVICE's implausible readings may give it a record (a sensor issue) too.
  const fans = new Set(ledger.fanIDs);
  for (const r of list) {
    if (!fans.has(r.deviceID)) continue;
    const received = ledger.transitions.get(r.deviceID) ?? [];
    if (received.length === 0 && r.state === "ok") continue;
    const announces = (t: { state: string; alarmId: string | null }) => t.state === r.state && t.alarmId === r.alarmId;
    if (!received.some(announces)) unannounced++;
    else if (!announces(received.reduce((a, b) => (b.seq > a.seq ? b : a)))) latestDiffers++;
  }
  const faultySet = new Set(faulty);
  let alarmsOfHealthyFans = 0;
  for (const [id, received] of ledger.transitions)
    if (!faultySet.has(id)) alarmsOfHealthyFans += received.filter((t) => t.event === "alarm").length;
  const firstAlarms = faulty.map((id) => ledger.transitions.get(id)?.find((t) => t.event === "alarm")?.arrived);
  return {
    healthFault: at.healthFault,
    fans: ledger.fanIDs.length,
    records: list.length,
    behind: records === undefined ? ledger.fanIDs.length : fansBehind(ledger, list),
    faulty: faulty.length,
    faultyAlarmed: faultyAlarmed(ledger, list, faulty),
    unannounced,
    latestDiffers,
    transitions,
    duplicateTransitions: duplicates,
    silentWhileSending,
    alarmsOfHealthyFans,
    alarmsAfterFaultEndMs: firstAlarms.every((a) => a !== undefined)
      ? Math.max(0, ...firstAlarms.map((a) => a - at.faultEnd))
      : null,
  };
}

async function count(system: FaultSystem, query: string): Promise<number> {
  const series = await system.influx.query(query);
  return Number(series[0]?.values[0]?.[1] ?? 0);
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** The deviceID tag's values in InfluxDB, over every measurement. */
async function storedDeviceIds(system: FaultSystem): Promise<Set<string>> {
  const series = await system.influx.query(`SHOW TAG VALUES WITH KEY = "deviceID"`);
  return new Set(series.flatMap((s) => s.values.map((row) => String(row[1]))));
}

/** What the registry made of the load: pending fans, and which device IDs InfluxDB holds. */
async function registryResult(
  system: FaultSystem,
  fleet: readonly string[],
  maxPending: number,
): Promise<RegistryResult> {
  const registered = new Set(fleet);
  const devices = await storedDeviceIds(system);
  const cardinality = await system.influx.query("SHOW SERIES CARDINALITY");
  return {
    registered: fleet.length,
    pending: (await system.registry.list("pending")).length,
    maxPending,
    storedDevices: devices.size,
    storedUnregistered: [...devices].filter((id) => !registered.has(id)).length,
    // One row per shard group: their sum.
    seriesCardinality: cardinality.reduce((n, s) => n + s.values.reduce((m, row) => m + Number(row[0] ?? 0), 0), 0),
    gate: await gateMetrics(system.connectorPort),
  };
}

/** The forged IDs' readings: refused (their dead letters), quarantined (FAN_QUARANTINE), stored. */
async function forgedResult(system: FaultSystem, ledger: Ledger): Promise<ForgedResult> {
  const held = await quarantinedReadings(system.nats.url);
  const devices = await storedDeviceIds(system);
  return {
    ...ledger.forgedSummary(new Set(held.keys())),
    quarantinedReadings: [...held.values()].reduce((a, b) => a + b, 0),
    stored: [...devices].filter((id) => FORGED.test(id)).length,
  };
}

/** Markers of the invalid messages with a dead letter stored in InfluxDB. */
async function storedInvalid(system: FaultSystem, ledger: Ledger): Promise<Set<string>> {
  // Only the letters naming a marker: the forged IDs' refusals (up to 99,000) are not needed here.
  const series = await system.influx
    .query(`SELECT "payload" FROM "deadletter" WHERE "payload" =~ /bad-[0-9]/`)
    .catch(() => []);
  return ledger.storedInvalid((series[0]?.values ?? []).map((row) => String(row[1])));
}

async function storedCounts(system: FaultSystem): Promise<StoredCounts | undefined> {
  try {
    return {
      telemetry: await count(system, `SELECT count("rotation") FROM "telemetry" WHERE ${VALID}`),
      predictions: await count(system, `SELECT count("probability") FROM "prediction" WHERE ${VALID}`),
      deadLetters: await count(system, `SELECT count("error") FROM "deadletter"`),
    };
  } catch {
    return undefined; // InfluxDB down or restarting
  }
}

/**
 * Waits until everything arrived (every valid reading predicted and stored, every invalid one
 * dead-lettered, every dead letter stored), or nothing changed for quietMs, or drainCapMs.
 */
async function drain(
  system: FaultSystem,
  ledger: Ledger,
  options: RunOptions,
  say: (line: string) => void,
  faulty: readonly string[] | undefined,
): Promise<StoredCounts> {
  const deadline = Date.now() + options.drainCapMs;
  const invalid = ledger.acceptedInvalid().length;
  let last = "";
  let quietSince = Date.now();
  let stored: StoredCounts = { telemetry: 0, predictions: 0, deadLetters: 0 };
  let reported = 0;
  while (Date.now() < deadline) {
    stored = (await storedCounts(system)) ?? stored;
    // With the health path: health's records hold every fan's last reading, every faulty fan alarmed.
    const records = faulty === undefined ? undefined : await healthRecords(system);
    const health =
      faulty === undefined
        ? undefined
        : records === undefined
          ? "unanswered"
          : { behind: fansBehind(ledger, records), alarmed: faultyAlarmed(ledger, records, faulty) };
    const arrived =
      ledger.readingsPredicted === ledger.validSent &&
      stored.telemetry >= ledger.validSent &&
      stored.predictions >= ledger.readingsPredicted &&
      ledger.invalidDeadLettered === invalid &&
      (health === undefined ||
        (health !== "unanswered" && health.behind === 0 && health.alarmed === (faulty as readonly string[]).length));
    // The forged IDs' readings: each refused (its dead letter arrived) or held in the quarantine.
    const forged =
      ledger.forgedSent === 0
        ? undefined
        : ledger.forgedRefused + (await quarantinedReadings(system.nats.url).catch(() => new Map())).size;
    if (
      arrived &&
      (forged === undefined || forged >= ledger.forgedSent) &&
      (await storedInvalid(system, ledger)).size === invalid
    )
      break;
    const state = JSON.stringify([ledger.readingsPredicted, ledger.deadLettersReceived, stored, health, forged]);
    if (state !== last) {
      last = state;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= options.quietMs) {
      say(`nothing changed for ${options.quietMs / 1000} s: drain over`);
      break;
    }
    if (Date.now() - reported > 10_000) {
      reported = Date.now();
      say(
        `draining: ${ledger.readingsPredicted}/${ledger.validSent} predicted, stored ${stored.telemetry} readings, ${stored.predictions} predictions, ${stored.deadLetters} dead letters`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  // Late duplicates (redeliveries) still on their way.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  return (await storedCounts(system)) ?? stored;
}

/**
 * Storage recovery: from the fault's end until InfluxDB holds a point for every valid reading with
 * a timeStamp up to the latest one sent by then (polled every 2 s; null if never).
 */
function watchStorage(system: FaultSystem, ledger: Ledger, faultEnd: number): { stop(): Promise<number | null> } {
  const last = ledger.lastIndexSentBefore(faultEnd);
  const expected = ledger.validUpTo(last);
  const until = new Date(ledger.t0 + last).toISOString();
  let recovered: number | null = null;
  let stopped = false;
  const loop = (async () => {
    while (!stopped && recovered === null) {
      const n = await count(
        system,
        `SELECT count("rotation") FROM "telemetry" WHERE ${VALID} AND time <= '${until}'`,
      ).catch(() => -1);
      if (n >= expected) recovered = Math.max(0, ledger.now() - faultEnd);
      else await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return recovered;
    },
  };
}
