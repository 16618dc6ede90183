import { z } from "zod";
import {
  AlarmTransitionSchema,
  HEALTH_STATES,
  NOTE_EVENTS,
  SENSOR_EVENTS,
  HealthRecordSchema,
  type AlarmTransition,
  type HealthRecord,
  type HealthState,
  type SensorIssue,
} from "../lib/domain/health.js";

/** Transitions kept for the page's feed. */
const FEED = 30;
/** Open alarms sent to the page at most (the count says how many there are). */
const MAX_ALARMS_LISTED = 100;

/** What `GET /function/health` answers (the health function's API); each record is checked on its own. */
const HealthListSchema = z.object({ fans: z.array(z.unknown()) });

export type HealthCounts = Record<HealthState, number>;

export interface HealthSnapshot {
  counts: HealthCounts;
  /** Open alarms (warning and alarm), unacknowledged first, then alarms before warnings, oldest first. */
  alarms: HealthRecord[];
  openAlarms: number;
  /** Open alarms nobody has acknowledged. */
  unacknowledged: number;
  /** Health transitions, newest first. */
  feed: AlarmTransition[];
  /** Why the records could not be read from the health function, while that lasts. */
  error: string | null;
}

/**
 * Each fan's health as the health function keeps it: the records read from `GET /function/health`
 * (at start and every few seconds, so that what the page shows is the function's truth even when
 * a transition was missed), and between two reads the transitions from the alarm topic.
 *
 * At most `maxFans` records are kept, as the fleet view keeps at most that many fans: a read takes
 * the first `maxFans` of the function's list, which puts open alarms first, so a flood of forged
 * device ids can crowd out healthy fans' records but never an alarm.
 */
export class FleetHealth {
  readonly #records = new Map<string, HealthRecord>();
  /** When each fan's record last changed by a transition (the view's clock), so that a read begun before it does not undo it. */
  readonly #changedAt = new Map<string, number>();
  readonly #feed: AlarmTransition[] = [];
  #error: string | null = null;

  constructor(
    private readonly maxFans: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.#records.size;
  }

  get(deviceID: string): HealthRecord | undefined {
    return this.#records.get(deviceID);
  }

  /** Every record kept. */
  records(): IterableIterator<HealthRecord> {
    return this.#records.values();
  }

  /** The fan's open sensor issue, or null when its record has none (or comes from a health without them). */
  sensorIssue(deviceID: string): SensorIssue | null {
    return this.#records.get(deviceID)?.sensorIssue ?? null;
  }

