import { setTimeout as sleep } from "node:timers/promises";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { deadLetter as deadLetterOf } from "../domain/dead-letter.js";
import type { Logger } from "../infra/log.js";
import { connectMqtt } from "./client.js";
import { redactUrl, type MqttSettings } from "./settings.js";
import { DEFERRED, pubackWriter } from "./acks.js";

/** A message delivered to the consumer's owner; the broker keeps it until it is acknowledged. */

/** A CONNACK refusing MQTT 5: 0x84 from an MQTT 5 broker, 1 (3.1.1's "unacceptable protocol version") from one without it. */
const UNSUPPORTED_PROTOCOL = new Set<unknown>([0x84, 1]);

/** Longest wait, when draining, for the broker to confirm the dead letters in flight. */
const DRAIN_DEAD_LETTERS_MS = 10_000;
export interface ReceivedMessage {
  readonly topic: string;
  readonly payload: Buffer;
  /**
   * Tells the broker the message is taken care of. Safe to call more than once. After the
   * connection it came on closed, it does nothing: the broker redelivers the message.
   */
  ack(): void;
}

export type DeadLetterOutcome =
  /** The broker took the dead letter; the message is acknowledged. */
  | "published"
  /** Not published (logged); the message stays unacknowledged and comes back after a reconnect. */
  | "failed"
  /** The message came from the dead-letter topic itself: logged and acknowledged, never re-dead-lettered. */
  | "dropped";

export interface ConsumerOptions {
  mqtt: MqttSettings;
  /** The persistent session's name, fixed: the broker keeps what arrives while we are away. */
  clientId: string;
  /** Topic filters (`$share/<group>/<topic>` for a shared subscription). */
  topics: readonly string[];
  deadLetterTopic: string;
  /** @default 1 */
  qos?: 0 | 1;
  /**
   * Stop reading from the broker while the messages delivered and not yet acknowledged or
   * dead-lettered add up to this many bytes (as sent: topic and payload)… @default 8 MiB
   */
  maxBytesInFlight?: number;
  /** …until they fall to this many. @default maxBytesInFlight / 2 */
  resumeBytes?: number;
  log: Logger;
  onMessage(message: ReceivedMessage): void;
  /**
   * The connection closed: every message delivered so far is void (its ack does nothing, the broker
   * redelivers it). Drop what you still hold of them; what you do with them anyway is harmless.
   */
  onConnectionLost?(): void;
  /**
   * How long the broker keeps the session once the client is gone, in seconds (MQTT 5's session
   * expiry interval; the client then speaks MQTT 5). Unset, it speaks MQTT 3.1.1 and the broker
   * keeps the session as long as it keeps persistent sessions (Mosquitto: persistent_client_expiration).
   * A broker without MQTT 5 (aedes, which `fanwatch start` embeds) is answered in 3.1.1, with a warning.
   */
  sessionExpirySeconds?: number;
  /** MQTT.js settings that tests shorten. */
  client?: Pick<IClientOptions, "keepalive" | "reconnectPeriod">;
  /**
   * Filters this persistent session may still hold from an earlier configuration and must not any
   * more (another session of the owner has them now): unsubscribed whenever the broker kept the
   * session, so that their messages do not come twice, once on each session.
   */
  unsubscribe?: readonly string[];
}

export interface ConsumerStatus {
  connected: boolean;
  subscribed: boolean;
  /** Why no message is being delivered (the owner's reason, the byte bound, draining), or null. */
  paused: string | null;
  /** The owner's reasons for pausing, one per `pause(by, …)` not yet resumed. */
  pausedFor: string[];
  /** A message was read during the pause and waits for its end (reading stopped behind it). */
  waiting: boolean;
  /** The last connection or subscription error, until the next successful subscription. */
  error: string | null;
  messagesInFlight: number;
  bytesInFlight: number;
  deadLettersPending: number;
}

const DEFAULT_MAX_BYTES_IN_FLIGHT = 8 * 1024 * 1024;

interface PendingDeadLetter {
  done: Promise<DeadLetterOutcome>;
  settle(outcome: DeadLetterOutcome, error?: string): void;
}

/** A delivered message and where it stands. */
class Inbound implements ReceivedMessage {
  released = false;
  acked = false;
  constructor(
    readonly topic: string,
    readonly payload: Buffer,
    readonly bytes: number,
    readonly messageId: number | undefined,
    readonly connection: number,
    readonly settle: (message: Inbound) => void,
  ) {}
  ack(): void {
    this.settle(this);
  }
}

