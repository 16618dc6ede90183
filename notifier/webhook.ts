import { createHash, createHmac } from "node:crypto";
import { HttpClient, HttpTimeoutError } from "../lib/infra/http/client.js";
import { isRetryable, isRetryableStatus } from "../lib/infra/retry.js";
import { DeliveryError, type DeliveryTarget, type Notification } from "./target.js";

/** What receivers see as the sender; they may log or filter on it. */
export const WEBHOOK_USER_AGENT = "fanwatch-notifier/1";

/** `webhook-<first 8 hex of sha256(url)>`: stable across restarts, and says nothing of the URL. */
export function webhookTargetId(url: string): string {
  return `webhook-${createHash("sha256").update(url).digest("hex").slice(0, 8)}`;
}

/**
 * The URL as logs and `fanwatch notifications list` show it: scheme and host only. A webhook's
 * path or query often is its secret (chat services put the token there), and the user and
 * password are: the target's id tells two webhooks on one host apart.
 */
export function describeWebhook(url: string): string {
  const u = new URL(url);
  const more = u.pathname !== "/" || u.search !== "" ? "/…" : "";
  return `webhook ${u.origin}${more}`;
}

/** The body of a notification: the transition as health published it (its site included), and the link to the fan. */
export function webhookBody(notification: Notification): Buffer {
  const { transition, link } = notification;
  return Buffer.from(JSON.stringify({ ...transition, link }), "utf8");
}

/**
 * X-Fanwatch-Delivery: the transition id, with `%` and every character outside printable ASCII
 * percent-encoded (UTF-8), since an HTTP header carries no other text and an id holds the fan's
 * device ID, which may be any text. The usual ids ("7:1764250000000:3") read the same.
 */
export function deliveryKey(id: string): string {
  return id.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}

/** `sha256=<hex HMAC-SHA256 of the exact body bytes>`, what X-Fanwatch-Signature carries. */
export function webhookSignature(secret: string, body: Buffer): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

export interface WebhookTargetOptions {
  /** One entry of NOTIFY_WEBHOOK_URL (user and password in it become basic auth). */
  url: string;
  /** NOTIFY_WEBHOOK_SECRET: the signing key. */
  secret: string;
  /** NOTIFY_TIMEOUT: one request, from sending to the whole answer. */
  timeoutMs: number;
}

/**
 * One webhook URL as a delivery target: one POST per transition, signed, with the transition id as
 * the idempotency key (X-Fanwatch-Delivery), through the project's one HTTP client (keep-alive).
 * 2xx is delivered; 408, 429, 5xx, a timeout or a connection that fails may pass (retryable); any
 * other answer is the receiver refusing this body, which sending it again would not change.
 * Muted transitions (the fan shelved or in maintenance) are not sent.
 */
export class WebhookTarget implements DeliveryTarget {
  readonly id: string;
  readonly description: string;
  readonly #url: URL;
  readonly #secret: string;
  readonly #timeoutMs: number;
  readonly #http = new HttpClient({ maxSockets: 4 });

  constructor(options: WebhookTargetOptions) {
    this.id = webhookTargetId(options.url);
    this.description = describeWebhook(options.url);
    this.#url = new URL(options.url);
    this.#secret = options.secret;
    this.#timeoutMs = options.timeoutMs;
  }

  async deliver(notification: Notification): Promise<void | "skipped"> {
    if (notification.transition.muted !== undefined) return "skipped";
    const body = webhookBody(notification);
    let answer;
    try {
      answer = await this.#http.request({
        method: "POST",
        url: this.#url,
        headers: {
          "content-type": "application/json",
          "user-agent": WEBHOOK_USER_AGENT,
          "x-fanwatch-delivery": deliveryKey(notification.transition.id),
          "x-fanwatch-event": notification.transition.event,
          "x-fanwatch-signature": webhookSignature(this.#secret, body),
        },
        body,
        timeoutMs: this.#timeoutMs,
      });
    } catch (error) {
      throw this.#failed(error);
    }
    if (answer.status >= 200 && answer.status < 300) return;
    const said = excerpt(answer.body);
    throw new DeliveryError(
      `${this.description} answered ${answer.status}${said === "" ? "" : `: ${said}`}`,
      isRetryableStatus(answer.status),
      { reason: `http_${answer.status}` },
    );
  }

  /** Ends the kept-alive connections (and a request in flight). */
  close(): void {
    this.#http.close();
  }

  #failed(error: unknown): DeliveryError {
    if (error instanceof HttpTimeoutError)
      return new DeliveryError(`no answer from ${this.description} within ${error.timeoutMs} ms`, true, {
        reason: "timeout",
        cause: error,
      });
    const message = error instanceof Error ? error.message : String(error);
    // Refused, reset, unresolvable: the receiver may be back later. Anything else here is unexpected
    // (an answer over the size cap): retried as well, so that it is not lost before NOTIFY_MAX_AGE.
    return new DeliveryError(`cannot reach ${this.description}: ${message}`, true, {
      reason: isRetryable(error) ? "connection" : "error",
      cause: error,
    });
  }
}

/** The start of a receiver's answer, for the dead letter's reason: one line, control characters gone. */
function excerpt(text: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what it removes
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
