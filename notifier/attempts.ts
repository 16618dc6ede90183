import { formatDuration } from "../lib/infra/duration.js";
import type { Logger } from "../lib/infra/log.js";
import { backoffDelay } from "../lib/infra/retry.js";
import type { NotifierMetrics } from "./metrics.js";
import { DeliveryError, type DeliveryTarget, type Notification } from "./target.js";

/** How one notification ended for its target. */
export type Outcome =
  | { kind: "delivered"; attempts: number }
  | { kind: "skipped" }
  | { kind: "dead"; attempts: number; lastError: string; firstAttempt: number }
  | { kind: "abandoned" };

export interface AttemptOptions {
  target: DeliveryTarget;
  /** NOTIFY_MAX_AGE: by the message's stream time. */
  maxAgeMs: number;
  /** NOTIFY_RETRY_MAX: the longest wait between two attempts. */
  retryMaxMs: number;
  metrics: NotifierMetrics;
  log: Logger;
  /** Runs one attempt once the target's delivery before it (of either feed) has ended. */
  inTurn: <T>(send: () => Promise<T>) => Promise<T>;
  /** Waits between attempts; rejects once the queue stops. */
  sleep: (ms: number) => Promise<void>;
  /** The queue is draining or closing. */
  stopping: () => boolean;
  /** For the back-off's jitter; tests pass their own. */
  random?: () => number;
}

/**
 * Attempts a notification until the target takes it, refuses it, it passes NOTIFY_MAX_AGE, or the
 * queue stops. `storedAt` is its stream time: one already older than NOTIFY_MAX_AGE when it is
 * read (a notifier down for days, a queue that waited at its place while its webhook was not
 * configured) is not sent at all, except to a target that applies state (Alertmanager), which gets
 * it with NOTIFY_MAX_AGE counted from its first attempt. A failure that may pass is retried with
 * back-off (1 s doubling to NOTIFY_RETRY_MAX, jittered).
 */
export async function attemptDelivery(
  o: AttemptOptions,
  notification: Notification,
  storedAt: number,
): Promise<Outcome> {
  const { target, metrics, log, maxAgeMs, retryMaxMs } = o;
  const { transition } = notification;
  const about = { target: target.id, id: transition.id, deviceID: transition.deviceID, healthEvent: transition.event };
  const firstAttempt = Date.now();
  const ageWhenRead = firstAttempt - storedAt;
  // A target that applies state takes an old transition all the same, and has NOTIFY_MAX_AGE from now.
  const since = target.appliesState === true ? firstAttempt : storedAt;
  if (ageWhenRead >= maxAgeMs && target.appliesState !== true)
    return {
      kind: "dead",
      attempts: 0,
      lastError: `not sent: ${formatDuration(Math.floor(ageWhenRead / 1000) * 1000)} old when read, older than NOTIFY_MAX_AGE (${formatDuration(maxAgeMs)})`,
      firstAttempt,
    };
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await o.inTurn(() => target.deliver(notification));
      if (result === "skipped") {
        metrics.skipped.inc({ target: target.id });
        log.debug(
          { event: "notification_skipped", ...about, muted: transition.muted },
          `not sent to ${target.id}: muted`,
        );
        return { kind: "skipped" };
      }
      metrics.sent.inc({ target: target.id });
      const happened = Date.parse(transition.at);
      metrics.latency.observe(
        { target: target.id },
        Math.max(0, Date.now() - (Number.isFinite(happened) ? happened : storedAt)) / 1000,
      );
      log.info(
        { event: "notification_sent", ...about, attempts: attempt },
        `${transition.event} of fan ${transition.deviceID} sent to ${target.id}`,
      );
      return { kind: "delivered", attempts: attempt };
    } catch (error) {
      const failure = asDeliveryError(error);
      metrics.failed.inc({ target: target.id, reason: failure.reason });
      const age = Date.now() - since;
      if (!failure.retryable || age >= maxAgeMs)
        return { kind: "dead", attempts: attempt, lastError: failure.message, firstAttempt };
      if (o.stopping()) return { kind: "abandoned" };
      const delay = Math.round(
        Math.min(backoffDelay({ baseMs: 1_000, capMs: retryMaxMs }, attempt, o.random), retryMaxMs, maxAgeMs - age),
      );
      log.warn(
        {
          event: "notification_failed",
          ...about,
          attempt,
          reason: failure.reason,
          err: failure.message,
          retryInMs: delay,
        },
        `${target.id} did not take ${transition.event} of fan ${transition.deviceID}: ${failure.message}; retrying in ${delay} ms`,
      );
      try {
        await o.sleep(delay);
      } catch {
        return { kind: "abandoned" };
      }
    }
  }
}

/** A target's failure as a DeliveryError; anything else (a bug, a target not written yet) is retried. */
function asDeliveryError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error;
  return new DeliveryError(error instanceof Error ? error.message : String(error), true, {
    reason: "error",
    cause: error,
  });
}
