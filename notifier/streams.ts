import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
  type MsgRequest,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { ensureHealthEventsStream, HEALTH_EVENTS_STREAM } from "../lib/nats/health-events.js";
import { encodeKey } from "../lib/nats/keys.js";

/**
 * The notifier's own JetStream names. Health's event stream (FAN_HEALTH_EVENTS) is what it reads;
 * its own stream, FAN_NOTIFICATIONS, holds what it writes, one subject family per site:
 *
 * - `fanwatch.notify.<site>.dead.<target>`: dead letters (notifications a target never took);
 * - `fanwatch.notify.<site>.redrive.<target>`: dead letters put back by `fanwatch notifications
 *   redrive`, which the target's queue consumes besides health's stream;
 * - `fanwatch.notify.<site>.sent.<fan key>.<target>`: one record per notification delivered, a
 *   fan's delivery log (a subject filter per fan, as health's history).
 */
export const NOTIFIER_STREAM = "FAN_NOTIFICATIONS";
export const NOTIFIER_SUBJECTS = "fanwatch.notify.>";

const DAY_MS = 86_400_000;

/**
 * How long the notifier's stream keeps dead letters and the delivery log: as long as health keeps
 * its history by default (HEALTH_HISTORY_MAX_AGE), so that a fan's history and its deliveries
 * cover the same time.
 */
export const NOTIFIER_STREAM_MAX_AGE_MS = 400 * DAY_MS;

/**
 * The limits the notifier gives health's stream when it starts first. An existing stream is left
 * as it is: its limits are health's setting (HEALTH_HISTORY_MAX_AGE), which the notifier does not
 * read, and two services setting one stream's limits to different values would undo each other.
 */
const HEALTH_EVENTS_DEFAULT_MAX_AGE_MS = 400 * DAY_MS;

/** How long a message id is remembered in the notifier's stream: a write retried within it is stored once. */
const NOTIFIER_DUPLICATE_WINDOW_MS = 10 * 60_000;

export function deadLetterSubject(site: string, targetId: string): string {
  return `fanwatch.notify.${site}.dead.${targetId}`;
}

/** Every target's dead letters at a site. */
export function deadLetterSubjects(site: string): string {
  return `fanwatch.notify.${site}.dead.>`;
}

export function redriveSubject(site: string, targetId: string): string {
  return `fanwatch.notify.${site}.redrive.${targetId}`;
}

export function sentSubject(site: string, deviceID: string, targetId: string): string {
  return `fanwatch.notify.${site}.sent.${encodeKey(deviceID)}.${targetId}`;
}

/** The durable consumer on health's stream that feeds a target. */
export function queueConsumerName(targetId: string): string {
  return `notify-${targetId}`;
}

/** The durable consumer on the notifier's stream that feeds a target what was redriven. */
export function redriveConsumerName(targetId: string): string {
  return `redrive-${targetId}`;
}

/** The target a queue consumer feeds (`notify-webhook-1a2b3c4d` → `webhook-1a2b3c4d`), or undefined. */
export function targetOfConsumer(name: string): string | undefined {
  return name.startsWith("notify-") ? name.slice("notify-".length) : undefined;
}

/** Creates the notifier's stream if it is missing; an existing one is used as it is. */
export async function ensureNotifierStream(jsm: JetStreamManager): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(NOTIFIER_STREAM);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  try {
    return await jsm.streams.add({
      name: NOTIFIER_STREAM,
      subjects: [NOTIFIER_SUBJECTS],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(NOTIFIER_STREAM_MAX_AGE_MS),
      duplicate_window: nanos(NOTIFIER_DUPLICATE_WINDOW_MS),
    });
  } catch (error) {
    // Another notifier replica created it between the two calls.
    if (isApiError(error, STREAM_NAME_IN_USE)) return jsm.streams.info(NOTIFIER_STREAM);
    throw error;
  }
}

/**
 * Health's stream, created with the default limits if health has not started yet (the notifier's
 * consumers need it); an existing one is left as health made it.
 */
export async function ensureHealthStream(jsm: JetStreamManager): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(HEALTH_EVENTS_STREAM);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  return ensureHealthEventsStream(jsm, { maxAgeMs: HEALTH_EVENTS_DEFAULT_MAX_AGE_MS, replicas: 1 });
}

/** JetStream's "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

export interface QueueConsumerSpec {
  stream: string;
  name: string;
  filter: string;
  /** "new" on health's stream: a first start does not send the whole history; "all" for redrives. */
  deliver: "new" | "all";
  /** How long JetStream waits for an acknowledgement (or a `working()`) before it redelivers. */
  ackWaitMs: number;
}

/**
 * The durable pull consumer of a queue: explicit acks, one message unacknowledged at a time (so a
 * target gets its transitions in stream order, and replicas share the work), redelivered without
 * limit. Created when missing; an existing one keeps its place, its ack wait brought to `ackWaitMs`.
 * Resolves to its info, and whether it was created now.
 */
export async function ensureQueueConsumer(
  jsm: JetStreamManager,
  spec: QueueConsumerSpec,
): Promise<{ info: ConsumerInfo; created: boolean }> {
  try {
    const info = await jsm.consumers.info(spec.stream, spec.name);
    if (info.config.ack_wait === nanos(spec.ackWaitMs) && info.config.max_ack_pending === 1)
      return { info, created: false };
    return {
      info: await jsm.consumers.update(spec.stream, spec.name, { ack_wait: nanos(spec.ackWaitMs), max_ack_pending: 1 }),
      created: false,
    };
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
  }
  // Two replicas creating it at once both succeed: the same configuration is accepted again.
  const info = await jsm.consumers.add(spec.stream, {
    durable_name: spec.name,
    filter_subject: spec.filter,
    deliver_policy: spec.deliver === "new" ? DeliverPolicy.New : DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(spec.ackWaitMs),
    max_ack_pending: 1,
    max_deliver: -1,
  });
  return { info, created: true };
}

/**
 * The stream time (ms) of the oldest message a queue consumer has not had acknowledged; undefined
 * when there is none. With one message unacknowledged at most (max_ack_pending 1), that one is the
 * last delivered; else it is the next on the filter. (The ack floor would not do: it is 0 until
 * the first acknowledgement, on a consumer that starts at "new".)
 */
export async function oldestUnacknowledged(
  jsm: JetStreamManager,
  info: ConsumerInfo,
  filter: string,
): Promise<number | undefined> {
  if (info.num_pending + info.num_ack_pending === 0) return undefined;
  // STREAM.MSG.GET takes next_by_subj (nats-server 2.9 and later); nats.js types it for direct gets only.
  const seq = info.num_ack_pending > 0 ? info.delivered.stream_seq : info.delivered.stream_seq + 1;
  const query = { seq, next_by_subj: filter } as unknown as MsgRequest;
  const first = await jsm.streams.getMessage(info.stream_name, query);
  return first === null ? undefined : first.time.getTime();
}

export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}
