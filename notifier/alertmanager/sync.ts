import type { Logger } from "../../lib/infra/log.js";
import { alertsToSend } from "./alerts.js";
import type { AlertmanagerApi } from "./api.js";
import type { Alert, FanAlerts } from "./model.js";
import { fanKeyPrefix, keyOf, planSilences, siteKeyPrefix, type ExistingSilence, type SilenceOp } from "./silences.js";

/** Where the pusher reads what is wanted: the store's cache, by state key. */
export interface WantedSource {
  fan(key: string): FanAlerts | undefined;
  fans(): Iterable<FanAlerts>;
}

export interface UrlSyncOptions {
  site: string;
  keepEndedMs: number;
  openEndedSilenceMs: number;
  log: Logger;
  now?: () => number;
  /** Told the outcome of every round (a push of some fans or of all): whether Alertmanager took all of it. */
  onRound?: (ok: boolean) => void;
}

/** Alerts per request at most: a whole site's resend stays a few requests of a few hundred KB. */
const ALERTS_PER_REQUEST = 500;

export interface UrlStatus {
  url: string;
  /** Whole resends (every fan, silences reconciled) that succeeded. */
  resends: number;
  lastOkAt: string | null;
  lastError: string | null;
}

/**
 * Brings one Alertmanager to what is wanted. Pushes are serialised and coalesced: a push asked
 * for while another runs waits for the next round, which sends the fans' state as it is then, so
 * an older state never reaches Alertmanager after a newer one (Alertmanager takes the last alert it
 * was sent: a stale open alert would re-open a resolved one). In each round the silences go first,
 * then the alerts, so that a resolve is not muted by the acknowledgement it ends.
 */
export class UrlSync {
  #pendingAll = false;
  #pending = new Set<string>();
  /** A fan of the next round had its silences changed: list them there (another replica may have made some). */
  #pendingList = false;
  #waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  #running: Promise<void> | undefined;
  /** fanwatch's silences there, by id, as last listed or changed: undefined until first listed. */
  #silences: Map<string, ExistingSilence> | undefined;
  readonly #now: () => number;
  /** Ends this Alertmanager took (endKey), since it last started. */
  readonly #endsTaken = new Set<string>();
  /** When it started, as its status said at the last resend. */
  #startedAt: string | undefined;
  readonly status: UrlStatus;

  constructor(
    readonly api: AlertmanagerApi,
    private readonly source: WantedSource,
    private readonly options: UrlSyncOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.status = { url: api.name, resends: 0, lastOkAt: null, lastError: null };
  }

  /**
   * Resolves once a round that started after this call sent these fans' state ("all": every fan,
   * every silence of the site reconciled) and Alertmanager took all of it; rejects when it did not.
   */
  push(keys: Iterable<string> | "all", options: { listSilences?: boolean } = {}): Promise<void> {
    if (options.listSilences === true) this.#pendingList = true;
    if (keys === "all") this.#pendingAll = true;
    else for (const key of keys) this.#pending.add(key);
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#kick();
    return done;
  }

