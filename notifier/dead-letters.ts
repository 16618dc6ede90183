import type { ConsumerInfo, JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { JetStreamApiCodes } from "@nats-io/jetstream";
import { parseUntrustedJson } from "../lib/infra/json.js";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../lib/nats/health-events.js";
import { isApiError, nextMessageBySubject } from "../lib/nats/jetstream.js";
import { oldestUnacknowledged } from "./consumers.js";
import { DeadLetterSchema, TargetsRecordSchema, type DeadLetter, type TargetsRecord } from "./records.js";
import {
  deadLetterSubject,
  deadLetterSubjects,
  NOTIFIER_STREAM,
  queueConsumerName,
  redriveConsumerName,
  redriveSubject,
  targetOfConsumer,
  targetsSubject,
} from "./streams.js";

/**
 * What `fanwatch notifications` reads and changes: the dead letters in the notifier's stream, and
 * each target's queue as its consumers say. Works on the stream alone, the notifier running or not.
 */

/** A dead letter as stored: its sequence in FAN_NOTIFICATIONS (what a redrive deletes) and its content. */
export interface StoredDeadLetter {
  seq: number;
  letter: DeadLetter;
}

/** A target's queue: what waits for it in health's stream and among the redrives. */
export interface QueueStatus {
  target: string;
  /** Transitions not yet delivered (pending and unacknowledged, redrives included). */
  pending: number;
  /** Age of the oldest of them, in seconds; 0 when none. */
  oldestPendingSeconds: number;
  /**
   * The last notifier started at the site does not send to this target (its URL was removed or
   * changed): the queue stays at its place in NATS until it is deleted. False when no notifier
   * said what it sends to.
   */
  orphan: boolean;
}

/**
 * Every dead letter of the site (of one target, when given), oldest first. One that does not read
 * as a dead letter (written by something else) is left out.
 */
export async function readDeadLetters(
  jsm: JetStreamManager,
  site: string,
  target?: string,
): Promise<StoredDeadLetter[]> {
  const filter = target === undefined ? deadLetterSubjects(site) : deadLetterSubject(site, target);
  const letters: StoredDeadLetter[] = [];
  try {
    for (let seq = 1; ;) {
      const stored = await nextMessageBySubject(jsm, NOTIFIER_STREAM, seq, filter);
      if (stored === null) break;
      seq = stored.seq + 1;
      let json: unknown;
      try {
        json = parseUntrustedJson(Buffer.from(stored.data));
      } catch {
        continue;
      }
      const parsed = DeadLetterSchema.safeParse(json);
      if (parsed.success) letters.push({ seq: stored.seq, letter: parsed.data });
    }
  } catch (error) {
    // No stream yet (the notifier never ran here).
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return letters;
    throw error;
  }
  return letters;
}

/** The targets the last notifier started at the site sends to; undefined when none said (none ran, or an older one). */
export async function readConfiguredTargets(jsm: JetStreamManager, site: string): Promise<TargetsRecord | undefined> {
  let stored;
  try {
    stored = await jsm.streams.getMessage(NOTIFIER_STREAM, { last_by_subj: targetsSubject(site) });
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return undefined;
    throw error;
  }
  if (stored === null) return undefined;
  try {
    const parsed = TargetsRecordSchema.safeParse(parseUntrustedJson(Buffer.from(stored.data)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Each target's queue at the site, from its consumers (`notify-<site>-<target>`,
 * `redrive-<site>-<target>`), those whose target the last notifier started there does not send to
 * marked as orphans.
 */
export async function readQueues(jsm: JetStreamManager, site: string): Promise<QueueStatus[]> {
  const queues: QueueStatus[] = [];
  const filter = siteEventSubjects(site);
  const consumers: ConsumerInfo[] = [];
  try {
    for await (const info of jsm.consumers.list(HEALTH_EVENTS_STREAM)) consumers.push(info);
  } catch (error) {
    if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return queues;
    throw error;
  }
  const configured = await readConfiguredTargets(jsm, site);
  const now = Date.now();
  for (const info of consumers) {
    const target = targetOfConsumer(site, info.name);
    // The filter tells site "plant" from "plant-a", whose consumers begin alike.
    if (target === undefined || info.config.filter_subject !== filter) continue;
    let pending = info.num_pending + info.num_ack_pending;
    let oldest = await oldestUnacknowledged(jsm, info, filter);
    try {
      const redrive = await jsm.consumers.info(NOTIFIER_STREAM, redriveConsumerName(site, target));
      pending += redrive.num_pending + redrive.num_ack_pending;
      const first = await oldestUnacknowledged(jsm, redrive, redriveSubject(site, target));
      if (first !== undefined) oldest = Math.min(oldest ?? Infinity, first);
    } catch (error) {
      if (
        !isApiError(error, JetStreamApiCodes.ConsumerNotFound) &&
        !isApiError(error, JetStreamApiCodes.StreamNotFound)
      )
        throw error;
    }
    queues.push({
      target,
      pending,
      oldestPendingSeconds: oldest === undefined ? 0 : Math.max(0, Math.round((now - oldest) / 1000)),
      orphan: configured !== undefined && !configured.targets.some((t) => t.id === target),
    });
  }
  return queues.sort((a, b) => a.target.localeCompare(b.target));
}

/** The nats CLI commands that delete an orphaned queue (its two consumers), for people to run. */
export function orphanRemovalCommand(site: string, target: string): string {
  return (
    `nats consumer rm ${HEALTH_EVENTS_STREAM} ${queueConsumerName(site, target)} -f && ` +
    `nats consumer rm ${NOTIFIER_STREAM} ${redriveConsumerName(site, target)} -f`
  );
}

/**
 * Puts dead letters back: each is published to its target's redrive subject, which the target's
 * queue consumes (`redrive-<site>-<target>`), then deleted. The message id makes a redrive that is run
 * again after a failure between the two steps publish it once. Resolves to how many went back;
 * rejects on the first that cannot, having put back those before it.
 */
export async function redriveDeadLetters(
  js: JetStreamClient,
  jsm: JetStreamManager,
  site: string,
  letters: readonly StoredDeadLetter[],
  progress?: (done: number) => void,
): Promise<number> {
  let done = 0;
  for (const { seq, letter } of letters) {
    await js.publish(redriveSubject(site, letter.target), JSON.stringify(letter), { msgID: `redrive:${seq}` });
    await jsm.streams.deleteMessage(NOTIFIER_STREAM, seq);
    done++;
    progress?.(done);
  }
  return done;
}
