import { parseUntrustedJson } from "../../lib/infra/json.js";
import { startHealthServer, type Health, type HealthServer } from "../../lib/infra/health-server.js";
import type { Logger } from "../../lib/infra/log.js";
import { MqttConsumer, type ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { systemClock, type Clock } from "../../lib/infra/retry.js";
import { ServiceBase } from "../../lib/infra/service.js";
import type { ConnectorConfig } from "./config.js";
import { ConnectorAutoscaler } from "./autoscaler.js";
import { FunctionDirectory, type FunctionStatus } from "./directory.js";
import { Dispatcher } from "./dispatcher.js";
import { createConnectorMetrics } from "./metrics.js";
import { ReplyPublisher } from "./reply-publisher.js";
import { Routed } from "./routed.js";
import { anyOverlap, ownerOf, sessionClientId, type IntakeSession } from "./intake.js";
import { filtersOverlap, topicMatches } from "../../lib/mqtt/topic-filter.js";
import type { FanRegistry } from "../../lib/registry/registry.js";
import { Admission, PartMessage } from "./admission.js";
import { PASS, type Refused, type TopicKind } from "./gate.js";
import type { HeldReading } from "./quarantine.js";
import type { Delivery } from "./dispatcher.js";

export interface ConnectorOptions {
  /** Time for retries, backoff and circuit probes; tests pass a fake one. */
  clock?: Clock;
  /**
   * The device registry readings are checked against (`fanwatch start` passes its own); without
   * it, NATS_URL's (KV bucket fan_registry); without either, every device id is trusted.
   */
  registry?: FanRegistry;
}

const UNGATED: TopicKind = Object.freeze({ kind: "none" });
/** The sessions' pause while the registry is not loaded: no reading may pass unchecked. */
const REGISTRY = "registry";

const ROUTES = "routes";

/**
 * MQTT → OpenFaaS functions. Subscribes (QoS 1, persistent sessions, or shared subscriptions),
 * hands each message to the dispatcher for every function whose topic filter matches, and
 * acknowledges it to the broker only when every one of them answered 2xx or it was dead-lettered:
 * a crash means redelivery, not loss. Each subscribed filter has a session of its own
 * (intake.ts), so that what holds one filter's messages back holds back nothing else: a message
 * no function wants yet is held, unacknowledged, and its session pauses until a route appears; a
 * function's outage (its circuit) parks the sessions of the filters routed to it, and only those.
 */
export class Connector extends ServiceBase {
  readonly name = "connector";
  readonly metrics = createConnectorMetrics({
    inFlight: () => this.#dispatcher.inFlight,
    pending: () => this.#sessions.reduce((n, s) => n + s.consumer.status.messagesInFlight, 0),
    held: () => this.#sessions.reduce((n, s) => n + s.held.length, 0),
    fans: () => this.#admission.counts(),
  });
  readonly #admission: Admission;
  /** The payload #check parsed last (read right after it, in the same turn): one parse per message. */
  #parsed: unknown;
  readonly #directory: FunctionDirectory;
  readonly #dispatcher: Dispatcher;
  readonly #autoscaler: ConnectorAutoscaler | undefined;
  /** One per subscribed filter, in the order of `topics` (set by start). */
  #sessions: IntakeSession[] = [];
  /** Whether two subscribed filters can match one topic: then each message's owner is checked. */
  readonly #overlapping: boolean;
  /** The functions whose circuit is open → why. */
  readonly #openCircuits = new Map<string, string>();
  readonly #replies: ReplyPublisher;
  #server: HealthServer | undefined;
  readonly #replyTrouble = new Map<string, string>();
  readonly #clock: Clock;
  readonly #receivedCounters = new Map<string, { inc(): void }>();

  constructor(
    private readonly config: ConnectorConfig,
    private readonly log: Logger,
    options: ConnectorOptions = {},
  ) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#overlapping = anyOverlap(config.topics);
    this.#replies = new ReplyPublisher({ mqtt: config.mqtt, clientId: config.clientId, log });
    this.#admission = new Admission({
      config: config.gate,
      topics: config.topics,
      registry: options.registry,
      deadletterTopic: config.deadletterTopic,
      metrics: this.metrics,
      log,
      clock: this.#clock,
      publish: (topic, payload) => this.#publish(topic, payload),
      deliver: (reading, signal) => this.#deliverReleased(reading, signal),
      onReady: () => {
        for (const session of this.#sessions) session.consumer.resume(REGISTRY);
      },
    });
    this.#directory = new FunctionDirectory({
      ...config,
      log,
      onChange: () => this.#routesChanged(),
      onStatus: (statuses) => this.#followReplicas(statuses),
    });
    this.#dispatcher = new Dispatcher(config, {
      publish: (topic, payload) => this.#publish(topic, payload),
      metrics: this.metrics,
      log,
      clock: this.#clock,
      onCircuit: (name, open, reason) => {
        if (open) this.#openCircuits.set(name, reason);
        else this.#openCircuits.delete(name);
        const { parked, flowing } = this.#applyCircuits();
        if (open)
          this.log.warn(
            { event: "circuit_open", function: name, reason, parked, flowing },
            `${name} keeps failing: intake of ${parked.join(", ") || "nothing"} parked until it answers${flowing.length > 0 ? `; ${flowing.join(", ")} flowing` : ""}`,
          );
        else
          this.log.info(
            { event: "circuit_closed", function: name, parked },
            `${name} answers again: intake resumed${parked.length > 0 ? `; still parked: ${parked.join(", ")}` : ""}`,
          );
      },
      onReplyTrouble: (name, reason) =>
        reason === undefined ? this.#replyTrouble.delete(name) : this.#replyTrouble.set(name, reason),
    });
    if (config.autoscale !== undefined) {
      this.#autoscaler = new ConnectorAutoscaler({
        config: config.autoscale,
        gatewayUrl: config.gatewayUrl,
        basicAuth: config.basicAuth,
        batchSize: config.batchSize,
        timeoutMs: config.timeoutMs,
        directory: this.#directory,
        load: () => this.#dispatcher.load(),
        metrics: this.metrics,
        log,
      });
    }
  }

  /** The health and metrics server's port (after start). */
  get port(): number {
    return this.#server?.port ?? 0;
  }

  /**
   * Resolves once the broker confirmed every subscription: from then on nothing published to the
   * topics is missed, even across restarts (persistent sessions). It subscribes whether or not a
   * function has the topics yet: what arrives is held for the function rather than left to a
   * broker that would drop it for want of a subscriber.
   */
  protected async onStart(): Promise<void> {
    this.#server = await startHealthServer(
      { port: this.config.port, host: this.config.healthHost },
      () => this.#health(),
      this.metrics.registry,
    );
    await this.#directory.start();
    this.#autoscaler?.start();
    const { topics, sharedGroup } = this.config;
    const subscription = (t: string) => (sharedGroup === undefined ? t : `$share/${sharedGroup}/${t}`);
    const filters = topics.map(subscription);
    // The byte bound is the connector's, shared out: its memory stays what max_inflight_bytes says.
    const maxBytesInFlight = Math.max(1, Math.floor(this.config.maxInflightBytes / topics.length));
    this.#sessions = topics.map((filter, i) => {
      const session: IntakeSession = {
        filter,
        clientId: sessionClientId(this.config.clientId, topics, i),
        connection: 0,
        held: [],
        routing: {
          connection: () => session.connection,
          deadLetter: (message, reason) => this.#deadLetter(session, message, reason, "rejected"),
        },
        gate: {
          connection: () => session.connection,
          route: (message) => {
            if (!this.#dispatch(session, message)) this.#hold(session, message);
          },
          refuse: (message, refused) => this.#refuse(session, message, refused),
        },
        consumer: new MqttConsumer({
          mqtt: this.config.mqtt,
          clientId: sessionClientId(this.config.clientId, topics, i),
          sessionExpirySeconds: this.config.sessionExpirySeconds,
          topics: [subscription(filter)],
          unsubscribe: filters.filter((_f, j) => j !== i),
          deadLetterTopic: this.config.deadletterTopic,
          qos: this.config.qos,
          maxBytesInFlight,
          log: this.log.child({ filter }),
          onMessage: (message) => this.#receive(session, message),
          onConnectionLost: () => this.#connectionLost(session),
        }),
      };
      return session;
    });
    // Nothing is read before the registry is: a reading must not pass unchecked, nor an active fan
    // be taken for an unknown one.
    if (this.#admission.enabled)
      for (const session of this.#sessions) session.consumer.pause(REGISTRY, "the fan registry is not loaded yet");
    this.#admission.start();
    await Promise.all(this.#sessions.map((s) => s.consumer.start()));
    this.#reportRoutes();
    this.log.info(
      {
        event: "started",
        port: this.port,
        gateway: this.config.gatewayUrl,
        filters,
        sessions: this.#sessions.map((s) => s.clientId),
        batchSize: this.config.batchSize,
        maxInFlight: this.config.maxInFlight,
        maxInFlightTotal: this.config.maxInFlightTotal,
        autoscale: this.config.autoscale ?? false,
        registry: this.#admission.enabled ? this.config.gate.policy : "none: every device id is trusted",
      },
      "connector started",
    );
  }

  /**
   * Stops taking messages, finishes the invocations, replies and dead letters in flight, then
   * disconnects (close()). Held messages and batches waiting out an outage stay unacknowledged: the
   * broker redelivers them.
   */
  protected override async onDrain(): Promise<void> {
    this.#directory.stop();
    this.#autoscaler?.stop();
    // No release is begun now: a held reading not yet acknowledged stays in FAN_QUARANTINE.
    await this.#admission.stop();
    const pending = this.#sessions.reduce((n, s) => n + s.consumer.status.messagesInFlight, 0);
    // Every session stops delivering (synchronously, in this turn) before the dispatcher
    // finishes; then each waits for its dead letters and disconnects.
    let finishing: Promise<void> | undefined;
    const finish = () => (finishing ??= this.#dispatcher.drain());
    await Promise.all([...this.#sessions.map((s) => s.consumer.drain(finish)), finish()]);
    this.log.info({ event: "drained", pending }, "connector drained");
  }

  /** Disconnects at once: what was not acknowledged is redelivered to the next session. */
  protected async onClose(): Promise<void> {
    this.#directory.stop();
    this.#autoscaler?.stop();
    await Promise.all(this.#sessions.map((s) => s.consumer.close()));
    await this.#admission.stop();
    await this.#replies.close();
    this.#dispatcher.close();
    await this.#server?.close();
    this.log.info({ event: "stopped" }, "connector stopped");
  }

  #receive(session: IntakeSession, message: ReceivedMessage): void {
    // A copy the broker sent because this session's filter overlaps another's: the session that
    // owns the topic routes its own copy. (A topic this filter does not match came through a
    // subscription an earlier configuration left in the session: routed here, it is its only copy.)
    if (this.#overlapping && topicMatches(session.filter, message.topic)) {
      const owner = ownerOf(this.#sessions, message.topic);
      if (owner !== session) return message.ack();
    }
    this.#receivedOn(message.topic).inc();
    if (!this.#route(session, message)) {
      this.metrics.unrouted.inc();
      this.#hold(session, message);
    }
  }

  /**
   * Sends a message on to its functions, once the registry let its readings in; false when it has
   * no function (yet).
   */
  #route(session: IntakeSession, message: ReceivedMessage): boolean {
    const targets = this.#directory.ready ? this.#directory.targets(message.topic) : [];
    if (targets.length === 0) return false;
    const topic = this.#admission.enabled ? this.#admission.gate.topicKind(message.topic) : UNGATED;
    const rejection = this.#check(message, topic !== UNGATED);
    if (rejection !== undefined) {
      this.#deadLetter(session, message, rejection.reason, rejection.metric);
      return true;
    }
    if (topic !== UNGATED) {
      const verdict = this.#admission.judge(topic, this.#parsed);
      if (verdict !== PASS) {
        this.#admission.act(message, verdict, this.#parsed, session.gate);
        return true;
      }
    }
    const delivery = new Routed(message, targets.length, session.routing);
    for (const target of targets) this.#dispatcher.enqueue(target, delivery);
    return true;
  }

  /** Sends a message the gate let in to its functions, unchecked; false when it has none now. */
  #dispatch(session: IntakeSession, message: ReceivedMessage): boolean {
    const targets = this.#directory.ready ? this.#directory.targets(message.topic) : [];
    if (targets.length === 0) return false;
    const delivery = new Routed(message, targets.length, session.routing);
    for (const target of targets) this.#dispatcher.enqueue(target, delivery);
    return true;
  }

  /**
   * Dead letters go out on the session the message came on: its acknowledgement belongs there. A
   * reading of a batch (a part) has no MQTT message of its own: its dead letter is published, and
   * the part counts down its batch's message.
   */
  #deadLetter(session: IntakeSession, message: ReceivedMessage, reason: string, metric: string, code?: string): void {
    if (message instanceof PartMessage) {
      void this.#admission.publishDeadLetter(message.topic, message.payload, reason, code).then(
        () => {
          this.metrics.deadLettered.inc({ reason: metric });
          message.ack();
        },
        () => {}, // stopping: the batch stays unacknowledged and comes again
      );
      return;
    }
    void session.consumer.deadLetter(message, reason, code).then((outcome) => {
      if (outcome === "published") this.metrics.deadLettered.inc({ reason: metric });
    });
  }

  /** A reading the registry refused: dead-lettered with its code. */
  #refuse(session: IntakeSession, message: ReceivedMessage, refused: Refused): void {
    this.#deadLetter(session, message, refused.reason, refused.refusal, refused.code);
  }

  /**
   * A reading released from quarantine, to the functions of the topic it came on (waiting for a
   * route if none has it now). Resolves once every function took it, or it was dead-lettered.
   */
  async #deliverReleased(reading: HeldReading, signal: AbortSignal): Promise<void> {
    let targets = this.#directory.ready ? this.#directory.targets(reading.topic) : [];
    while (targets.length === 0) {
      await this.#clock.sleep(1_000, signal);
      targets = this.#directory.ready ? this.#directory.targets(reading.topic) : [];
    }
    const count = targets.length;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason as Error);
      signal.addEventListener("abort", onAbort, { once: true });
      const finish = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const fail = (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      };
      let remaining = count;
      let rejection: string | undefined;
      const delivery: Delivery = {
        topic: reading.topic,
        payload: reading.payload,
        get current() {
          return !signal.aborted;
        },
        done: () => {
          if (--remaining > 0) return;
          if (rejection === undefined) return finish();
          this.#admission.publishDeadLetter(reading.topic, reading.payload, rejection).then(() => {
            this.metrics.deadLettered.inc({ reason: "rejected" });
            finish();
          }, fail);
        },
        reject: (reason) => {
          rejection ??= reason;
          delivery.done();
        },
      };
      for (const target of targets) this.#dispatcher.enqueue(target, delivery);
    });
  }

  #connectionLost(session: IntakeSession): void {
    // The broker redelivers everything of this session not acknowledged: what it held or queued
    // is dropped (the other sessions' messages stay queued).
    session.connection++;
    session.held = [];
    session.consumer.resume(ROUTES);
    this.#dispatcher.discardQueued();
  }

  /**
   * Parks the sessions whose filter a function with an open circuit is routed from, and resumes
   * the others: the broker keeps what arrives for a parked session, the rest flows on. Returns the
   * filters parked and flowing now.
   */
  #applyCircuits(): { parked: string[]; flowing: string[] } {
    const parked: string[] = [];
    const flowing: string[] = [];
    for (const session of this.#sessions) {
      let parks = false;
      for (const name of this.#directory.routedFunctions) {
        const by = `circuit ${name}`;
        const reason = this.#openCircuits.get(name);
        const routed = this.#directory.filtersOf(name).some((f) => filtersOverlap(f, session.filter));
        if (reason === undefined || !routed) {
          session.consumer.resume(by);
          continue;
        }
        parks = true;
        const which = this.#sessions.length > 1 ? ` of ${session.filter}` : "";
        session.consumer.park(by, `${name} is failing, intake${which} paused until it answers: ${reason}`);
      }
      // A function no route names any more (the routes changed while it failed) parks nothing.
      for (const name of this.#openCircuits.keys())
        if (!this.#directory.routedFunctions.has(name)) session.consumer.resume(`circuit ${name}`);
      this.metrics.intakeParked.set({ filter: session.filter }, parks ? 1 : 0);
      (parks ? parked : flowing).push(session.filter);
    }
    return { parked, flowing };
  }

  #hold(session: IntakeSession, message: ReceivedMessage): void {
    session.held.push(message);
    if (session.held.length > 1) return;
    const reason = this.#holdReason(message.topic);
    this.log.warn({ event: "no_route", topic: message.topic, reason }, `holding messages: ${reason}`);
    session.consumer.pause(ROUTES, reason);
  }

  #holdReason(topic: string): string {
    if (!this.#directory.ready)
      return `the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`;
    const filter = this.config.topics.find((f) => topicMatches(f, topic)) ?? topic;
    return `no function has the topic annotation for ${filter === topic ? topic : `${topic} (subscribed as ${filter})`}`;
  }

  #routesChanged(): void {
    this.#reportRoutes();
    if (this.#openCircuits.size > 0) this.#applyCircuits();
    for (const session of this.#sessions) {
      if (session.held.length === 0) continue;
      const held = session.held;
      session.held = [];
      for (const message of held) if (!this.#route(session, message)) session.held.push(message);
      if (session.held.length === 0) session.consumer.resume(ROUTES);
      else session.consumer.pause(ROUTES, this.#holdReason((session.held[0] as ReceivedMessage).topic));
      this.log.info(
        {
          event: "routes_changed",
          filter: session.filter,
          released: held.length - session.held.length,
          held: session.held.length,
        },
        "routes changed",
      );
    }
  }

  /** Each routed function may have max_inflight invocations open per replica ready. */
  #followReplicas(statuses: ReadonlyMap<string, FunctionStatus>): void {
    for (const name of this.#directory.routedFunctions)
      this.#dispatcher.setReplicas(name, statuses.get(name)?.availableReplicas);
  }

  #reportRoutes(): void {
    if (!this.#directory.ready) return;
    for (const filter of this.#directory.unrouted(this.config.topics)) {
      this.log.warn(
        { event: "no_route", filter },
        `no function has the topic annotation for ${filter}: its messages are held`,
      );
    }
  }

  /**
   * The received counter of a topic, resolved once per topic rather than hashed per message. It is
   * labelled by the subscribed filter the topic matched, not by the topic: topics with device ids
   * in them would give the metric one series per fan, kept for ever.
   */
  #receivedOn(topic: string): { inc(): void } {
    let counter = this.#receivedCounters.get(topic);
    if (counter === undefined) {
      if (this.#receivedCounters.size > 10_000) this.#receivedCounters.clear();
      const filter = this.config.topics.find((f) => topicMatches(f, topic)) ?? "(other)";
      this.#receivedCounters.set(topic, (counter = this.metrics.received.labels(filter)));
    }
    return counter;
  }

  /**
   * Refuses, alone, a message that would make its whole batch fail: too large for the function's
   * body limit, not JSON, or JSON with __proto__/constructor.prototype keys (which functions refuse).
   */
  #check(message: ReceivedMessage, gated: boolean): { reason: string; metric: string } | undefined {
    this.#parsed = undefined;
    if (message.payload.length > this.config.maxMessageBytes) {
      return {
        reason: `payload of ${message.payload.length} bytes exceeds max_message_bytes (${this.config.maxMessageBytes})`,
        metric: "too_large",
      };
    }
    // Sent raw, as the official connector does, unless the registry must read its deviceID.
    if (this.config.batchSize === 1 && !gated) return undefined;
    try {
      this.#parsed = parseUntrustedJson(message.payload);
      return undefined;
    } catch (error) {
      return { reason: `payload is not acceptable JSON: ${(error as Error).message}`, metric: "not_json" };
    }
  }

  /**
   * A QoS 1 publish, bounded by timeout_ms: MQTT.js keeps an unacknowledged publish and sends it
   * again after a reconnect, so without a bound a frozen broker would hold the messages forever
   * unseen; with it the failure is reported (and retried by the caller).
   */
  async #publish(topic: string, payload: string): Promise<void> {
    const timeout = new AbortController();
    try {
      await Promise.race([
        this.#replies.publish(topic, payload),
        this.#clock.sleep(this.config.timeoutMs, timeout.signal).then(() => {
          throw new Error(`the broker did not acknowledge within ${this.config.timeoutMs} ms`);
        }),
      ]);
    } finally {
      timeout.abort();
    }
  }

  /**
   * What keeps this replica from doing its part at all, in words (readiness, /readyz): a session
   * not connected or not subscribed, the gateway never answered (no routes known), stopping. A
   * function that is down or not deployed is not among them: its messages are held at the broker,
   * which is this replica's part too, and /healthz says so.
   */
  #unready(): string[] {
    const problems: string[] = [];
    const add = (problem: string) => {
      if (!problems.includes(problem)) problems.push(problem);
    };
    if (this.#sessions.length === 0) add("not connected to the broker");
    for (const session of this.#sessions) {
      const mqtt = session.consumer.status;
      const which = this.#sessions.length > 1 ? ` (session for ${session.filter})` : "";
      // A parked session is disconnected on purpose: its reason is among pausedFor.
      if (session.consumer.parked) continue;
      if (!mqtt.connected) add(`not connected to the broker${which}${mqtt.error === null ? "" : `: ${mqtt.error}`}`);
      else if (!mqtt.subscribed) add(`not subscribed${which}${mqtt.error === null ? "" : `: ${mqtt.error}`}`);
    }
    if (!this.#directory.ready)
      add(`the functions are not known yet: ${this.#directory.lastError ?? "asking the gateway"}`);
    if (this.#admission.enabled && !this.#admission.loaded)
      add(
        `the fan registry is not loaded yet${this.#admission.lastError === undefined ? "" : `: ${this.#admission.lastError}`}`,
      );
    if (this.stopping) add("stopping");
    return problems;
  }

  /** Everything that keeps the connector from moving messages along, in words (/healthz). */
  #problems(unready: readonly string[]): string[] {
    const problems = unready.filter((p) => p !== "stopping");
    const add = (problem: string) => {
      if (!problems.includes(problem)) problems.push(problem);
    };
    if (this.#directory.ready)
      for (const filter of this.#directory.unrouted(this.config.topics))
        add(`no function has the topic annotation for ${filter}`);
    for (const session of this.#sessions) for (const reason of session.consumer.status.pausedFor) add(reason);
    problems.push(...this.#replyTrouble.values());
    if (this.stopping) problems.push("stopping");
    return problems;
  }

  #health(): Health {
    const unready = this.#unready();
    const problems = this.#problems(unready);
    const statuses = this.#sessions.map((s) => ({ session: s, status: s.consumer.status }));
    const sum = (field: "messagesInFlight" | "bytesInFlight" | "deadLettersPending") =>
      statuses.reduce((n, { status }) => n + status[field], 0);
    const paused = [...new Set(statuses.flatMap(({ status }) => (status.paused === null ? [] : [status.paused])))];
    return {
      healthy: problems.length === 0,
      ready: unready.length === 0,
      details: {
        problems,
        // Why /readyz says 503 (empty while ready): a subset of the problems.
        unready,
        broker:
          statuses.length > 0 && statuses.every(({ session, status }) => status.connected || session.consumer.parked)
            ? "connected"
            : "disconnected",
        functions: this.#directory.ready ? this.#directory.functionCount : "unknown",
        discoveryError: this.#directory.lastError ?? null,
        inFlight: this.#dispatcher.inFlight,
        pending: sum("messagesInFlight"),
        bytesInFlight: sum("bytesInFlight"),
        deadLettersPending: sum("deadLettersPending"),
        paused: paused.length === 0 ? null : paused.join("; "),
        held: this.#sessions.reduce((n, s) => n + s.held.length, 0),
        // Who gets in: the device registry, its fans by state and the policy for unknown ids.
        registry: this.#admission.details(),
        // Each subscribed filter's intake: reading, paused (held messages, the byte bound), parked
        // (a function it routes to is failing) or disconnected.
        sessions: statuses.map(({ session, status }) => ({
          filter: session.filter,
          clientId: session.clientId,
          state: session.consumer.parked
            ? "parked"
            : !status.connected
              ? "disconnected"
              : status.paused === null
                ? "reading"
                : "paused",
          pending: status.messagesInFlight,
          bytesInFlight: status.bytesInFlight,
        })),
      },
    };
  }
}
