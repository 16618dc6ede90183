import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/transport-node";
import type { Logger } from "../../lib/infra/log.js";
import { ensureStream, isApiError } from "../../lib/nats/jetstream.js";
import { decodeKey, encodeKey } from "../../lib/nats/keys.js";

/** The stream of readings held for fans pending approval (docs/pipeline.md, "Quarantine"). */
export const QUARANTINE_STREAM = "FAN_QUARANTINE";
/** The subjects' prefix: `fan.quarantine.<encoded id>`. */
export const QUARANTINE_PREFIX = "fan.quarantine.";
const PREFIX = QUARANTINE_PREFIX;

/**
 * Held readings' age bound, besides the whole stream's bytes (QUARANTINE_MAX_BYTES): it shares
 * health's JetStream volume whatever the number of pending fans. Past either the oldest readings
 * go (discard old), as past the per-fan bound.
 */
export const QUARANTINE_MAX_AGE_MS = 7 * 24 * 60 * 60_000;

/**
 * One pending fan's readings. The id is encoded (lib/nats/keys.ts) so that it is one subject token:
 * a device id may hold "." ("fan.3"), which NATS would read as two.
 */
export function quarantineSubject(id: string): string {
  return `${PREFIX}${encodeKey(id)}`;
}

/** The topic a held reading came on, so that it is released to the functions of that topic. */
const TOPIC_HEADER = "Fanwatch-Topic";

/** How long JetStream waits for a releasing replica's acknowledgement (or `working()`) before another takes over. */
const RELEASE_ACK_WAIT_MS = 30_000;

export interface HeldReading {
  topic: string;
  payload: Buffer;
}

/**
 * Readings of pending fans, in JetStream: at most `maxPerFan` per fan (`max_msgs_per_subject`,
 * discarding the oldest: the newest are kept), file storage. A reading is held once JetStream
 * acknowledged it; the connector acknowledges its MQTT message only then.
 *
 * Release, with several connector replicas: each replica that sees a fan approved reads its
 * subject through one durable consumer per fan (`release_<id>`, max_ack_pending 1). JetStream hands
 * each held reading to one replica at a time, in order; the next only once the last was
 * acknowledged, which comes after the functions accepted it and it was deleted from the stream.
 * A replica that dies mid-release stops acknowledging, and after the ack wait another gets the
 * reading again (at least once, never lost). The consumer goes once the subject is empty.
 */
export class JetStreamQuarantine {
  constructor(
    private readonly options: {
      js: JetStreamClient;
      jsm: JetStreamManager;
      maxPerFan: number;
      /** All fans' readings together, in bytes (QUARANTINE_MAX_BYTES). */
      maxBytes: number;
      replicas: number;
      log: Logger;
    },
  ) {}

  /** Creates the stream, or brings an existing one's bounds (per fan, bytes, age) to these. */
  async start(): Promise<void> {
    const { maxPerFan, maxBytes, replicas } = this.options;
    const bounds = {
      max_msgs_per_subject: maxPerFan,
      max_bytes: maxBytes,
      max_age: nanos(QUARANTINE_MAX_AGE_MS),
      discard: DiscardPolicy.Old,
    };
    await ensureStream(
      this.options.jsm,
      {
        name: QUARANTINE_STREAM,
        subjects: [`${PREFIX}*`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: replicas,
        ...bounds,
      },
      (existing) => {
        const { config } = existing;
        const same =
          config.max_msgs_per_subject === bounds.max_msgs_per_subject &&
          config.max_bytes === bounds.max_bytes &&
          config.max_age === bounds.max_age &&
          config.discard === bounds.discard;
        return same ? undefined : bounds;
      },
    );
  }

  /** Resolves once JetStream stored the reading. */
  async hold(id: string, reading: HeldReading): Promise<void> {
    const h = natsHeaders();
    h.set(TOPIC_HEADER, reading.topic);
    await this.options.js.publish(quarantineSubject(id), reading.payload, { headers: h });
  }

  /** The fans with readings held, and how many each. */
  async heldFans(): Promise<Map<string, number>> {
    const info = await this.options.jsm.streams.info(QUARANTINE_STREAM, { subjects_filter: `${PREFIX}*` });
    const fans = new Map<string, number>();
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
      try {
        fans.set(decodeKey(subject.slice(PREFIX.length)), count);
      } catch {
        // Not one of ours (published by hand): left alone.
      }
    }
    return fans;
  }

