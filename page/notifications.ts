import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { FanwatchError } from "../lib/errors.js";
import { readBody } from "../lib/infra/http/body.js";
import { sendErrorCode } from "../lib/infra/http/error-answer.js";
import { parseUntrustedJson } from "../lib/infra/json.js";

/** Where `fanwatch start`'s Alertmanager sends its notifications: the page shows them. */
export const PAGE_RECEIVER_PATH = "/ui/alertmanager";

/** What Alertmanager's webhook receiver posts (its payload version 4), as far as the page reads it. */
const AlertmanagerWebhookSchema = z.object({
  version: z.literal("4"),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string(),
  alerts: z
    .array(
      z.object({
        status: z.enum(["firing", "resolved"]),
        labels: z.record(z.string(), z.string()),
        startsAt: z.string(),
        endsAt: z.string(),
      }),
    )
    .max(1_000),
});

/** One alert of a notification, as the page lists it. */
export interface SentNotification {
  /** When the page received it. */
  at: string;
  receiver: string;
  status: "firing" | "resolved";
  alertname: string;
  deviceID: string;
  severity: string;
}

/** Notifications kept for the page: the newest first. */
const KEPT = 50;
/** An Alertmanager notification is small; 1,000 alerts of a group are well under this. */
const BODY_LIMIT = 1024 * 1024;

/**
 * The notifications Alertmanager sent, for the page: under `fanwatch start` the local
 * Alertmanager's webhook receiver is the page itself (PAGE_RECEIVER_PATH), so what would reach an
 * engineer's phone is seen on the page too.
 */
export class NotificationLog {
  #sent: SentNotification[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** The newest first. */
  list(): readonly SentNotification[] {
    return this.#sent;
  }

  /** Takes one webhook body; false when it is not Alertmanager's payload. */
  receive(body: unknown): boolean {
    const parsed = AlertmanagerWebhookSchema.safeParse(body);
    if (!parsed.success) return false;
    const at = new Date(this.now()).toISOString();
    const added = parsed.data.alerts.map((a) => ({
      at,
      receiver: parsed.data.receiver,
      status: a.status,
      alertname: a.labels.alertname ?? "",
      deviceID: a.labels.deviceID ?? "",
      severity: a.labels.severity ?? "",
    }));
    this.#sent = [...added.reverse(), ...this.#sent].slice(0, KEPT);
    return true;
  }

  /** Serves POST PAGE_RECEIVER_PATH; false for any other request. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (new URL(req.url ?? "/", "http://page").pathname !== PAGE_RECEIVER_PATH) return false;
    if (req.method !== "POST") {
      sendErrorCode(res, "FANWATCH_METHOD_NOT_ALLOWED", `POST Alertmanager's notifications to ${PAGE_RECEIVER_PATH}`, {
        allow: "POST",
      });
      return true;
    }
    readBody(req, BODY_LIMIT, "the page's notification receiver").then(
      (bytes) => {
        let body: unknown;
        try {
          body = parseUntrustedJson(bytes);
        } catch {
          body = undefined;
        }
        if (this.receive(body)) res.writeHead(204).end();
        else sendErrorCode(res, "FANWATCH_INPUT_INVALID", "not an Alertmanager webhook notification (version 4)");
      },
      (error: Error) =>
        sendErrorCode(res, error instanceof FanwatchError ? error.code : "FANWATCH_INPUT_INVALID", error.message),
    );
    return true;
  };
}
