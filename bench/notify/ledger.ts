import type { AlarmTransition } from "../../lib/domain/health.js";
import type { AlertmanagerWebhook } from "../../test/support/alertmanager.js";
import type { ReceivedRequest } from "../../test/support/webhook-receiver.js";
import { deliveryKey } from "../../notifier/webhook.js";

/** One transition the benchmark appended to FAN_HEALTH_EVENTS. */
export interface Published {
  transition: AlarmTransition;
  /** clock() as the publish started: every latency is measured from here. */
  at: number;
  /** JetStream acknowledged it (stored); false while retrying, or when every attempt failed. */
  stored: boolean;
  failed?: string;
}

/**
 * The direct webhook's deliveries, as a receiver that honours the idempotency key sees them:
 * every request counted raw, then deduplicated by X-Fanwatch-Delivery.
 */
export interface WebhookCount {
  /** Transitions stored in the stream (each must reach the receiver). */
  expected: number;
  /** Requests whose body arrived, however they were answered (held, refused, cut off by a kill). */
  received: number;
  /** Requests answered 2xx. */
  taken: number;
  /** Distinct keys taken. */
  distinct: number;
  /** Expected transitions whose key was never taken. */
  lost: number;
  /** Requests with a key received before (any answer): at-least-once's repeats, dropped by the key. */
  rawRepeats: number;
  /** After dropping repeats by key, notifications still there twice: one transition under two keys, or a body that is not the transition its key names. */
  duplicatedAfterDedupe: number;
  /** Keys the benchmark never published. */
  unknown: number;
}

/** Alertmanager's notifications, per (deviceID, alarmId, status), against the episodes published. */
export interface AlertmanagerCount {
  /** Webhook calls Alertmanager made. */
  bodies: number;
  episodes: number;
  /** Episodes whose clear was published (each owes one resolved notification). */
  closed: number;
  firing: { notified: number; missing: number; duplicated: number };
  resolved: { notified: number; missing: number; duplicated: number };
  /** Alerts of episodes the benchmark never opened. */
  unknown: number;
  /**
   * Of the duplicated, those whose first copy Alertmanager sent while it was being stopped: it logs
   * a notification once the receiver answered, so one in flight at SIGTERM goes out again after the
   * restart (Alertmanager's own at-least-once, not the notifier's). Counted apart, not excused:
   * they are in `duplicated` too.
   */
  repeatedAcrossItsRestart: number;
  /**
   * The duplicated, by the webhook call that carried them: `bodies` that notified nothing new (every
   * alert in them notified before with that status: a second notification), and `carried` mentions
   * in a call that did notify something new (say an episode's resolve again, along with the fan's
   * next episode's firing).
   */
  repeats: { bodies: number; carried: number };
  /**
   * The first few episodes with other than one firing and (when closed) one resolved notification:
   * when it opened, and each notification about its fan: time, status, alerts.
   */
  examples: Array<{
    deviceID: string;
    alarmId: string;
    firing: number;
    resolved: number;
    openedAt: string;
    notifications: Array<{ at: string; status: string; alerts: string[] }>;
  }>;
}

/** What the benchmark published, by transition id, and how each path's deliveries compare with it. */
export class Ledger {
  readonly published = new Map<string, Published>();

  add(transition: AlarmTransition, at: number): Published {
    const entry: Published = { transition, at, stored: false };
    this.published.set(transition.id, entry);
    return entry;
  }

  get stored(): Published[] {
    return [...this.published.values()].filter((p) => p.stored);
  }

  get publishFailed(): number {
    return [...this.published.values()].filter((p) => p.failed !== undefined).length;
  }

  /** The episodes opened (alarm transitions), keyed `deviceID\u0000alarmId`, and whether each was cleared. */
  episodes(): Map<string, { deviceID: string; alarmId: string; closed: boolean; openedAt: number }> {
    const episodes = new Map<string, { deviceID: string; alarmId: string; closed: boolean; openedAt: number }>();
    for (const { transition: t, at } of this.stored) {
      if (t.alarmId === null) continue;
      const key = episodeKey(t.deviceID, t.alarmId);
      if (t.event === "alarm")
        episodes.set(key, { deviceID: t.deviceID, alarmId: t.alarmId, closed: false, openedAt: at });
    }
    for (const { transition: t } of this.stored) {
      const e = t.alarmId === null ? undefined : episodes.get(episodeKey(t.deviceID, t.alarmId));
      if (e !== undefined && t.event === "cleared") e.closed = true;
    }
    return episodes;
  }

  /** The direct webhook's requests counted against the transitions stored. */
  webhook(requests: readonly ReceivedRequest[]): WebhookCount {
    const expected = this.stored;
    const byKey = new Map(expected.map((p) => [deliveryKey(p.transition.id), p]));
    const seen = new Set<string>();
    const taken = new Set<string>();
    let rawRepeats = 0;
    let unknown = 0;
    let mismatched = 0;
    // The same transition (fan, event, episode, time) under another key: a receiver deduplicating by key gets it twice.
    const contents = new Map<string, string>();
    let sameContent = 0;
    for (const r of requests) {
      const key = String(r.headers["x-fanwatch-delivery"]);
      if (seen.has(key)) rawRepeats++;
      seen.add(key);
      const ok = r.status >= 200 && r.status < 300;
      if (ok && !taken.has(key)) {
        taken.add(key);
        const body = r.json;
        const content = JSON.stringify([body.deviceID, body.event, body.alarmId, body.at]);
        const first = contents.get(content);
        if (first !== undefined && first !== key) sameContent++;
        else contents.set(content, key);
        const p = byKey.get(key);
        if (p === undefined) unknown++;
        else if (body.id !== p.transition.id || body.event !== p.transition.event) mismatched++;
      }
    }
    return {
      expected: expected.length,
      received: requests.length,
      taken: requests.filter((r) => r.status >= 200 && r.status < 300).length,
      distinct: taken.size,
      lost: expected.filter((p) => !taken.has(deliveryKey(p.transition.id))).length,
      rawRepeats,
      duplicatedAfterDedupe: sameContent + mismatched,
      unknown,
    };
  }

