import type { AlarmTransition } from "../lib/domain/health.js";

/**
 * What the notifier hands a receiver: one transition of health's event stream (with its `site`)
 * and the link to the fan on the page.
 */
export interface Notification {
  transition: AlarmTransition;
  /** The fan on the page (PAGE_URL), for people to click. */
  link: string;
}

/** The link to the fan on the page, in every notification: `${PAGE_URL}/?fan=<device ID>`. */
export function fanLink(pageUrl: string, deviceID: string): string {
  return `${pageUrl}/?fan=${encodeURIComponent(deviceID)}`;
}

/**
 * A receiver of notifications: one webhook URL, or the Alertmanager(s) of ALERTMANAGER_URL as one.
 * The notifier's queue (one durable consumer per target) delivers each transition to each target
 * in stream order, retries with back-off and turns what is older than NOTIFY_MAX_AGE into a dead
 * letter; a target only sends.
 */
export interface DeliveryTarget {
  /** Stable across restarts and a NATS consumer name: `alertmanager`, `webhook-<8 hex of the URL>`. */
  readonly id: string;
  /** For logs and `fanwatch notifications list`: the URL(s) with any credentials removed. */
  readonly description: string;
  /**
   * Sends one notification. Resolves once the receiver took it, or at once with "skipped" when it
   * is not for this target (a muted transition for a webhook). Rejects with a DeliveryError saying
   * whether trying again can help.
   */
  deliver(notification: Notification): Promise<void | "skipped">;
  /**
   * True when a transition is state to apply however old it is (Alertmanager's alerts: an alarm
   * that cleared while the notifier was away must end), not news that is stale after
   * NOTIFY_MAX_AGE (a webhook's message). Such a target still gets a dead letter for a transition
   * it could not take within NOTIFY_MAX_AGE.
   */
  readonly appliesState?: boolean;
}

/** A delivery that failed: `retryable` when the receiver may take it later (down, 5xx, 429, timeout), else it is a dead letter now (4xx). */
export class DeliveryError extends Error {
  /** Why, as a metric label (`fanwatch_notifications_failed_total{reason}`): `http_503`, `timeout`, `connection`. */
  readonly reason: string;

  constructor(
    message: string,
    readonly retryable: boolean,
    options?: ErrorOptions & { reason?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DeliveryError";
    this.reason = options?.reason ?? (retryable ? "unavailable" : "rejected");
  }
}