  /** A message from the alarm topic; anything that is not a transition is ignored. */
  transition(message: unknown): boolean {
    const parsed = AlarmTransitionSchema.safeParse(message);
    if (!parsed.success) return false;
    const t = parsed.data;
    this.#feed.unshift(t);
    if (this.#feed.length > FEED) this.#feed.pop();
    const known = this.#records.get(t.deviceID);
    if (known === undefined && this.#records.size >= this.maxFans) return true; // the next read may bring it
    if (SENSOR_EVENTS.has(t.event)) {
      // A sensor issue opens or clears beside the fan's state, which it leaves as it is.
      if (known !== undefined) {
        this.#records.set(t.deviceID, {
          ...known,
          sensorIssue: t.event === "sensor" ? (t.sensorIssue ?? known.sensorIssue ?? null) : null,
        });
        this.#changedAt.set(t.deviceID, this.now());
      }
      return true;
    }
    if (NOTE_EVENTS.has(t.event)) {
      // A note may be about an older episode (its alarmId): it changes the record only when it is
      // about the record's own; otherwise the next read brings whatever it changed.
      if (known !== undefined && t.alarmId === known.alarmId) {
        this.#records.set(t.deviceID, noted(known, t));
        this.#changedAt.set(t.deviceID, this.now());
      }
      return true;
    }
    // A new episode starts without an assignee or a finding; the last one's are kept until then.
    const sameEpisode = known !== undefined && (t.alarmId === null || t.alarmId === known.alarmId);
    this.#records.set(t.deviceID, {
      deviceID: t.deviceID,
      state: t.state,
      alarmId: t.alarmId,
      severity: t.severity,
      since: t.since,
      cause: t.cause,
      contributions: t.contributions,
      probability: t.probability,
      eta: t.eta,
      // A warning's; a transition without them (an alarm, a clear, one from an older health) has none.
      etaInterval: t.etaInterval ?? null,
      basis: t.basis ?? null,
      sensors: t.sensors ?? null,
      lastSeen: known !== undefined && known.lastSeen > t.at ? known.lastSeen : t.at,
      acknowledged: t.acknowledged,
      acknowledgedBy: t.acknowledged ? (t.by ?? known?.acknowledgedBy ?? null) : null,
      note: t.acknowledged ? (t.note ?? known?.note ?? null) : null,
      ...shelvingAfter(t, known),
      maintenance: maintenanceAfter(t, known),
      assignedTo: sameEpisode ? known.assignedTo : null,
      finding: sameEpisode ? known.finding : null,
      sensorIssue: known?.sensorIssue ?? null,
      // The model whose prediction moved the fan (health's record says the same); none from an older health.
      model: t.model ?? null,
    });
    this.#changedAt.set(t.deviceID, this.now());
    return true;
  }

  /**
   * The records read from the health function, the read having begun at `startedAt`: they replace
   * what is kept, except a fan changed by a transition since then (the read may predate it). Only
   * the first `maxFans` are checked and kept; one that is not a record is skipped.
   */
  replace(records: readonly unknown[], startedAt: number): void {
    const next = new Map<string, HealthRecord>();
    for (const item of records) {
      if (next.size >= this.maxFans) break;
      const parsed = HealthRecordSchema.safeParse(item);
      if (!parsed.success) continue;
      const record = parsed.data;
      const changed = this.#changedAt.get(record.deviceID);
      const kept = this.#records.get(record.deviceID);
      next.set(record.deviceID, changed !== undefined && changed >= startedAt && kept !== undefined ? kept : record);
    }
    this.#records.clear();
    for (const [id, record] of next) this.#records.set(id, record);
    for (const [id, at] of this.#changedAt) if (at < startedAt || !next.has(id)) this.#changedAt.delete(id);
    this.#error = null;
  }

  failed(error: string): void {
    this.#error = error.slice(0, 300);
  }

  /** Fans by state, and the open alarms: what the console's status line shows. */
  tally(): Pick<HealthSnapshot, "counts" | "openAlarms" | "unacknowledged"> {
    const counts = Object.fromEntries(HEALTH_STATES.map((s) => [s, 0])) as HealthCounts;
    let unacknowledged = 0;
    for (const record of this.#records.values()) {
      counts[record.state]++;
      if (isOpen(record) && !record.acknowledged) unacknowledged++;
    }
    return { counts, openAlarms: counts.alarm + counts.warning, unacknowledged };
  }

  /** `counted` leaves out the alarms of fans that are not counted (with a registry: not active). */
  snapshot(counted: (deviceID: string) => boolean = () => true): HealthSnapshot {
    const open = [...this.#records.values()].filter((r) => isOpen(r) && counted(r.deviceID)).sort(byUrgency);
    return { ...this.tally(), alarms: open.slice(0, MAX_ALARMS_LISTED), feed: [...this.#feed], error: this.#error };
  }
}

/** The record after a note on its own episode: the assignee and the last finding (a comment changes neither). */
function noted(known: HealthRecord, t: AlarmTransition): HealthRecord {
  if (t.event === "assigned" && t.to !== undefined) return { ...known, assignedTo: t.to };
  if (t.event === "finding" && t.result !== undefined)
    return {
      ...known,
      finding: {
        result: t.result,
        part: t.part ?? null,
        sensor: t.sensor ?? null,
        note: t.note ?? null,
        by: t.by ?? "",
        at: t.at,
      },
    };
  return known;
}

/**
 * A fan's shelving after a transition: set by `shelved`, over with its episode (a clear, or a new
 * episode) or at `resumed` once its time has passed (ISO times in UTC compare as text).
 */
function shelvingAfter(
  t: AlarmTransition,
  known: HealthRecord | undefined,
): Pick<HealthRecord, "shelvedUntil" | "shelvedBy"> {
  if (t.event === "shelved") return { shelvedUntil: t.until ?? null, shelvedBy: t.by ?? null };
  const until = known?.shelvedUntil ?? null;
  const over =
    until === null ||
    t.state === "cleared" ||
    t.state === "ok" ||
    t.alarmId !== known?.alarmId ||
    (t.event === "resumed" && until <= t.at);
  return over ? { shelvedUntil: null, shelvedBy: null } : { shelvedUntil: until, shelvedBy: known?.shelvedBy ?? null };
}

/** A fan's maintenance window after a transition: set by `maintenance`, over at `resumed` once its end has passed. */
function maintenanceAfter(t: AlarmTransition, known: HealthRecord | undefined): HealthRecord["maintenance"] {
  if (t.event === "maintenance" && t.until !== undefined)
    return { from: t.from ?? t.at, until: t.until, by: t.by ?? "", note: t.note ?? null };
  const window = known?.maintenance ?? null;
  return window !== null && t.event === "resumed" && window.until <= t.at ? null : window;
}

export function isOpen(record: HealthRecord): boolean {
  return record.state === "alarm" || record.state === "warning";
}

/** Unacknowledged first, then alarms before warnings, then the oldest first, then by fan. */
function byUrgency(a: HealthRecord, b: HealthRecord): number {
  if (a.acknowledged !== b.acknowledged) return a.acknowledged ? 1 : -1;
  if (a.state !== b.state) return a.state === "alarm" ? -1 : 1;
  if (a.since !== b.since) return a.since < b.since ? -1 : 1;
  return a.deviceID.localeCompare(b.deviceID, "en", { numeric: true });
}

/**
 * Reads every fan's record from the health function (`GET <url>`) now and every `intervalMs`,
 * until stopped. A health function that is not deployed (a stack without it) or not answering
 * leaves the records as they are and says why on the page.
 */
export function pollHealth(
  health: FleetHealth,
  url: string,
  options: { intervalMs: number; now: () => number; headers?: Record<string, string> },
): { stop: () => void; read: () => Promise<void> } {
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  const controller = new AbortController();
  const read = (): Promise<void> =>
    (inFlight ??= (async () => {
      const startedAt = options.now();
      try {
        const res = await fetch(url, {
          headers: { accept: "application/json", ...options.headers },
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(Math.max(1_000, options.intervalMs))]),
        });
        if (!res.ok)
          throw new Error(
            `GET ${url} answered ${res.status}${res.status === 404 ? " (no health function in the stack?)" : ""}`,
          );
        const parsed = HealthListSchema.safeParse(await res.json());
        if (!parsed.success)
          throw new Error(
            `GET ${url}: not a health list (${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message ?? "invalid"})`,
          );
        if (!stopped) health.replace(parsed.data.fans, startedAt);
      } catch (error) {
        if (!stopped) health.failed(error instanceof Error ? error.message : String(error));
      } finally {
        inFlight = undefined;
      }
    })());
  const timer = setInterval(() => void read(), options.intervalMs);
  timer.unref();
  void read();
  return {
    read,
    stop() {
      stopped = true;
      clearInterval(timer);
      controller.abort();
    },
  };
}
