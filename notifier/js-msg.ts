import type { JsMsg } from "@nats-io/jetstream";
import type { Source } from "./records.js";

/** When JetStream stored the message (ms): what NOTIFY_MAX_AGE counts from. */
export function storedAt(msg: JsMsg): number {
  return Number(msg.timestampNanos / 1_000_000n);
}

/** Where a message came from, as a dead letter keeps it. */
export function sourceOf(msg: JsMsg): Source {
  return {
    stream: msg.info.stream,
    seq: msg.seq,
    subject: msg.subject,
    storedAt: new Date(storedAt(msg)).toISOString(),
  };
}

/**
 * Acknowledges, hands back or says "still working on it". On a connection that closed meanwhile
 * (the notifier closing) this would throw; JetStream then redelivers after the ack wait, which is
 * what a message neither acknowledged nor handed back gets anyway.
 */
export function tell(msg: JsMsg, what: "ack" | "nak" | "working"): void {
  try {
    if (what === "ack") msg.ack();
    else if (what === "nak") msg.nak();
    else msg.working();
  } catch {
    // the connection is closed
  }
}