  /** First time each transition's key was taken (2xx) at the receiver, by transition id. */
  static firstTaken(requests: readonly ReceivedRequest[]): Map<string, number> {
    const first = new Map<string, number>();
    for (const r of requests) {
      if (r.status < 200 || r.status >= 300) continue;
      const key = String(r.headers["x-fanwatch-delivery"]);
      if (!first.has(key)) first.set(key, r.receivedAt);
    }
    return first;
  }

  /**
   * Alertmanager's webhook calls (one Alertmanager's: `path` starting with its prefix) against the
   * episodes; `stopping`: when that Alertmanager was being stopped (SIGTERM sent until it exited).
   */
  alertmanager(calls: readonly AlertmanagerWebhook[], stopping?: { from: number; to: number }): AlertmanagerCount {
    const episodes = this.episodes();
    const counts = alertCounts(calls);
    let unknown = 0;
    for (const key of counts.keys()) if (!episodes.has(key)) unknown++;
    const firing = { notified: 0, missing: 0, duplicated: 0 };
    const resolved = { notified: 0, missing: 0, duplicated: 0 };
    const examples: AlertmanagerCount["examples"] = [];
    let closed = 0;
    let repeatedAcrossItsRestart = 0;
    const whileStopping = (at: number | undefined) =>
      stopping !== undefined && at !== undefined && at >= stopping.from && at <= stopping.to;
    for (const [key, e] of episodes) {
      const c = counts.get(key) ?? { firing: 0, resolved: 0 };
      if (c.firing > 1 && whileStopping(c.firstFiringAt)) repeatedAcrossItsRestart += c.firing - 1;
      if (c.resolved > 1 && whileStopping(c.firstResolvedAt)) repeatedAcrossItsRestart += c.resolved - 1;
      firing.notified += Math.min(1, c.firing);
      firing.missing += c.firing === 0 ? 1 : 0;
      firing.duplicated += Math.max(0, c.firing - 1);
      if (e.closed) {
        closed++;
        resolved.notified += Math.min(1, c.resolved);
        resolved.missing += c.resolved === 0 ? 1 : 0;
      }
      resolved.duplicated += Math.max(0, c.resolved - 1);
      const right = c.firing === 1 && c.resolved === (e.closed ? 1 : 0);
      if (!right && examples.length < 5)
        examples.push({
          deviceID: e.deviceID,
          alarmId: e.alarmId,
          firing: c.firing,
          resolved: c.resolved,
          openedAt: new Date(e.openedAt).toISOString(),
          notifications: calls
            .filter((call) => call.body.groupLabels.deviceID === e.deviceID)
            .map((call) => ({
              at: new Date(call.at).toISOString(),
              status: call.body.status,
              alerts: call.body.alerts.map((a) => `${a.labels.alarmId ?? "?"} ${a.status}`),
            })),
        });
    }
    return {
      bodies: calls.length,
      episodes: episodes.size,
      closed,
      firing,
      resolved,
      unknown,
      repeatedAcrossItsRestart,
      repeats: repeatsByCall(calls),
      examples,
    };
  }
}

/** Calls that notified nothing new, and repeated mentions within calls that did (see AlertmanagerCount.repeats). */
function repeatsByCall(calls: readonly AlertmanagerWebhook[]): { bodies: number; carried: number } {
  const seen = new Set<string>();
  let bodies = 0;
  let carried = 0;
  for (const call of [...calls].sort((a, b) => a.at - b.at)) {
    const keys = call.body.alerts.map(
      (a) => `${episodeKey(a.labels.deviceID ?? "", a.labels.alarmId ?? "")}\u0000${a.status}`,
    );
    const fresh = keys.filter((k) => !seen.has(k));
    if (fresh.length === 0) bodies++;
    else carried += keys.length - fresh.length;
    for (const k of keys) seen.add(k);
  }
  return { bodies, carried };
}

export function episodeKey(deviceID: string, alarmId: string): string {
  return `${deviceID}\u0000${alarmId}`;
}

/** Per episode (deviceID, alarmId): notifications received with it firing, and resolved; and when each first came. */
export function alertCounts(
  calls: readonly AlertmanagerWebhook[],
): Map<string, { firing: number; resolved: number; firstFiringAt?: number; firstResolvedAt?: number }> {
  const counts = new Map<
    string,
    { firing: number; resolved: number; firstFiringAt?: number; firstResolvedAt?: number }
  >();
  for (const call of calls)
    for (const alert of call.body.alerts) {
      const { deviceID, alarmId } = alert.labels;
      if (deviceID === undefined || alarmId === undefined) continue;
      const key = episodeKey(deviceID, alarmId);
      const c = counts.get(key) ?? { firing: 0, resolved: 0 };
      if (alert.status === "firing") {
        c.firing++;
        c.firstFiringAt ??= call.at;
      } else {
        c.resolved++;
        c.firstResolvedAt ??= call.at;
      }
      counts.set(key, c);
    }
  return counts;
}