/**
 * The one MQTT consumer the connector and the InfluxDB writer build on: a persistent session
 * (fixed client id, clean false), a subscription that fails loudly, messages acknowledged only when
 * the owner says so, at most `maxBytesInFlight` bytes of them held, pause/resume for the owner, and
 * dead letters that acknowledge a message only once the broker took the dead letter.
 *
 * Stopping reading is how the bound holds whatever the broker pushes (Mosquitto up to
 * `max_inflight_messages`, aedes with no window at all): the consumer keeps the next message
 * undelivered and does not call MQTT.js back, so MQTT.js parses nothing more and the socket is not
 * read (lib/mqtt/acks.ts). What it holds beyond the bound is that one message and the stream
 * buffers. The price, accepted: while reading is stopped MQTT.js cannot read the broker's PINGRESP
 * either, so a pause longer than 1.5 × keepalive (90 s by default) ends in a reconnect; the
 * messages held are then redelivered (`onConnectionLost`). The embedded aedes broker of
 * `fanwatch start` gives up sooner: a client that does not read for its `drainTimeout` (30 s,
 * runtime/system/broker.ts) is disconnected, with the same outcome, and until then it holds up
 * the publishers of the session's topics. So a pause that may last (a function's outage) parks the
 * session instead: `park` disconnects it and the broker queues for it. Its own dead letters' PUBACKs arrive on
 * the same socket, so a dead-lettered message stops counting towards the bound at once (its
 * payload is no longer held); it is acknowledged when the PUBACK is read.
 */
export class MqttConsumer {
  readonly #options: ConsumerOptions;
  readonly #maxBytes: number;
  readonly #resumeBytes: number;
  #client: MqttClient | undefined;
  #writePuback: ((messageId: number) => void) | undefined;
  /** Bumped when a connection closes: messages of an older one are void. */
  #connection = 0;
  #connected = false;
  #subscribed = false;
  #error: string | undefined;
  #messages = 0;
  #bytes = 0;
  #full = false;
  /** The owner's pauses: who paused (a function's circuit, the routes) → why. */
  readonly #pauses = new Map<string, string>();
  /** The pauses that park the session (disconnected until they end): who parked. */
  readonly #parks = new Set<string>();
  /** Disconnected on purpose, by park(). */
  #parked = false;
  #held: { message: Inbound; callback: () => void } | undefined;
  #draining = false;
  #subscribedOnce = false;
  readonly #deadLetters = new Set<PendingDeadLetter>();
  #drained: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  readonly #settle = (message: Inbound) => this.#ack(message);

