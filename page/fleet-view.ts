import { NotificationLog, type SentNotification } from "./notifications.js";
import type { MqttClient } from "mqtt";
import { FEATURES, type FeatureName } from "../lib/domain/features.js";
import { SampleRing } from "./fan-series.js";
import { AlarmTransitionSchema, type HealthRecord, type HealthState, type SensorIssue } from "../lib/domain/health.js";
import { parseUntrustedJson } from "../lib/infra/json.js";
import { PredictionSchema } from "../lib/domain/prediction.js";
import { parseTelemetry } from "../lib/domain/telemetry.js";
import { isSensorNotice } from "../lib/domain/sensor-notice.js";
import type { FanState as RegistryState } from "../lib/registry/fan-record.js";
import { FleetHealth, pollHealth, type HealthCounts, type HealthSnapshot } from "./fleet-health.js";
import { countFleet, type FleetCount, type RegistryView } from "./fleet-count.js";
import { pollReplicas, type FunctionReplicas, type ReplicaPoll } from "./function-replicas.js";

/** Points of each sensor kept per fan for the page's charts. */
const HISTORY = 60;
/** Predictions the count of recent faulty readings is taken over. */
const WINDOW = 10;
/**
 * Samples of readings and of predictions kept per fan for its detail view (page/fan-detail.ts): 10
 * minutes at the simulator's 2 s. Every fan keeps them, so that a fan opened after its alarm shows
 * the lead-up: 12 KB a fan in typed arrays. 1,000 fans with full series took 16.6 MB of heap
 * rather than the tiles' 3.7 MB (measured); a detail answer is 19 KB of JSON, built in 1 ms.
 */
const DETAIL_POINTS = 300;
/**
 * The most fans tracked at once (and device ids waiting to become fans). The page draws a tile per
 * fan and every frame carries each fan's 4 × 60 points: 1,000 fans with full charts made a 1.4 MB
 * frame a second per open page and 3.1 MB of heap (measured), already more than a tablet wants.
 */
const MAX_FANS = 1_000;
/** A fan silent this long leaves the page (a fan reports every 2 s; 10 minutes is a long outage). */
const FORGET_AFTER_MS = 10 * 60_000;
const FEED = 30;
/**
 * How often the health function's records are read again, so that a page opened later (or a
 * transition missed) shows the truth within this long. A list of 1,000 fans is 263 KB and takes
 * 12–16 ms to parse and check (measured): 0.3% of a core at 5 s.
 */
const HEALTH_POLL_MS = 5_000;
/** How often the functions' replicas are read from the gateway: a short list, and scale events show within 2 s. */
const REPLICAS_POLL_MS = 2_000;

/**
 * The dead letters' codes of readings refused for who sent them or what they said (docs/errors.md),
 * counted on the page: the other codes (a reading that is not one, …) are counted in the total only.
 */
