import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../lib/infra/log.js";
import type { DeliveryTarget, Notification } from "../target.js";

export interface AlertmanagerTargetOptions {
  /** ALERTMANAGER_URL: every one gets every alert and silence. */
  urls: string[];
  site: string;
  /** ALERTMANAGER_RESEND: open alerts are sent again this often. */
  resendMs: number;
  /** NOTIFY_TIMEOUT: one request. */
  timeoutMs: number;
  /** Where the target keeps its state (its own KV bucket). */
  nc: NatsConnection;
  log: Logger;
}

/**
 * Health's transitions as Prometheus Alertmanager alerts and silences (docs/alertmanager.md).
 * Being written for issue 21: start() and deliver() are placeholders until then.
 */
export class AlertmanagerTarget implements DeliveryTarget {
  readonly id = "alertmanager";
  readonly description: string;

  constructor(readonly options: AlertmanagerTargetOptions) {
    this.description = `Alertmanager at ${options.urls.join(", ")}`;
  }

  /** Opens its state and starts sending open alerts again every resendMs. */
  async start(): Promise<void> {}

  deliver(notification: Notification): Promise<void> {
    void notification;
    return Promise.reject(new Error("the Alertmanager target is not written yet"));
  }

  async close(): Promise<void> {}
}
