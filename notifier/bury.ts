import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../lib/infra/log.js";
import { tell } from "./js-msg.js";
import type { NotifierMetrics } from "./metrics.js";
import { natsRetryDelay } from "./nats-retry.js";
import type { DeadLetter } from "./records.js";
import type { StreamKeeper } from "./stream-keeper.js";
import { deadLetterSubject, NOTIFIER_STREAM } from "./streams.js";

export interface BuryOptions {
  js: JetStreamClient;
  site: string;
  targetId: string;
  streams: StreamKeeper;
  metrics: NotifierMetrics;
  log: Logger;
  /** Waits between attempts to store it; rejects once the queue stops. */
  sleep: (ms: number) => Promise<void>;
  /** The queue is draining or closing. */
  stopping: () => boolean;
}

/**
 * Stores a dead letter in the notifier's stream, then acknowledges its message. A write that fails
 * (NATS away, the stream deleted by hand: made again) is tried again until it is stored; a queue
 * that stops meanwhile hands the message back instead. Resolves to whether the letter was stored.
 */
export async function bury(o: BuryOptions, letter: DeadLetter, msg: JsMsg): Promise<boolean> {
  const { js, site, targetId, metrics, log } = o;
  const data = JSON.stringify(letter);
  // One dead letter per message, even when a redelivery of the same message dies again.
  const msgID = `dead:${targetId}:${letter.source.stream}:${letter.source.seq}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await js.publish(deadLetterSubject(site, targetId), data, { msgID });
      break;
    } catch (error) {
      if (o.stopping()) {
        tell(msg, "nak");
        return false;
      }
      o.streams.recheck(NOTIFIER_STREAM);
      log.warn(
        { event: "dead_letter_unwritten", target: targetId, err: (error as Error).message },
        "cannot store a dead letter yet; retrying",
      );
      await o.sleep(natsRetryDelay(attempt)).catch(() => {});
    }
  }
  tell(msg, "ack");
  metrics.dead.inc({ target: targetId });
  const t = letter.transition;
  log.error(
    {
      event: "notification_dead",
      target: targetId,
      id: t?.id,
      deviceID: t?.deviceID,
      attempts: letter.attempts,
      err: letter.lastError,
    },
    `${targetId} never took ${t === null ? "a message" : `${t.event} of fan ${t.deviceID}`}: ${letter.lastError}; kept as a dead letter (fanwatch notifications list)`,
  );
  return true;
}
