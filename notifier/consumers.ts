import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  type ConsumerInfo,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { isApiError, nextMessageBySubject } from "../lib/nats/jetstream.js";
import type { NeededStream } from "./streams.js";

/** One durable pull consumer of a target's queue (queueConsumerName, redriveConsumerName in streams.ts). */
export interface QueueConsumerSpec {
  stream: NeededStream;
  name: string;
  filter: string;
  /** "new" on health's stream: a first start does not send the whole history; "all" for redrives. */
  deliver: "new" | "all";
  /** How long JetStream waits for an acknowledgement (or a `working()`) before it redelivers. */
  ackWaitMs: number;
}

export interface EnsuredConsumer {
  info: ConsumerInfo;
  /** Made now: it was missing, or it read other subjects (`replaced`). */
  created: boolean;
  /** The filter of the consumer that was deleted because it was not `spec.filter`. */
  replaced?: string;
}

/**
 * The durable pull consumer of a queue: explicit acks, one message unacknowledged at a time (so a
 * target gets its transitions in stream order, and replicas share the work), redelivered without
 * limit. Created when missing. An existing one keeps its place, its ack wait brought to
 * `ackWaitMs`; but one whose filter is not `spec.filter` (made by hand, or by another version) is
 * never read: it is deleted and made anew, starting as `spec.deliver` says, and `replaced` says
 * what it read.
 */
export async function ensureQueueConsumer(jsm: JetStreamManager, spec: QueueConsumerSpec): Promise<EnsuredConsumer> {
  let replaced: string | undefined;
  try {
    const info = await jsm.consumers.info(spec.stream, spec.name);
    if (info.config.filter_subject === spec.filter) {
      if (info.config.ack_wait === nanos(spec.ackWaitMs) && info.config.max_ack_pending === 1)
        return { info, created: false };
      return {
        info: await jsm.consumers.update(spec.stream, spec.name, {
          ack_wait: nanos(spec.ackWaitMs),
          max_ack_pending: 1,
        }),
        created: false,
      };
    }
    // nats-server 2.9 cannot change a consumer's filter: it goes, and is made again below.
    replaced = info.config.filter_subject ?? "(every subject)";
    await jsm.consumers.delete(spec.stream, spec.name).catch((error: unknown) => {
      // Another replica deleted it first.
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    });
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
  return replaced === undefined ? { info, created: true } : { info, created: true, replaced };
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
  const seq = info.num_ack_pending > 0 ? info.delivered.stream_seq : info.delivered.stream_seq + 1;
  const first = await nextMessageBySubject(jsm, info.stream_name, seq, filter);
  return first === null ? undefined : first.time.getTime();
}
