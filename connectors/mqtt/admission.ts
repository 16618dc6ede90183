import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { deadLetter } from "../../lib/domain/dead-letter.js";
import { describeImplausible } from "../../lib/domain/plausibility.js";
import { sensorNotice } from "../../lib/domain/sensor-notice.js";
import type { Logger } from "../../lib/infra/log.js";
import { retry, type Clock } from "../../lib/infra/retry.js";
import type { ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { RegistryCache, type RegistryCounts } from "../../lib/registry/cache.js";
import { deviceIdProblem, type FanRecord } from "../../lib/registry/fan-record.js";
import type { FanRegistry, PendingOutcome } from "../../lib/registry/registry.js";
import type { GateConfig } from "./config.js";
import { deviceIdOf, Gate, PASS, refuse, type Refused, type TopicKind, type Verdict } from "./gate.js";
import type { ConnectorMetrics } from "./metrics.js";
import { JetStreamQuarantine, type HeldReading } from "./quarantine.js";
import { QuarantineRelease } from "./quarantine-release.js";
import { openNatsRegistry } from "./registry-source.js";
import { filtersOverlap } from "../../lib/mqtt/topic-filter.js";

/** What the gate needs of the connector for a message: it owns the sessions, routes and dead letters. */
export interface GateActions {
  /** The normal path: the message goes to its functions (their targets are known). */
  route(message: ReceivedMessage): void;
  /** Dead-letters the message with the refusal's reason and code; acknowledged once published. */
  refuse(message: ReceivedMessage, refused: Refused): void;
  /** The session's connection now; bumped when one closes: the broker redelivers what came on it, work on it stops. */
  connection(): number;
}

export interface AdmissionOptions {
  config: GateConfig;
  /** The connector's topic filters: a warning at start when none can carry a per-fan topic and unbound fans are off. */
  topics: readonly string[];
  /** The registry to use (`fanwatch start` passes its own); else NATS_URL's, else none. */
  registry: FanRegistry | undefined;
  deadletterTopic: string;
  metrics: ConnectorMetrics;
  log: Logger;
  clock: Clock;
  /** Publishes on MQTT (QoS 1), resolving on the broker's acknowledgement. */
  publish(topic: string, payload: string): Promise<void>;
  /** Hands a released reading to the functions of its topic; resolves once they took it (or it was dead-lettered). */
  deliver(reading: HeldReading, signal: AbortSignal): Promise<void>;
  /** The registry is loaded (or failed for good): the connector may read from the broker. */
  onReady(): void;
}

/** A verdict on a batch (a JSON array) with some reading that does not simply pass. */
interface Mixed {
  kind: "batch";
  readings: unknown[];
  verdicts: Verdict[];
}

/** Who registered a fan the open policy let in, in its record's `approvedBy`. */
const OPEN_POLICY = "open";

const BACKOFF = { baseMs: 200, capMs: 5_000 };

/**
 * Only known fans get in (docs/pipeline.md, "Only known fans get in"): the connector asks this of
 * every reading before it invokes anything. It keeps the registry in a watched cache (one map
 * lookup per reading), applies UNKNOWN_DEVICE_POLICY, holds pending fans' readings in
 * FAN_QUARANTINE and releases them when the fan is approved, or drops them when it is refused.
 * Without a registry it gates nothing (`enabled` false) and says so.
 */
export class Admission {
  readonly gate: Gate;
  readonly #options: AdmissionOptions;
  readonly #log: Logger;
  #registry: FanRegistry | undefined;
  #cache: RegistryCache | undefined;
  #quarantine: JetStreamQuarantine | undefined;
  /** Releases and purges of held readings (with #quarantine). */
  #releases: QuarantineRelease | undefined;
  #nc: NatsConnection | undefined;
  /** Ids pending approval, from the cache's changes: bounded by REGISTRY_MAX_PENDING. */
  readonly #pending = new Set<string>();
  /** Active fans the `open` policy registered (approvedBy "open"), from the cache's changes: bounded by REGISTRY_MAX_PENDING too. */
  readonly #opened = new Set<string>();
  /** Per fan, the last of its holds under way: the next waits for it (#inOrder). */
  readonly #tails = new Map<string, Promise<void>>();
  readonly #stop = new AbortController();
  #loaded = false;
  #error: string | undefined;
  /** Refusals logged this second, and those left out (a flood must not become a log flood). */
  #logged = { second: 0, count: 0, skipped: 0 };
  #fullSaid = false;

  constructor(options: AdmissionOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#registry = options.registry;
    this.enabled = options.registry !== undefined || options.config.natsUrl !== undefined;
    this.gate = new Gate({
      telemetryTopic: options.config.telemetryTopic,
      allowUnbound: options.config.allowUnbound,
      record: (id) => this.#cache?.get(id),
    });
  }

  /** Whether readings are checked at all: a registry was given or NATS_URL names one. */
  readonly enabled: boolean;

  /** The cache holds the registry: readings may be judged. */
  get loaded(): boolean {
    return this.#loaded;
  }

  get lastError(): string | undefined {
    return this.#error;
  }

  counts(): RegistryCounts | undefined {
    return this.#loaded ? this.#cache?.counts() : undefined;
  }

  /** What /healthz says of the registry. */
  details(): Record<string, unknown> {
    const { config } = this.#options;
    if (!this.enabled)
      return {
        state: "none",
        trusted: "every device id: no registry (set NATS_URL)",
      };
    return {
      state: this.#loaded ? "loaded" : "loading",
      source: this.#options.registry !== undefined ? "given" : "nats",
      nats: this.#nc === undefined ? null : this.#nc.isClosed() ? "closed" : "connected",
      error: this.#error ?? null,
      fans: this.counts() ?? null,
      policy: config.policy,
      maxPending: config.maxPending,
      allowUnboundFans: config.allowUnbound,
      quarantine:
        this.#quarantine === undefined
          ? "none: without NATS the readings of pending fans are refused, not held"
          : `FAN_QUARANTINE, at most ${config.maxPerFan} readings per fan and ${config.maxQuarantineBytes} bytes in all`,
    };
  }

  /**
   * Loads the registry in the background (retrying while NATS is away) and calls onReady once the
   * cache holds it; until then the connector keeps its sessions paused. Without a registry it says
   * once that every device id is trusted and is ready at once.
   */
  start(): void {
    if (!this.enabled) {
      this.#log.warn(
        { event: "registry_none", trusted: true },
        "no device registry (no NATS_URL, none given): every device id is trusted, readings are not checked",
      );
      this.#options.onReady();
      return;
    }
    this.#warnUnreachable();
    void this.#load();
  }

  /**
   * With ALLOW_UNBOUND_FANS off, readings count only on `<telemetry>/<id>`: when no filter
   * subscribes to such a topic (`topic` left at `fan/messages`), every reading would be refused.
   */
  #warnUnreachable(): void {
    const { allowUnbound, telemetryTopic } = this.#options.config;
    const perFan = `${telemetryTopic}/+`;
    if (allowUnbound || this.#options.topics.some((filter) => filtersOverlap(filter, perFan))) return;
    this.#log.warn(
      { event: "readings_unreachable", topics: this.#options.topics, perFanTopic: perFan },
      `no topic filter covers ${perFan} and ALLOW_UNBOUND_FANS is off: every reading on ${telemetryTopic} will be refused (FANWATCH_IDENTITY_MISMATCH); add ${perFan} to topic, or set ALLOW_UNBOUND_FANS=true`,
    );
  }

  /** Stops judging work in the background (holds, releases) and lets go of the registry and NATS. Safe to repeat. */
  async stop(): Promise<void> {
    if (!this.#stop.signal.aborted) this.#stop.abort(new Error("the connector is stopping"));
    await this.#cache?.stop().catch(() => {});
    if (this.#options.registry === undefined) await this.#registry?.close().catch(() => {});
    await this.#nc?.close().catch(() => {});
  }

  /**
   * The verdict on a message's parsed payload: PASS (the same object) when every reading in it may
   * go on, which is the hot path. A topic that carries no readings is not judged.
   */
  judge(topic: TopicKind, payload: unknown): Verdict | Mixed {
    if (!Array.isArray(payload)) return this.gate.judge(topic, payload);
    let verdicts: Verdict[] | undefined;
    for (let i = 0; i < payload.length; i++) {
      const verdict = this.gate.judge(topic, payload[i]);
      if (verdict !== PASS) (verdicts ??= payload.slice(0, i).map(() => PASS)).push(verdict);
      else verdicts?.push(PASS);
    }
    return verdicts === undefined ? PASS : { kind: "batch", readings: payload, verdicts };
  }

  /** Does what a verdict other than PASS says with the message (see judge). */
  act(message: ReceivedMessage, verdict: Verdict | Mixed, reading: unknown, actions: GateActions): void {
    switch (verdict.kind) {
      case "pass":
        return actions.route(message);
      case "refuse":
        return this.#refuse(message, verdict, reading, actions);
      case "implausible":
        return void this.#implausible(message, verdict, actions, currentOf(actions));
      case "hold": {
        const current = currentOf(actions);
        return this.#inOrder(verdict.id, () => this.#hold(message, verdict.id, actions, current));
      }
      case "unknown": {
        const current = currentOf(actions);
        return this.#inOrder(verdict.id, () => this.#unknown(message, verdict.id, reading, actions, current));
      }
      case "batch":
        return this.#batch(message, verdict, actions);
    }
  }

  /**
   * Runs a fan's holds (and the registry write of its first reading) one after the other, so that
   * its readings reach FAN_QUARANTINE in the order they came: the first waits for the registry,
   * the next ones would otherwise overtake it.
   */
  #inOrder(id: string, work: () => Promise<void>): void {
    const previous = this.#tails.get(id);
    const next = previous === undefined ? work() : previous.then(work);
    const tail = next.catch(() => {});
    this.#tails.set(id, tail);
    void tail.then(() => {
      if (this.#tails.get(id) === tail) this.#tails.delete(id);
    });
  }

  #refuse(message: ReceivedMessage, refused: Refused, reading: unknown, actions: GateActions): void {
    this.#options.metrics.refused.inc({ reason: refused.refusal });
    if (refused.refusal === "identity" && this.#mayLog()) {
      // The attempt is visible: who claimed to be whom, where.
      const claimed = (deviceIdOf(reading) ?? "").slice(0, 80);
      this.#log.warn(
        { event: "identity_mismatch", topic: message.topic, claimed, code: refused.code },
        `a reading on ${message.topic} claims to be fan ${JSON.stringify(claimed)}: dead-lettered`,
      );
    }
    actions.refuse(message, refused);
  }

  /** Tells health (a SensorNotice on the anomaly topic), then dead-letters the reading. */
  async #implausible(
    message: ReceivedMessage,
    verdict: Extract<Verdict, { kind: "implausible" }>,
    actions: GateActions,
    current: () => boolean,
  ): Promise<void> {
    const notice = sensorNotice(verdict.id, verdict.timeStamp, verdict.found);
    try {
      await this.#retry(
        () => this.#options.publish(this.#options.config.anomalyTopic, JSON.stringify(notice)),
        current,
      );
    } catch {
      return; // the connection closed, or stopping: the broker redelivers the reading
    }
    this.#options.metrics.refused.inc({ reason: "implausible" });
    actions.refuse(message, refuse("implausible", "FANWATCH_READING_IMPLAUSIBLE", describeImplausible(verdict.found)));
  }

  /** Holds a pending fan's reading in FAN_QUARANTINE; the MQTT message is acknowledged once JetStream has it. */
  async #hold(message: ReceivedMessage, id: string, actions: GateActions, current: () => boolean): Promise<void> {
    const quarantine = this.#quarantine;
    if (quarantine === undefined)
      return actions.refuse(
        message,
        refuse(
          "unknown",
          "FANWATCH_DEVICE_UNKNOWN",
          `fan ${JSON.stringify(id)} is pending approval, and without NATS its readings cannot be held: refused until it is approved`,
        ),
      );
    try {
      await this.#retry(
        () => quarantine.hold(id, { topic: message.topic, payload: message.payload }),
        current,
        "cannot hold a pending fan's reading in FAN_QUARANTINE",
      );
    } catch {
      return;
    }
    this.#options.metrics.quarantined.inc();
    message.ack();
    // Approved or refused while it was being stored: its copy must not stay behind. A fan this
    // connector just made pending may not be in the cache yet (the watch lags the write).
    const state = this.#cache?.get(id)?.state ?? (this.#pending.has(id) ? "pending" : undefined);
    this.#releases?.settle(id, state);
  }

  /** UNKNOWN_DEVICE_POLICY: quarantine (pending, held), reject (dead letter) or open (registered). */
  async #unknown(
    message: ReceivedMessage,
    id: string,
    reading: unknown,
    actions: GateActions,
    current: () => boolean,
  ): Promise<void> {
    const { policy, maxPending } = this.#options.config;
    const problem = deviceIdProblem(id);
    if (problem !== undefined)
      return this.#refuse(message, refuse("invalid_id", "FANWATCH_DEVICE_ID_INVALID", problem), reading, actions);
    if (policy === "reject")
      return this.#refuse(
        message,
        refuse(
          "unknown",
          "FANWATCH_DEVICE_UNKNOWN",
          `fan ${JSON.stringify(id)} is not in the registry (UNKNOWN_DEVICE_POLICY=reject): register it with fanwatch fans add`,
        ),
        reading,
        actions,
      );
    // Queued behind the id's first reading, which registered it meanwhile: judged as a known fan.
    const known = this.#cache?.get(id);
    if (known !== undefined) return this.#judged(message, id, known, reading, actions, current);
    if (policy === "quarantine" && !this.#pending.has(id) && this.#pending.size >= maxPending)
      return this.#full(message, id, reading, actions);
    if (policy === "open" && !this.#opened.has(id) && this.#opened.size >= maxPending)
      return this.#full(message, id, reading, actions);
    let answer: FanRecord | "full" | undefined;
    try {
      answer = await this.#ask(id, current);
    } catch {
      return;
    }
    if (answer === "full") return this.#full(message, id, reading, actions);
    return this.#judged(message, id, answer, reading, actions, current);
  }

  /** A reading of an id whose record the registry gave: the gate's verdict on it, acted on. */
  #judged(
    message: ReceivedMessage,
    id: string,
    record: FanRecord | undefined,
    reading: unknown,
    actions: GateActions,
    current: () => boolean,
  ): Promise<void> | void {
    // Someone removed it meanwhile: refused rather than asked again (no loop).
    const verdict = this.gate.judgeRecord(id, record, reading);
    if (verdict.kind === "unknown")
      return this.#refuse(
        message,
        refuse("unknown", "FANWATCH_DEVICE_UNKNOWN", `fan ${JSON.stringify(id)} is not in the registry`),
        reading,
        actions,
      );
    // Held here, not through act(): the fan's later readings wait in #inOrder behind this one.
    if (verdict.kind === "hold") return this.#hold(message, id, actions, current);
    this.act(message, verdict, reading, actions);
  }

  #full(message: ReceivedMessage, id: string, reading: unknown, actions: GateActions): void {
    const { maxPending, policy } = this.#options.config;
    const open = policy === "open";
    if (!this.#fullSaid) {
      this.#fullSaid = true;
      this.#log.warn(
        { event: "registry_full", maxPending, policy },
        open
          ? `${maxPending} fans were registered by UNKNOWN_DEVICE_POLICY=open (REGISTRY_MAX_PENDING): readings of further unknown ids are dead-lettered until some are retired`
          : `${maxPending} fans are pending approval (REGISTRY_MAX_PENDING): readings of further unknown ids are dead-lettered until some are approved or refused`,
      );
    }
    this.#refuse(
      message,
      refuse(
        "full",
        "FANWATCH_REGISTRY_FULL",
        open
          ? `fan ${JSON.stringify(id)} is not in the registry and ${maxPending} fans were already registered by the open policy (REGISTRY_MAX_PENDING)`
          : `fan ${JSON.stringify(id)} is not in the registry and ${maxPending} fans already wait for approval (REGISTRY_MAX_PENDING)`,
      ),
      reading,
      actions,
    );
  }

  /**
   * The registry's record for an unknown id once the policy applied: pending (quarantine) or
   * active (open); "full" when no more may wait. The id's readings come here one at a time
   * (#inOrder), and the later ones find the record in the cache (#unknown).
   */
  #ask(id: string, current: () => boolean): Promise<FanRecord | "full" | undefined> {
    const registry = this.#registry as FanRegistry;
    const { policy, maxPending } = this.#options.config;
    return this.#retry(async () => {
      if (policy === "open") {
        const record = await registry.add(id, {}, OPEN_POLICY);
        if (record.state === "active" && record.approvedBy === OPEN_POLICY) this.#opened.add(id);
        return record;
      }
      const outcome: PendingOutcome = await registry.markPending(id, maxPending);
      if (outcome === "full") return "full";
      if (outcome === "pending") {
        this.#pending.add(id);
        this.#log.info(
          { event: "fan_pending", deviceID: id },
          `unknown fan ${JSON.stringify(id)} is pending approval: its readings are held until a person approves or refuses it`,
        );
      }
      return this.#cache?.get(id) ?? (await registry.get(id));
    }, current);
  }

  /**
   * A batch with readings that do not all pass: each reading goes its own way (routed, held,
   * dead-lettered) as a part of the message, which is acknowledged once every part is.
   */
  #batch(message: ReceivedMessage, mixed: Mixed, actions: GateActions): void {
    let left = mixed.readings.length;
    const partAck = () => {
      if (--left === 0) message.ack();
    };
    if (left === 0) return message.ack();
    mixed.readings.forEach((reading, i) => {
      const part = new PartMessage(message, Buffer.from(JSON.stringify(reading)), partAck);
      this.act(part, mixed.verdicts[i] as Verdict, reading, actions);
    });
  }

  /** Publishes a dead letter itself: for a part of a batch, or a released reading (no MQTT message of its own). */
  publishDeadLetter(topic: string, payload: Buffer, reason: string, code?: string): Promise<void> {
    return this.#retry(
      () =>
        this.#options.publish(
          this.#options.deadletterTopic,
          JSON.stringify(deadLetter(reason, topic, payload, new Date(), code)),
        ),
      () => true,
    );
  }

  async #load(): Promise<void> {
    const { config, log } = this.#options;
    const signal = this.#stop.signal;
    try {
      if (config.natsUrl !== undefined) {
        const url = config.natsUrl;
        const nc = await this.#retry(
          () =>
            connect({
              servers: url,
              name: `fanwatch-connector-${process.pid}`,
              maxReconnectAttempts: -1,
              reconnectTimeWait: 1_000,
              timeout: 5_000,
            }),
          () => true,
          `cannot reach NATS at ${redactUrl(url)} (NATS_URL) yet`,
        );
        if (signal.aborted) return void (await nc.close());
        this.#nc = nc;
        log.info({ event: "nats_connected", nats: redactUrl(url) }, `connected to NATS at ${redactUrl(url)}`);
        this.#registry ??= await this.#retry(
          () => openNatsRegistry(nc, config.replicas, log),
          () => true,
          "cannot open the fan registry (KV bucket fan_registry) yet",
        );
        const js = jetstream(nc, { timeout: 5_000 });
        const jsm = await jetstreamManager(nc, { timeout: 5_000 });
        const quarantine = new JetStreamQuarantine({
          js,
          jsm,
          maxPerFan: config.maxPerFan,
          maxBytes: config.maxQuarantineBytes,
          replicas: config.replicas,
          log,
        });
        await this.#retry(
          () => quarantine.start(),
          () => true,
          "cannot make the stream FAN_QUARANTINE yet",
        );
        this.#quarantine = quarantine;
        this.#releases = new QuarantineRelease({
          quarantine,
          record: (id) => this.#cache?.get(id),
          judge: (id, record, reading) => this.gate.judgeRecord(id, record, reading),
          refuseImplausible: (id, verdict, reading) => this.#refuseReleased(id, verdict, reading),
          deliver: (reading, signal) => this.#options.deliver(reading, signal),
          released: () => this.#options.metrics.released.inc(),
          retry: (work, what) => this.#retry(work, () => true, what),
          signal: this.#stop.signal,
          log,
        });
      }
      const cache = new RegistryCache(this.#registry as FanRegistry);
      cache.onChange((id, record) => this.#changed(id, record));
      this.#cache = cache;
      await this.#retry(
        () => cache.start(),
        () => true,
        "cannot read the fan registry yet",
      );
      if (signal.aborted) return;
      this.#loaded = true;
      this.#error = undefined;
      const counts = cache.counts();
      log.info(
        { event: "registry_loaded", fans: counts, policy: config.policy, allowUnboundFans: config.allowUnbound },
        `fan registry loaded (${counts.active} active, ${counts.pending} pending, ${counts.retired} retired): readings of other ids follow UNKNOWN_DEVICE_POLICY=${config.policy}`,
      );
      this.#options.onReady();
      await this.#releases?.settleHeld();
    } catch (error) {
      if (signal.aborted) return;
      this.#error = (error as Error).message;
      log.error({ event: "registry_failed", err: this.#error }, `cannot load the fan registry: ${this.#error}`);
    }
  }

  /** A record changed: keeps the pending set, releases an approved fan's readings, drops a refused one's. */
  #changed(id: string, record: FanRecord | undefined): void {
    const wasPending = this.#pending.has(id);
    if (record?.state === "pending") this.#pending.add(id);
    else this.#pending.delete(id);
    if (record?.state === "active" && record.approvedBy === OPEN_POLICY) this.#opened.add(id);
    else this.#opened.delete(id);
    const bounded = this.#options.config.policy === "open" ? this.#opened : this.#pending;
    if (bounded.size < this.#options.config.maxPending) this.#fullSaid = false;
    if (!this.#loaded || !wasPending) return;
    this.#releases?.settle(id, record?.state);
  }

  /** A held reading found implausible on release: health is told, the reading dead-lettered. */
  async #refuseReleased(
    id: string,
    verdict: Extract<Verdict, { kind: "implausible" }>,
    reading: HeldReading,
  ): Promise<void> {
    const notice = sensorNotice(id, verdict.timeStamp, verdict.found);
    await this.#retry(
      () => this.#options.publish(this.#options.config.anomalyTopic, JSON.stringify(notice)),
      () => true,
    );
    this.#options.metrics.refused.inc({ reason: "implausible" });
    await this.publishDeadLetter(
      reading.topic,
      reading.payload,
      describeImplausible(verdict.found),
      "FANWATCH_READING_IMPLAUSIBLE",
    );
  }

  /** `work` again with backoff while `current()` and not stopping; the first failure is logged when `what` says what failed. */
  #retry<T>(work: () => Promise<T>, current: () => boolean, what?: string): Promise<T> {
    let said = false;
    return retry(work, {
      ...BACKOFF,
      clock: this.#options.clock,
      signal: this.#stop.signal,
      retryable: () => !this.#stop.signal.aborted && current(),
      onRetry: (error) => {
        this.#error = (error as Error).message;
        if (what === undefined || said) return;
        said = true;
        this.#log.warn({ event: "registry_retry", err: this.#error }, `${what}: ${this.#error}; retrying`);
      },
    });
  }

  /** At most 20 refusals logged a second; how many were left out is said with the next one. */
  #mayLog(): boolean {
    const second = Math.floor(this.#options.clock.now() / 1_000);
    if (second !== this.#logged.second) this.#logged = { second, count: 0, skipped: this.#logged.skipped };
    if (this.#logged.count >= 20) {
      this.#logged.skipped++;
      return false;
    }
    this.#logged.count++;
    if (this.#logged.skipped > 0) {
      this.#log.warn(
        { event: "refusals_not_logged", skipped: this.#logged.skipped },
        `${this.#logged.skipped} refusals not logged`,
      );
      this.#logged.skipped = 0;
    }
    return true;
  }
}

/** Whether the connection a message came on (the one open now) is still open. */
function currentOf(actions: GateActions): () => boolean {
  const at = actions.connection();
  return () => actions.connection() === at;
}

/**
 * One reading of a batch, as a message of its own: acknowledging it counts down its batch's
 * message, which is acknowledged with the last part.
 */
export class PartMessage implements ReceivedMessage {
  #acked = false;

  constructor(
    readonly parent: ReceivedMessage,
    readonly payload: Buffer,
    private readonly onAck: () => void,
  ) {}

  get topic(): string {
    return this.parent.topic;
  }

  ack(): void {
    if (this.#acked) return;
    this.#acked = true;
    this.onAck();
  }
}
