import type { JetStreamClient } from "@nats-io/jetstream";
import type { AlarmTransition } from "../lib/domain/health.js";
import type { Logger } from "../lib/infra/log.js";
import { NOTIFIER_STREAM, sentSubject, type SentRecord } from "../lib/nats/notifications.js";
import type { StreamKeeper } from "./stream-keeper.js";

export interface DeliveryLogOptions {
  js: JetStreamClient;
  site: string;
  targetId: string;
  streams: StreamKeeper;
  log: Logger;
}

/**
 * Appends one notification delivered to its fan's delivery log (streams.ts). One that cannot be
 * written costs the log a line, never a notification: the message is acknowledged already.
 */
export async function recordSent(
  o: DeliveryLogOptions,
  transition: AlarmTransition,
  attempts: number,
  redriven: boolean,
): Promise<void> {
  const { js, site, targetId, log } = o;
  const record: SentRecord = {
    target: targetId,
    transitionId: transition.id,
    deviceID: transition.deviceID,
    event: transition.event,
    alarmId: transition.alarmId,
    at: transition.at,
    sentAt: new Date().toISOString(),
    attempts,
    redriven,
  };
  try {
    await js.publish(sentSubject(site, transition.deviceID, targetId), JSON.stringify(record), {
      msgID: `sent:${targetId}:${transition.id}`,
    });
  } catch (error) {
    o.streams.recheck(NOTIFIER_STREAM);
    log.warn(
      { event: "sent_record_unwritten", target: targetId, id: transition.id, err: (error as Error).message },
      "the notification went out, but its record in the delivery log could not be written",
    );
  }
}