export const REFUSAL_CODES = [
  "FANWATCH_DEVICE_UNKNOWN",
  "FANWATCH_REGISTRY_FULL",
  "FANWATCH_IDENTITY_MISMATCH",
  "FANWATCH_READING_IMPLAUSIBLE",
  "FANWATCH_DEVICE_ID_INVALID",
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** The fan's health state, "unknown" until the health function has a record of it. */
export type FanState = HealthState | "unknown";

export interface FanView {
  deviceID: string;
  state: FanState;
  /** The health function's record of the fan (cause, ETA and a warning's interval, basis and drifting sensors, alarm, shelving, maintenance), null until it has one. */
  health: Pick<
    HealthRecord,
    | "alarmId"
    | "severity"
    | "since"
    | "cause"
    | "eta"
    | "etaInterval"
    | "basis"
    | "sensors"
    | "probability"
    | "acknowledged"
    | "shelvedUntil"
    | "shelvedBy"
    | "maintenance"
    | "model"
  > | null;
  /** The latest prediction's probability of a fault: one reading, scored alone. */
  probability: number | null;
  /** The model that scored the latest prediction (score's id), null when it named none. */
  model: string | null;
  /** Of the last `scored` predictions (at most 10), how many said fault. */
  recent: { faulty: number; scored: number };
  readings: number;
  history: Record<FeatureName, number[]>;
  /** The fan's state in the registry (pending, active), null without a registry. */
  registration: RegistryState | null;
  /** Its open sensor issue as health records it ("rotation stuck since …"), null when none. */
  sensor: SensorIssue | null;
}

export interface FleetSnapshot {
  at: number;
  totals: {
    readings: number;
    predictions: number;
    deadLetters: number;
    /** Active fans in the registry; without one, the fans the page has seen (`source` says which). */
    fans: number;
    states: HealthCounts;
    openAlarms: number;
    unacknowledged: number;
    source: FleetCount["source"];
    /** Active fans health has no record of yet (with a registry: fans = states + this). */
    unreported: number;
    /** Fans waiting for a person's Approve (0 without a registry). */
    pending: number;
    /** Dead letters by refusal code (REFUSAL_CODES), since the page started. */
    refused: Record<RefusalCode, number>;
    /** Sensor notices seen on the anomaly topic (readings outside a sensor's physical limits). */
    sensorNotices: number;
  };
  rates: { readingsPerSecond: number; predictionsPerSecond: number };
  fans: FanView[];
  /** Open alarms (warning and alarm states), unacknowledged first, at most 100. */
  alarms: HealthRecord[];
  /** Health transitions from the alarm topic, newest first. */
  feed: HealthSnapshot["feed"];
  deadLetters: Array<{ error: string; at: number }>;
  /** What Alertmanager notified, newest first (fanwatch start's Alertmanager sends to the page). */
  notifications: readonly SentNotification[];
  /** Why the health function's records could not be read, while that lasts. */
  healthError: string | null;
  /** Each function's replicas from the gateway (empty until read), and why they could not be read, while that lasts. */
  functions: { replicas: FunctionReplicas[]; error: string | null };
}

interface Fan extends Omit<FanView, "state" | "health" | "recent" | "registration" | "sensor"> {
  verdicts: number[];
  lastSeen: number;
  /** Readings (the four sensors) and predictions (probability, fault) for the detail view, with when they arrived. */
  series: { readings: SampleRing; predictions: SampleRing };
}

/** One fan as its detail view shows it (page/fan-detail.ts): the tile's view, the full record, the longer series. */
export interface FanSeries {
  view: FanView;
  record: HealthRecord | null;
  /** Times (ms since the epoch, when the page received them) and each sensor's values, oldest first. */
  readings: { at: number[] } & Record<FeatureName, number[]>;
  predictions: { at: number[]; probability: number[]; fault: number[] };
  /** The newest health transition about the fan received from the alarm topic, null when none since the page started. */
  lastTransition: LastTransition | null;
}

/** What the fan view needs to tell that a fan's history has changed: a transition's id, event and time. */
export type LastTransition = { id: string; event: string; at: string };
const LastTransitionSchema = AlarmTransitionSchema.pick({ deviceID: true, id: true, event: true, at: true });

export interface FleetViewOptions {
  maxFans?: number;
  forgetAfterMs?: number;
  /** The clock, injectable so that tests can let fans fall silent without waiting. */
  now?: () => number;
  /**
   * Where a fan's readings come from: "predictions" (their `reading`: only readings the connector
   * let through, so a quarantined or forged fan never appears; the page and `fanwatch start`), or,
   * for tests only, "telemetry-for-tests" (the telemetry topic itself: every device id that
   * publishes, which the page must never show). @default "predictions"
   */
  readingsFrom?: "predictions" | "telemetry-for-tests";
}

export type FleetTopics = { telemetry: string; anomaly: string; deadletter: string; alarm: string };

/**
 * What the fleet is doing, read from the broker like any other subscriber: the telemetry, the
 * predictions, the dead letters and the health transitions. The web page and the console's
 * progress line show it. A fan's state is the health function's (fleet-health.ts): its records,
 * read from the function at start and every 5 s, and the transitions on the alarm topic between.
 *
 * Memory is bounded whatever device ids arrive. A device id seen once is only a candidate (its id
 * and when it was seen, in a map capped like the fans, the oldest dropped first); its second reading
 * makes it a fan. When the page is full, newcomers wait as candidates and no fan is evicted: any
 * eviction rule lets a flood of forged ids, each sent twice, push the real fans out one by one,
 * whereas a full page only makes room as fans fall silent for `forgetAfterMs`. So a flood of new
 * ids (sent once, like the fault suite's 100,000) never touches the fans on the page, and a flood
 * repeated until the page is full can only take the free places.
 */
export class FleetView {
  readonly #fans = new Map<string, Fan>();
  /** Device ids seen once, by when; in insertion order, so the first is the oldest. */
  readonly #candidates = new Map<string, number>();
  readonly #health: FleetHealth;
  /** Each fan's newest transition, in the order they came (the oldest first), as many as the fans' cap. */
  readonly #lastTransitions = new Map<string, LastTransition>();
  /** Alertmanager's notifications, received by the page (notifications.ts). */
  readonly notifications: NotificationLog;
  readonly #deadLetters: FleetSnapshot["deadLetters"] = [];
  readonly #maxFans: number;
  readonly #forgetAfterMs: number;
  readonly #now: () => number;
  readonly #readingsFrom: "predictions" | "telemetry-for-tests";
  #registry: RegistryView | undefined;
  /** A registry is coming (the page opens it in the background): until then counted as seen, "no registry yet". */
  #awaitingRegistry = false;
  #totals = { readings: 0, predictions: 0, deadLetters: 0, sensorNotices: 0 };
  readonly #refused = Object.fromEntries(REFUSAL_CODES.map((c) => [c, 0])) as Record<RefusalCode, number>;
  #last: { at: number; readings: number; predictions: number };
  #rates = { readingsPerSecond: 0, predictionsPerSecond: 0 };
  #polling: ReturnType<typeof pollHealth> | undefined;
  #healthUrl: string | undefined;
  #replicas: ReplicaPoll | undefined;

  constructor(
    private readonly topics: FleetTopics,
    options: FleetViewOptions = {},
  ) {
    this.#maxFans = options.maxFans ?? MAX_FANS;
    this.#forgetAfterMs = options.forgetAfterMs ?? FORGET_AFTER_MS;
    this.#now = options.now ?? Date.now;
    this.#readingsFrom = options.readingsFrom ?? "predictions";
    this.#last = { at: this.#now(), readings: 0, predictions: 0 };
    this.#health = new FleetHealth(this.#maxFans, this.#now);
    this.notifications = new NotificationLog(this.#now);
  }

  /**
   * Counts fans from the registry (a RegistryCache, kept current by its watch): the active fans,
   * pending beside; health records of fans that are not active are not counted, and only fans the
   * registry holds as active or pending get a tile.
   */
  useRegistry(registry: RegistryView): void {
    this.#registry = registry;
  }

  /** The page has a registry it cannot read yet: fans are counted as seen, and the counts say "no registry yet". */
  awaitRegistry(): void {
    this.#awaitingRegistry = true;
  }

  /** Feeds the view from a client (which reads only: the view never publishes). */
  async subscribe(client: MqttClient): Promise<void> {
    client.on("message", (topic, payload) => this.receive(topic, payload));
    // QoS 1 for transitions: they are few, and one lost would leave a fan's state wrong until the next read.
    await client.subscribeAsync({
      ...(this.#readingsFrom === "telemetry-for-tests" ? { [this.topics.telemetry]: { qos: 0 as const } } : {}),
      [this.topics.anomaly]: { qos: 0 },
      [this.topics.deadletter]: { qos: 0 },
      [this.topics.alarm]: { qos: 1 },
    });
  }

  /**
   * Reads every fan's record from the health function (`GET <healthUrl>`, e.g.
   * `<gateway>/function/health`) now and every `intervalMs` (5 s) until stop(). Resolves after the
   * first read, answered or not.
   */
  async readHealthFrom(
    healthUrl: string,
    options: { intervalMs?: number; headers?: Record<string, string> } = {},
  ): Promise<void> {
    this.#polling?.stop();
    this.#healthUrl = healthUrl;
    this.#polling = pollHealth(this.#health, healthUrl, {
      intervalMs: options.intervalMs ?? HEALTH_POLL_MS,
      now: this.#now,
      ...(options.headers === undefined ? {} : { headers: options.headers }),
    });
    await this.#polling.read();
  }

  /**
   * Reads each function's replicas from the gateway (`GET <functionsUrl>`, e.g.
   * `<gateway>/system/functions`, with its basic auth) now and every `intervalMs` (2 s) until stop(). Resolves after the first read, answered or not.
   */
  async readReplicasFrom(
    functionsUrl: string,
    options: { intervalMs?: number; headers?: Record<string, string> } = {},
  ): Promise<void> {
    this.#replicas?.stop();
    this.#replicas = pollReplicas(functionsUrl, {
      intervalMs: options.intervalMs ?? REPLICAS_POLL_MS,
      ...(options.headers === undefined ? {} : { headers: options.headers }),
    });
    await this.#replicas.read();
  }

  /** Stops reading the health function and the replicas; safe to call twice. */
  stop(): void {
    this.#polling?.stop();
    this.#polling = undefined;
    this.#replicas?.stop();
  }

  /** Device ids seen once and waiting to become fans (at most the fans' cap). */
  get candidates(): number {
    return this.#candidates.size;
  }

  /** Counts and rates only: what the console's status line shows, without copying every fan. */
  summary(): Pick<FleetSnapshot, "at" | "totals" | "rates" | "functions"> {
    const now = this.#now();
    const seconds = (now - this.#last.at) / 1000;
    if (seconds >= 1) {
      this.#rates = {
        readingsPerSecond: round((this.#totals.readings - this.#last.readings) / seconds),
        predictionsPerSecond: round((this.#totals.predictions - this.#last.predictions) / seconds),
      };
      this.#last = { at: now, readings: this.#totals.readings, predictions: this.#totals.predictions };
      this.#forgetSilent(now);
    }
    const count = countFleet(this.#health.records(), this.#registry, this.#fans.size, this.#awaitingRegistry);
    const replicas = this.#replicas?.current() ?? { functions: [], error: null };
    return {
      at: now,
      totals: {
        ...this.#totals,
        fans: count.fans,
        states: count.states,
        openAlarms: count.openAlarms,
        unacknowledged: count.unacknowledged,
        source: count.source,
        unreported: count.unreported,
        pending: count.pending,
        refused: { ...this.#refused },
      },
      rates: this.#rates,
      functions: { replicas: replicas.functions, error: replicas.error },
    };
  }

  /** Everything the web page shows. */
  snapshot(): FleetSnapshot {
    const summary = this.summary();
    // An open alarm of a retired, pending or unregistered fan is nobody's to acknowledge: not listed.
    const health = this.#health.snapshot(
      (id) => this.#registry === undefined || this.#registry.get(id)?.state === "active",
    );
    const fans = [...this.#fans.values()]
      .filter((fan) => this.#shown(fan.deviceID))
      .sort((a, b) => a.deviceID.localeCompare(b.deviceID, "en", { numeric: true }))
      .map((fan) => this.#view(fan));
    return {
      ...summary,
      fans,
      alarms: health.alarms,
      feed: health.feed,
      deadLetters: [...this.#deadLetters],
      notifications: this.notifications.list(),
      healthError: health.error,
    };
  }

  /** The URL the health function's records are read from, once reading started: the fan detail finds score beside it. */
  get healthUrl(): string | undefined {
    return this.#healthUrl;
  }

  /** With a registry, only its active and pending fans have tiles: a retired fan's history stays on its own page. */
  #shown(deviceID: string): boolean {
    if (this.#registry === undefined) return true;
    const state = this.#registry.get(deviceID)?.state;
    return state === "active" || state === "pending";
  }

  #registration(deviceID: string): RegistryState | null {
    return this.#registry?.get(deviceID)?.state ?? null;
  }

  /** One fan for its detail view; undefined when the page knows nothing of it (neither readings nor a health record). */
  series(deviceID: string): FanSeries | undefined {
    const fan = this.#fans.get(deviceID);
    const record = this.#health.get(deviceID) ?? null;
    if (fan === undefined) {
      if (record === null) return undefined;
      const empty = Object.fromEntries(FEATURES.map((f) => [f, [] as number[]])) as Record<FeatureName, number[]>;
      return {
        view: {
          deviceID,
          state: record.state,
          health: record,
          probability: null,
          model: null,
          recent: { faulty: 0, scored: 0 },
          readings: 0,
          history: empty,
          registration: this.#registration(deviceID),
          sensor: this.#health.sensorIssue(deviceID),
        },
        record,
        readings: { at: [], ...empty },
        predictions: { at: [], probability: [], fault: [] },
        lastTransition: this.#lastTransitions.get(deviceID) ?? null,
      };
    }
    const readings = fan.series.readings.columns();
    const predictions = fan.series.predictions.columns();
    return {
      view: this.#view(fan),
      record,
      readings: {
        at: readings.at,
        ...(Object.fromEntries(FEATURES.map((f, i) => [f, readings.values[i] ?? []])) as Record<FeatureName, number[]>),
      },
      predictions: { at: predictions.at, probability: predictions.values[0] ?? [], fault: predictions.values[1] ?? [] },
      lastTransition: this.#lastTransitions.get(deviceID) ?? null,
    };
  }

  #view({ verdicts, lastSeen: _lastSeen, series: _series, ...fan }: Fan): FanView {
    const view = {
      ...fan,
      recent: { faulty: verdicts.reduce((a, b) => a + b, 0), scored: verdicts.length },
      registration: this.#registration(fan.deviceID),
      sensor: this.#health.sensorIssue(fan.deviceID),
    };
    const record = this.#health.get(view.deviceID);
    if (record === undefined) return { ...view, state: "unknown", health: null };
    const { alarmId, severity, since, cause, eta, probability, acknowledged, shelvedUntil, shelvedBy, maintenance } =
      record;
    const { etaInterval = null, basis = null, sensors = null, model = null } = record;
    return {
      ...view,
      state: record.state,
      health: {
        alarmId,
        severity,
        since,
        cause,
        eta,
        etaInterval,
        basis,
        sensors,
        probability,
        acknowledged,
        shelvedUntil,
        shelvedBy,
        maintenance,
        model,
      },
    };
  }

  /** One message from the broker: a reading, a prediction, a dead letter or a health transition. */
  receive(topic: string, payload: Buffer): void {
    let message: unknown;
    try {
      message = parseUntrustedJson(payload);
    } catch {
      message = undefined;
    }
    if (topic === this.topics.deadletter) return this.#deadLetter(message);
    if (topic === this.topics.alarm) return this.#transition(message);
    if (topic === this.topics.anomaly) return this.#prediction(message);
    if (this.#readingsFrom !== "telemetry-for-tests") return;
    this.#totals.readings++;
    const parsed = parseTelemetry(message);
    if (!parsed.ok) return; // predict dead-letters it; the page shows that
    this.#reading(parsed.telemetry.deviceID, parsed.telemetry);
  }

  /** A fan's reading (from the telemetry topic, or a prediction's `reading`) for its tile and detail charts. */
  #reading(deviceID: string, values: Record<FeatureName, number>): void {
    const fan = this.#admit(deviceID);
    if (fan === undefined) return;
    fan.readings++;
    fan.series.readings.push(
      this.#now(),
      FEATURES.map((f) => values[f]),
    );
    for (const f of FEATURES) {
      const points = fan.history[f];
      points.push(values[f]);
      if (points.length > HISTORY) points.shift();
    }
  }

  /** A health transition: the fan's record changes, and its view learns that its history did. */
  #transition(message: unknown): void {
    if (!this.#health.transition(message)) return;
    const { deviceID, id, event, at } = LastTransitionSchema.parse(message);
    // Only for a fan the page shows (one beyond the cap has no record here, nor a view to tell).
    if (!this.#fans.has(deviceID) && this.#health.get(deviceID) === undefined) return;
    this.#lastTransitions.delete(deviceID); // re-inserted last: the oldest stays first
    this.#lastTransitions.set(deviceID, { id, event, at });
    if (this.#lastTransitions.size > this.#maxFans)
      this.#lastTransitions.delete(this.#lastTransitions.keys().next().value as string);
  }

  #prediction(message: unknown): void {
    // A sensor notice (a reading outside a sensor's limits) is no prediction: counted, never shown as one.
    if (isSensorNotice(message)) return void this.#totals.sensorNotices++;
    const parsed = PredictionSchema.safeParse(message);
    if (!parsed.success) return;
    this.#totals.predictions++;
    const p = parsed.data;
    if (this.#readingsFrom === "predictions" && p.reading !== undefined) {
      this.#totals.readings++;
      this.#reading(p.deviceID, p.reading);
    }
    // Predictions of a device id that is not a fan (yet) are counted, not kept.
    const fan = this.#fans.get(p.deviceID);
    if (fan === undefined) return;
    fan.lastSeen = this.#now();
    fan.probability = p.probability;
    fan.model = p.model ?? null;
    fan.verdicts.push(p.fault);
    if (fan.verdicts.length > WINDOW) fan.verdicts.shift();
    fan.series.predictions.push(fan.lastSeen, [p.probability, p.fault]);
  }

  #deadLetter(message: unknown): void {
    this.#totals.deadLetters++;
    const error =
      typeof message === "object" && message !== null && "error" in message
        ? String(message.error)
        : "unreadable dead letter";
    const code = typeof message === "object" && message !== null && "code" in message ? message.code : undefined;
    if (typeof code === "string" && Object.hasOwn(this.#refused, code)) this.#refused[code as RefusalCode]++;
    this.#deadLetters.unshift({ error: error.slice(0, 200), at: this.#now() });
    if (this.#deadLetters.length > FEED) this.#deadLetters.pop();
  }

  /** The fan of a reading: known, admitted on its second reading if there is room, else none. */
  #admit(deviceID: string): Fan | undefined {
    const now = this.#now();
    const known = this.#fans.get(deviceID);
    if (known !== undefined) {
      known.lastSeen = now;
      return known;
    }
    if (!this.#candidates.has(deviceID) || this.#fans.size >= this.#maxFans) {
      this.#candidates.delete(deviceID); // re-inserted last: the oldest stays first
      this.#candidates.set(deviceID, now);
      if (this.#candidates.size > this.#maxFans)
        this.#candidates.delete(this.#candidates.keys().next().value as string);
      return undefined;
    }
    this.#candidates.delete(deviceID);
    const fan: Fan = {
      deviceID,
      probability: null,
      model: null,
      readings: 0,
      verdicts: [],
      lastSeen: now,
      series: {
        readings: new SampleRing(DETAIL_POINTS, FEATURES.length),
        predictions: new SampleRing(DETAIL_POINTS, 2),
      },
      history: Object.fromEntries(FEATURES.map((f) => [f, [] as number[]])) as Record<FeatureName, number[]>,
    };
    this.#fans.set(deviceID, fan);
    return fan;
  }

  #forgetSilent(now: number): void {
    for (const [id, fan] of this.#fans) if (now - fan.lastSeen > this.#forgetAfterMs) this.#fans.delete(id);
    for (const [id, seen] of this.#candidates) {
      if (now - seen <= this.#forgetAfterMs) break; // the rest are newer
      this.#candidates.delete(id);
    }
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