  /** Forgets a refused fan's readings (and its release consumer, if one was left). */
  async purge(id: string): Promise<number> {
    const { purged } = await this.options.jsm.streams.purge(QUARANTINE_STREAM, { filter: quarantineSubject(id) });
    await this.#deleteConsumer(id);
    return purged;
  }

  /**
   * Hands the fan's held readings to `deliver`, oldest first, one at a time; each is deleted from
   * the stream once `deliver` resolved (the functions took it), and only then acknowledged, which
   * lets JetStream give the next one out. Resolves with the number this replica released, once the
   * subject is empty and no replica holds one of its readings; rejects when `signal` aborts or
   * JetStream fails (the readings stay held, for the next attempt).
   */
  async release(id: string, deliver: (reading: HeldReading) => Promise<void>, signal: AbortSignal): Promise<number> {
    const { js, jsm } = this.options;
    const name = releaseConsumerName(id);
    await jsm.consumers
      .add(QUARANTINE_STREAM, {
        durable_name: name,
        filter_subject: quarantineSubject(id),
        deliver_policy: DeliverPolicy.All,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(RELEASE_ACK_WAIT_MS),
        max_ack_pending: 1,
        max_deliver: -1,
        // Left by a replica that died with nothing to do: gone after an hour without readers.
        inactive_threshold: nanos(60 * 60_000),
      })
      .catch(async (error: unknown) => {
        // Another replica made it with another configuration: read it as it is.
        await jsm.consumers.info(QUARANTINE_STREAM, name).catch(() => {
          throw error;
        });
      });
    const consumer = await js.consumers.get(QUARANTINE_STREAM, name);
    let released = 0;
    for (;;) {
      signal.throwIfAborted();
      const message = await consumer.next({ expires: 1_000 }).catch((error: unknown) => {
        // Another replica finished and deleted it: nothing is left.
        if (
          isApiError(error, JetStreamApiCodes.ConsumerNotFound) ||
          /consumer (not found|deleted)/i.test(String(error))
        )
          return "gone" as const;
        throw error;
      });
      if (message === "gone") break;
      if (message === null) {
        // Nothing came: done once the subject is empty and nobody holds one of its readings.
        const info = await consumer.info().catch((error: unknown) => {
          if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return undefined; // another replica finished
          throw error;
        });
        if (info === undefined || (info.num_pending === 0 && info.num_ack_pending === 0)) break;
        continue;
      }
      await this.#releaseOne(message, deliver, signal);
      released++;
    }
    await this.#deleteConsumer(id);
    return released;
  }

  async #releaseOne(message: JsMsg, deliver: (reading: HeldReading) => Promise<void>, signal: AbortSignal) {
    // Tells JetStream this replica is still at it while the functions are slow or down.
    const working = setInterval(() => message.working(), RELEASE_ACK_WAIT_MS / 3);
    try {
      const topic = message.headers?.get(TOPIC_HEADER) ?? "";
      await deliver({ topic, payload: Buffer.from(message.data) });
      signal.throwIfAborted();
      await this.options.jsm.streams.deleteMessage(QUARANTINE_STREAM, message.seq, false).catch((error: unknown) => {
        // Deleted already (a second delivery of one whose acknowledgement was lost).
        if (!isApiError(error, JetStreamApiCodes.NoMessageFound)) throw error;
      });
      await message.ackAck();
    } catch (error) {
      // Given back at once, not after the 30 s ack wait: the next attempt (here or on another
      // replica) gets it again. Not terminated when the fan is no longer active: that would skip
      // it for good if the fan is approved again; a refused fan's readings go with its purge.
      message.nak();
      throw error;
    } finally {
      clearInterval(working);
    }
  }

  async #deleteConsumer(id: string): Promise<void> {
    await this.options.jsm.consumers.delete(QUARANTINE_STREAM, releaseConsumerName(id)).catch((error: unknown) => {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    });
  }
}

/** A consumer name holds no "." (nor "*", ">"): the encoded id has none. */
function releaseConsumerName(id: string): string {
  return `release_${encodeKey(id)}`;
}