  constructor(options: ConsumerOptions) {
    this.#options = options;
    this.#maxBytes = options.maxBytesInFlight ?? DEFAULT_MAX_BYTES_IN_FLIGHT;
    this.#resumeBytes = options.resumeBytes ?? Math.floor(this.#maxBytes / 2);
    if (this.#resumeBytes > this.#maxBytes)
      throw new RangeError(`resumeBytes (${this.#resumeBytes}) is above maxBytesInFlight (${this.#maxBytes})`);
  }

  get status(): ConsumerStatus {
    return {
      connected: this.#connected,
      subscribed: this.#subscribed,
      paused: this.#draining
        ? "draining"
        : this.#pauses.size > 0
          ? [...this.#pauses.values()].join("; ")
          : this.#full
            ? `${this.#bytes} bytes in flight, above ${this.#maxBytes}`
            : null,
      pausedFor: [...this.#pauses.values()],
      waiting: this.#held !== undefined,
      error: this.#error ?? null,
      messagesInFlight: this.#messages,
      bytesInFlight: this.#bytes,
      deadLettersPending: this.#deadLetters.size,
    };
  }

  /** Disconnected by park(): the broker keeps the session's messages until resume. */
  get parked(): boolean {
    return this.#parked;
  }

  /** Connected, subscribed and not stopping. */
  get healthy(): boolean {
    return this.#connected && this.#subscribed && !this.#draining;
  }

  /**
   * Connects and subscribes. Resolves once the broker granted every subscription; rejects, and
   * closes, when it refuses one (an ACL, a bad filter). An unreachable broker or refused login is
   * retried (reported by `status.error`) and start waits.
   */
  start(): Promise<void> {
    if (this.#client !== undefined) throw new Error("the consumer is started already");
    const client = this.#connect();
    return new Promise<void>((resolve, reject) => {
      client.on("connect", (connack) => {
        this.#connected = true;
        // A session the broker kept has its subscriptions already. The SUBACK below may then come
        // late: behind redelivered messages that a pause keeps unread.
        this.#subscribed = connack.sessionPresent === true;
        this.#options.log.info(
          {
            event: "mqtt_connected",
            broker: redactUrl(this.#options.mqtt.url),
            clientId: this.#options.clientId,
            sessionPresent: connack.sessionPresent,
          },
          "connected to the broker",
        );
        if (this.#subscribed) resolve();
        // Subscribed on every connection all the same: the topics may have changed since.
        this.#subscribe(client, resolve, reject);
        if (connack.sessionPresent === true) this.#unsubscribeStale(client);
      });
      client.on("end", () => reject(new Error("the consumer was closed before it subscribed")));
    }).then(() => {
      this.#subscribedOnce = true;
      // Parked while connecting: a session parks only once it exists at the broker.
      if (this.#parks.size > 0) this.#park();
    });
  }

  /** A client that hands every message to #receive and acknowledges it only when told to. */
  #connect(): MqttClient {
    const { mqtt, clientId, log, sessionExpirySeconds } = this.#options;
    const expiry =
      sessionExpirySeconds === undefined
        ? {}
        : { protocolVersion: 5 as const, properties: { sessionExpiryInterval: sessionExpirySeconds } };
    const client: MqttClient = connectMqtt(mqtt, {
      clientId,
      clean: false,
      resubscribe: false, // subscribed on every connect, with the answer checked
      ...expiry,
      ...this.#options.client,
      onError: (error: Error & { code?: unknown }) => {
        if (client.options.protocolVersion === 5 && UNSUPPORTED_PROTOCOL.has(error.code)) return this.#speak311(client);
        this.#error = error.message;
        log.warn({ event: "mqtt_error", err: error.message }, "MQTT error");
      },
    });
    this.#client = client;
    this.#writePuback = pubackWriter(client);
    client.handleMessage = (packet, callback) => this.#receive(packet, callback);
    client.on("close", () => this.#lost());
    client.on("offline", () => {
      if (!this.#parked)
        log.warn({ event: "mqtt_offline", broker: redactUrl(mqtt.url) }, "connection to the broker lost; reconnecting");
    });
    return client;
  }

  /**
   * The broker refused MQTT 5 (aedes does): speak 3.1.1 from now on. The session then lasts as long
   * as the broker keeps persistent sessions, which the warning says. MQTT.js does not reconnect
   * after a refusal by itself.
   */
  #speak311(client: MqttClient): void {
    this.#options.log.warn(
      { event: "mqtt_session_expiry_unsupported", broker: redactUrl(this.#options.mqtt.url) },
      "the broker does not speak MQTT 5: connecting with MQTT 3.1.1, whose session lasts as long as the broker keeps it (no session expiry)",
    );
    client.options.protocolVersion = 4;
    delete client.options.properties;
    client.once("close", () => setImmediate(() => client.reconnect()));
  }

  /**
   * Subscribes and checks the answer: a refused subscription is a consumer that is connected and
   * never gets a message, a silent outage, so it rejects start() (and closes, if it never
   * subscribed) and /healthz says why.
   */
  #subscribe(client: MqttClient, resolve: () => void, reject: (error: Error) => void): void {
    const { mqtt, topics, log } = this.#options;
    const qos = this.#options.qos ?? 1;
    client.subscribe([...topics], { qos }, (error, _subscriptions, suback) => {
      if (error === null || error === undefined) {
        this.#subscribed = true;
        this.#error = undefined;
        log.info({ event: "subscribed", topics, qos }, `subscribed to ${topics.join(", ")}`);
        resolve();
        return;
      }
      const code = (error as { code?: unknown }).code;
      if (suback === undefined && !(typeof code === "number" && code >= 0x80)) {
        // No answer on this connection (it closed): the next one subscribes again.
        log.warn(
          { event: "subscribe_unanswered", topics, err: error.message },
          "the subscription was not confirmed before the connection closed",
        );
        return;
      }
      const refused = topics.filter((_topic, i) => (Number(suback?.granted[i] ?? 0) & 0x80) !== 0);
      const reason = `the broker refused the subscription to ${(refused.length > 0 ? refused : topics).join(", ")} (${error.message}); check its ACL for ${mqtt.username === undefined ? "this client" : `user ${mqtt.username}`}`;
      this.#subscribed = false;
      this.#error = reason;
      log.error({ event: "subscribe_refused", topics, err: error.message }, reason);
      reject(new Error(reason));
      if (!this.#subscribedOnce) void this.close();
    });
  }

  /** Drops the filters of `unsubscribe` that a session kept from an earlier configuration may hold. */
  #unsubscribeStale(client: MqttClient): void {
    const stale = this.#options.unsubscribe ?? [];
    if (stale.length === 0) return;
    client.unsubscribe([...stale], (error) => {
      if (error === undefined || error === null)
        this.#options.log.info({ event: "unsubscribed", topics: stale }, `not subscribed to ${stale.join(", ")} here`);
      else
        this.#options.log.warn(
          { event: "unsubscribe_failed", topics: stale, err: error.message },
          "could not drop filters another session has; their messages may come twice",
        );
    });
  }

  /**
   * Stops delivering messages (they wait, unread) until every pause is resumed. `by` names who
   * pauses, so that independent reasons (each function's circuit, missing routes) come and go
   * apart; pausing again under the same name updates the reason.
   */
  pause(by: string, reason: string): void {
    this.#pauses.set(by, reason);
  }

  /**
   * Pauses, and disconnects until resumed: the broker keeps what arrives meanwhile, in the
   * persistent session, rather than in this consumer's socket. For a pause that may last: a paused
   * consumer stops reading its socket, and a broker that waits for a subscriber's socket to drain
   * (aedes, the broker of `fanwatch start`) then holds up every publisher of the session's topics,
   * for up to its drainTimeout (measured with bench/isolation: a publisher at 2,000/s stopped for
   * 29 s of 60). What was delivered and not acknowledged is void once parked (onConnectionLost)
   * and comes again after resume. Before the first subscription it only pauses, and parks then.
   */
  park(by: string, reason: string): void {
    this.pause(by, reason);
    this.#parks.add(by);
    this.#park();
  }

  /** Ends a pause or a park; the session reconnects once no park is left and delivers once no pause is. */
  resume(by: string): void {
    if (this.#parks.delete(by) && this.#parks.size === 0) this.#unpark();
    if (this.#pauses.delete(by) && this.#pauses.size === 0) this.#release();
  }

  #park(): void {
    const client = this.#client;
    if (this.#parked || client === undefined || !this.#subscribedOnce || this.#draining) return;
    this.#parked = true;
    this.#options.log.info(
      { event: "mqtt_parked", clientId: this.#options.clientId, reason: this.status.paused },
      "disconnected until resumed: the broker keeps the session's messages",
    );
    // Forced: nothing of this connection is worth waiting for (a dead letter in flight fails and
    // its message comes back). No reconnect until #unpark.
    client.end(true);
  }

  #unpark(): void {
    if (!this.#parked) return;
    this.#parked = false;
    if (this.#draining || this.#closed !== undefined) return;
    this.#options.log.info({ event: "mqtt_unparked", clientId: this.#options.clientId }, "reconnecting");
    this.#client?.reconnect();
  }

  /**
   * Publishes `{"error","topic","payload","at"}` to the dead-letter topic at QoS 1 and acknowledges
   * the message once the broker took it, with `"code"` when given. Never rejects.
   */
  deadLetter(message: ReceivedMessage, reason: string, code?: string): Promise<DeadLetterOutcome> {
    const inbound = message as Inbound;
    const { deadLetterTopic, log } = this.#options;
    if (message.topic === deadLetterTopic) {
      // A dead letter that cannot be handled must not make another one, and another…
      log.error(
        { event: "dead_letter_dropped", reason },
        `a message from ${deadLetterTopic} was not handled and is dropped: ${reason}`,
      );
      message.ack();
      return Promise.resolve("dropped");
    }
    this.#releaseBytes(inbound);
    const client = this.#client;
    if (client === undefined || inbound.connection !== this.#connection) return Promise.resolve("failed");
    const letter = JSON.stringify(deadLetterOf(reason, message.topic, message.payload, new Date(), code));
    let resolve!: (outcome: DeadLetterOutcome) => void;
    const pending: PendingDeadLetter = {
      done: new Promise<DeadLetterOutcome>((r) => (resolve = r)),
      settle: (outcome, error) => {
        if (!this.#deadLetters.delete(pending)) return;
        if (outcome === "published") message.ack();
        else
          log.warn(
            { event: "dead_letter_failed", err: error, topic: message.topic },
            "a dead letter was not confirmed; the broker will redeliver the message",
          );
        resolve(outcome);
      },
    };
    this.#deadLetters.add(pending);
    client.publish(deadLetterTopic, letter, { qos: 1 }, (error) =>
      pending.settle(error === undefined || error === null ? "published" : "failed", error?.message),
    );
    return pending.done;
  }

  /**
   * Stops delivering messages (the rest stay with the broker for the next session), runs `finish`
   * (the owner finishing what it holds: it may still acknowledge and dead-letter), waits for the
   * dead letters being published, then disconnects. Safe to call again: returns the same promise.
   */
  drain(finish?: () => Promise<void>): Promise<void> {
    this.#drained ??= (async () => {
      this.#stopDelivering();
      await finish?.();
      if (this.#deadLetters.size > 0)
        this.#options.log.info(
          { event: "draining_dead_letters", deadLetters: this.#deadLetters.size },
          `waiting for ${this.#deadLetters.size} dead letters to be published before disconnecting`,
        );
      // A connection that closes settles them too (#lost): their acks would be void. A broker
      // that is connected but frozen settles nothing: after DRAIN_DEAD_LETTERS_MS the consumer
      // disconnects anyway and their messages, unacknowledged, come back to the next session.
      await Promise.race([
        Promise.all([...this.#deadLetters].map((d) => d.done)),
        sleep(DRAIN_DEAD_LETTERS_MS, undefined, { ref: false }),
      ]);
      await this.#end(false);
    })();
    return this.#drained;
  }

  /** Disconnects at once; messages not acknowledged are redelivered to the next session. */
  close(): Promise<void> {
    this.#stopDelivering();
    return this.#end(true);
  }

  #end(force: boolean): Promise<void> {
    // MQTT.js keeps unconfirmed QoS 1 publishes of a persistent session for the next connection
    // and never calls them back; the messages come back to the next session instead.
    this.#failDeadLetters("the consumer closed");
    // A clean disconnect waits for every unconfirmed publish, and MQTT.js keeps those across a
    // lost connection and confirms none once disconnecting: it would wait forever. So it is clean
    // only when connected with nothing outstanding; forcing loses nothing, every message not
    // acknowledged is redelivered.
    const client = this.#client;
    const clean = !force && client?.connected === true && Object.keys(client.outgoing).length === 0;
    this.#closed ??= (client?.endAsync(!clean) ?? Promise.resolve()).then(() => {
      this.#connected = false;
      this.#subscribed = false;
    });
    return this.#closed;
  }

  #stopDelivering(): void {
    this.#draining = true;
    // Keep reading (PUBACKs of dead letters must arrive); what arrives now is left unacknowledged.
    const held = this.#held;
    this.#held = undefined;
    held?.callback();
  }

  #receive(packet: IPublishPacket, callback: (error?: Error) => void): void {
    const done = packet.qos === 0 ? undefined : DEFERRED;
    if (this.#draining) return callback(done);
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // packet.length: the bytes after the fixed header (topic, message id, payload), parsed already.
    const bytes = packet.length ?? payload.length + packet.topic.length;
    const message = new Inbound(
      packet.topic,
      payload,
      bytes,
      packet.qos === 0 ? undefined : packet.messageId,
      this.#connection,
      this.#settle,
    );
    if (this.#full || this.#pauses.size > 0) {
      this.#held = { message, callback: () => callback(done) };
      return;
    }
    this.#deliver(message);
    callback(done);
  }

  #deliver(message: Inbound): void {
    this.#messages++;
    this.#bytes += message.bytes;
    if (this.#bytes >= this.#maxBytes) this.#full = true;
    try {
      this.#options.onMessage(message);
    } catch (error) {
      // The owner's bug must not stop MQTT.js's packet loop; the message stays unacknowledged.
      this.#options.log.error(
        { event: "handler_failed", err: (error as Error).message, topic: message.topic },
        "the message handler threw",
      );
    }
  }

  /** Delivers the message kept back, if nothing holds it any more. */
  #release(): void {
    if (this.#full || this.#pauses.size > 0 || this.#held === undefined) return;
    const { message, callback } = this.#held;
    this.#held = undefined;
    if (message.connection === this.#connection && !this.#draining) this.#deliver(message);
    callback();
  }

  #releaseBytes(message: Inbound): void {
    if (message.released) return;
    message.released = true;
    if (message.connection !== this.#connection) return;
    this.#messages--;
    this.#bytes -= message.bytes;
    if (this.#full && this.#bytes <= this.#resumeBytes) {
      this.#full = false;
      this.#release();
    }
  }

  #ack(message: Inbound): void {
    if (message.acked) return;
    message.acked = true;
    this.#releaseBytes(message);
    if (message.messageId !== undefined && message.connection === this.#connection && this.#client?.connected === true)
      this.#writePuback?.(message.messageId);
  }

  #failDeadLetters(reason: string): void {
    for (const pending of [...this.#deadLetters]) pending.settle("failed", reason);
  }

  #lost(): void {
    const wasConnected = this.#connected;
    this.#connection++;
    this.#connected = false;
    this.#subscribed = false;
    this.#messages = 0;
    this.#bytes = 0;
    this.#full = false;
    // MQTT.js drops the packets it parsed from the old connection; so do we.
    this.#held = undefined;
    this.#failDeadLetters("the connection closed");
    if (wasConnected) this.#options.onConnectionLost?.();
  }
}