  /** Resolves once no round runs. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  #kick(): void {
    this.#running ??= this.#rounds().finally(() => {
      this.#running = undefined;
    });
  }

  async #rounds(): Promise<void> {
    while (this.#pendingAll || this.#pending.size > 0) {
      const all = this.#pendingAll;
      const list = this.#pendingList;
      const keys = [...this.#pending];
      const waiters = this.#waiters;
      this.#pendingAll = false;
      this.#pendingList = false;
      this.#pending = new Set();
      this.#waiters = [];
      try {
        await this.#round(all, keys, list);
        this.status.lastOkAt = new Date(this.#now()).toISOString();
        this.status.lastError = null;
        if (all) this.status.resends++;
        this.options.onRound?.(true);
        for (const w of waiters) w.resolve();
      } catch (error) {
        this.status.lastError = (error as Error).message;
        this.options.onRound?.(false);
        for (const w of waiters) w.reject(error);
      }
    }
  }

  async #round(all: boolean, keys: string[], list: boolean): Promise<void> {
    const now = this.#now();
    const fans = all
      ? [...this.source.fans()]
      : keys.map((k) => this.source.fan(k)).filter((f): f is FanAlerts => f !== undefined);
    const failures: Error[] = [];
    try {
      await this.#reconcileSilences(all || list, all, fans, now);
    } catch (error) {
      failures.push(error as Error);
    }
    let alerts: Alert[];
    try {
      alerts = await this.#toSend(all, fans, now);
    } catch (error) {
      failures.push(error as Error);
      alerts = fans.flatMap((f) => f.open);
    }
    for (let i = 0; i < alerts.length; i += ALERTS_PER_REQUEST) {
      const batch = alerts.slice(i, i + ALERTS_PER_REQUEST);
      try {
        await this.api.postAlerts(batch);
        for (const a of batch) if (a.endsAt !== undefined) this.#endsTaken.add(endKey(a));
      } catch (error) {
        failures.push(error as Error);
        break;
      }
    }
    const [first] = failures;
    if (first !== undefined) throw first;
  }

  /**
   * The alerts to send: every open one, and an ended one until this Alertmanager took its end.
   * Not again after that: Alertmanager drops a resolved alert once it notified it, and one sent
   * again would be put back into the fan's group, its resolve repeated in the group's next
   * notification (the fan's next episode). Again after Alertmanager restarted (it keeps no
   * alerts; its notification log may say an alarm was notified and not yet its resolve).
   */
  async #toSend(all: boolean, fans: FanAlerts[], now: number): Promise<Alert[]> {
    const candidates = fans.flatMap((f) => alertsToSend(f, now, this.options.keepEndedMs));
    if (all) {
      const startedAt = await this.api.startedAt();
      if (startedAt !== this.#startedAt) this.#endsTaken.clear();
      this.#startedAt = startedAt;
      // What no fan sends any more (past the keep period) is forgotten.
      const ended = new Set(candidates.filter((a) => a.endsAt !== undefined).map(endKey));
      for (const key of this.#endsTaken) if (!ended.has(key)) this.#endsTaken.delete(key);
    }
    return candidates.filter((a) => a.endsAt === undefined || !this.#endsTaken.has(endKey(a)));
  }

  async #reconcileSilences(list: boolean, all: boolean, fans: FanAlerts[], now: number): Promise<void> {
    const prefixes = all ? [siteKeyPrefix(this.options.site)] : fans.map((f) => fanKeyPrefix(f.site, f.deviceID));
    const ours = (silences: Iterable<ExistingSilence>) =>
      [...silences].filter((s) => {
        const key = keyOf(s);
        return key !== undefined && prefixes.some((p) => key.startsWith(p));
      });
    // A round about a few fans lists the silences only when they may have some: most transitions
    // are alarms opening and clearing, with no silence involved.
    if (!list && this.#silences !== undefined && fans.every((f) => f.silences.length === 0)) {
      if (ours(this.#silences.values()).length === 0) return;
    }
    const listed = await this.api.silences();
    this.#silences = new Map(listed.filter((s) => keyOf(s) !== undefined).map((s) => [s.id, s]));
    const ops = planSilences(
      fans.flatMap((f) => f.silences),
      ours(this.#silences.values()),
      { now, openEndedMs: this.options.openEndedSilenceMs },
    );
    let failed: Error | undefined;
    for (const op of ops) {
      try {
        await this.#apply(op);
      } catch (error) {
        failed ??= error as Error;
        this.options.log.warn(
          {
            event: "alertmanager_silence_failed",
            alertmanager: this.api.name,
            op: op.op,
            key: op.key,
            err: (error as Error).message,
          },
          `could not ${op.op} a silence at ${this.api.name}; the next round tries again`,
        );
      }
    }
    if (failed !== undefined) throw failed;
  }

  async #apply(op: SilenceOp): Promise<void> {
    const silences = this.#silences ?? new Map<string, ExistingSilence>();
    if (op.op === "expire") {
      await this.api.expireSilence(op.id);
      silences.delete(op.id);
      this.options.log.info(
        { event: "alertmanager_silence", alertmanager: this.api.name, op: op.op, key: op.key, id: op.id },
        `expired silence ${op.id} at ${this.api.name}`,
      );
      return;
    }
    const id = await this.api.postSilence(op.silence);
    // An update Alertmanager could not make in place expired the old silence and made a new one.
    if (op.op === "update" && id !== op.silence.id) silences.delete(op.silence.id);
    silences.set(id, {
      id,
      state: Date.parse(op.silence.startsAt) > this.#now() ? "pending" : "active",
      comment: op.silence.comment,
      createdBy: op.silence.createdBy,
      startsAt: op.silence.startsAt,
      endsAt: op.silence.endsAt,
      matchers: op.silence.matchers,
    });
    this.options.log.info(
      {
        event: "alertmanager_silence",
        alertmanager: this.api.name,
        op: op.op,
        key: op.key,
        id,
        endsAt: op.silence.endsAt,
      },
      `${op.op === "create" ? "created" : "updated"} silence ${id} at ${this.api.name} until ${op.silence.endsAt}`,
    );
  }
}

/** An alert's end as one string: its labels, whatever their order, and its endsAt. */
function endKey(alert: Alert): string {
  const labels = Object.entries(alert.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([labels, alert.endsAt]);
}
