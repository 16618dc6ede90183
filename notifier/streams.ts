import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { HEALTH_EVENTS_STREAM, healthEventsStreamConfig } from "../lib/nats/health-events.js";
import { ensureStream, type WantedStream } from "../lib/nats/jetstream.js";
import { NOTIFIER_STREAM, NOTIFIER_SUBJECTS } from "../lib/nats/notifications.js";

/**
 * The notifier's own JetStream names. Health's event stream (FAN_HEALTH_EVENTS) is what it reads;
 * its own stream, FAN_NOTIFICATIONS, holds what it writes, one subject family per site:
 *
 * - `fanwatch.notify.<site>.dead.<target>`: dead letters (notifications a target never took);
 * - `fanwatch.notify.<site>.redrive.<target>`: dead letters put back by `fanwatch notifications
 *   redrive`, which the target's queue consumes besides health's stream (each deleted once handled);
 * - `fanwatch.notify.<site>.sent.<fan key>.<target>`: one record per notification delivered, a
 *   fan's delivery log (a subject filter per fan, as health's history), which health's history
 *   (GET /function/health/history) shows with each episode;
 * - `fanwatch.notify.<site>.targets`: the targets a notifier of the site was started with, one
 *   record per start, so that `fanwatch notifications list` tells a queue whose target is no
 *   longer configured (an orphan).
 *
 * The stream's name and the delivery log's subjects are shared with health (lib/nats/notifications.ts).
 */
export { NOTIFIER_STREAM, NOTIFIER_SUBJECTS };

/** The streams the notifier needs: health's, which it reads, and its own. */
export type NeededStream = typeof HEALTH_EVENTS_STREAM | typeof NOTIFIER_STREAM;

const DAY_MS = 86_400_000;

/**
 * How long the notifier's stream keeps dead letters and the delivery log: as long as health keeps
 * its history by default (HEALTH_HISTORY_MAX_AGE), so that a fan's history and its deliveries
 * cover the same time.
 */
export const NOTIFIER_STREAM_MAX_AGE_MS = 400 * DAY_MS;

/**
 * The most the notifier's stream holds, 1 GiB; past it the oldest messages go (discard "old"),
 * so that a busy site's delivery log cannot fill the JetStream store that health's state shares.
 * At some 300 bytes a record that is over three million notifications.
 */
export const NOTIFIER_STREAM_MAX_BYTES = 1024 ** 3;

/** How long a message id is remembered in the notifier's stream: a write retried within it is stored once. */
const NOTIFIER_DUPLICATE_WINDOW_MS = 10 * 60_000;

/**
 * The limits the notifier gives health's stream when it starts first. An existing stream is left
 * as it is: its limits are health's setting (HEALTH_HISTORY_MAX_AGE), which the notifier does not
 * read, and two services setting one stream's limits to different values would undo each other.
 */
const HEALTH_EVENTS_DEFAULT_MAX_AGE_MS = 400 * DAY_MS;

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

/** Where a notifier says, as it starts, which targets it sends to. */
export function targetsSubject(site: string): string {
  return `fanwatch.notify.${site}.targets`;
}

/**
 * The durable consumer on health's stream that feeds a target at a site. The site is in the name:
 * two sites sharing one NATS (both with an `alertmanager` target, or the same webhook) each have
 * their own.
 */
export function queueConsumerName(site: string, targetId: string): string {
  return `notify-${site}-${targetId}`;
}

/** The durable consumer on the notifier's stream that feeds a target at a site what was redriven. */
export function redriveConsumerName(site: string, targetId: string): string {
  return `redrive-${site}-${targetId}`;
}

/**
 * The target a site's queue consumer feeds (`notify-plant-a-webhook-1a2b3c4d` at `plant-a` →
 * `webhook-1a2b3c4d`), or undefined. A site whose name begins with another's and a dash
 * (`plant` and `plant-a`) matches the other's consumers too: callers also check the filter.
 */
export function targetOfConsumer(site: string, name: string): string | undefined {
  const prefix = `notify-${site}-`;
  return name.startsWith(prefix) && name.length > prefix.length ? name.slice(prefix.length) : undefined;
}

/** The two streams the notifier needs, as it would create them, and what it brings an existing one to. */
type StreamPlan = { wanted: WantedStream; adjust?: (existing: StreamInfo) => Partial<StreamConfig> | undefined };

function notifierStreamPlan(replicas: number): StreamPlan {
  // The notifier's alone: an existing one is brought to these limits.
  const limits = {
    max_age: nanos(NOTIFIER_STREAM_MAX_AGE_MS),
    max_bytes: NOTIFIER_STREAM_MAX_BYTES,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
  };
  return {
    wanted: {
      name: NOTIFIER_STREAM,
      subjects: [NOTIFIER_SUBJECTS],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(NOTIFIER_DUPLICATE_WINDOW_MS),
      ...limits,
    },
    adjust: ({ config }) =>
      config.max_age === limits.max_age &&
      config.max_bytes === limits.max_bytes &&
      config.discard === limits.discard &&
      config.num_replicas === limits.num_replicas
        ? undefined
        : limits,
  };
}

/**
 * Creates a stream the notifier needs when it is missing: its own, FAN_NOTIFICATIONS (kept 400
 * days, at most NOTIFIER_STREAM_MAX_BYTES, `replicas` copies; an existing one is brought to that),
 * or health's, FAN_HEALTH_EVENTS, when health has not started yet (with health's default limits
 * and `replicas` copies; an existing one is left as health made it).
 */
export function ensureNotifierStream(
  jsm: JetStreamManager,
  stream: NeededStream,
  replicas: number,
): Promise<{ info: StreamInfo; created: boolean }> {
  const plan: StreamPlan =
    stream === NOTIFIER_STREAM
      ? notifierStreamPlan(replicas)
      : { wanted: healthEventsStreamConfig({ maxAgeMs: HEALTH_EVENTS_DEFAULT_MAX_AGE_MS, replicas }) };
  return ensureStream(jsm, plan.wanted, plan.adjust);
}
