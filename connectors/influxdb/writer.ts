import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { startHealthServer, type Health, type HealthServer } from "../../lib/infra/health-server.js";
import type { Logger } from "../../lib/infra/log.js";
import { MqttConsumer, type ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { redactUrl } from "../../lib/mqtt/settings.js";
import { retry } from "../../lib/infra/retry.js";
import { ServiceBase } from "../../lib/infra/service.js";
import type { WriterConfig } from "./config.js";
import { createLineWriter, type LineWriter, type WriteOutcome } from "./influx-client.js";
import { toLines, type Source } from "./points.js";

/** A message's points (a prediction has two: itself and the reading it scored), acknowledged together. */
interface Buffered {
  lines: string[];
  message: ReceivedMessage;
}

/**
 * MQTT → InfluxDB for single machines (clusters use Telegraf with the same schema). Takes
 * predictions, dead letters and health transitions from the broker (lib/mqtt/consumer.ts:
 * persistent session, QoS 1), turns each message into its points, writes them in batches
 * (batchSize lines or flushMs), and acknowledges a message only once its points are stored or it
 * is dead-lettered. Readings are stored from the predictions (each carries the reading it scored),
 * never from the telemetry topic: only readings the connector let through (an active registered
 * fan's) are predicted, so a quarantined or forged reading never reaches InfluxDB. A sensor notice
 * on the anomaly topic is acknowledged and not stored.
 * - InfluxDB down (unreachable, no answer, 5xx, 429, credentials or database not there yet): the
 *   batch is retried with capped backoff; nothing is acknowledged meanwhile, and once the messages
 *   held reach maxBufferBytes the consumer stops reading: the broker keeps the rest.
 * - A message that is not a valid reading or prediction, or a point InfluxDB refuses as bad data:
 *   dead-lettered with the reason, the rest of its batch stored.
 * - Dead letters are stored too; one that cannot be is logged and dropped, never dead-lettered again.
 */
export class InfluxWriter extends ServiceBase {
  readonly name = "InfluxDB writer";
  readonly registry = new Registry();
  readonly #messages = new Counter({
    name: "influx_writer_messages_total",
    help: "MQTT messages by kind (prediction, sensor_notice, deadletter, health; telemetry: left in the session by an older writer) and outcome (accepted, rejected: dead-lettered before writing, dropped: a dead letter that could not be stored, skipped: acknowledged, nothing to store)",
    labelNames: ["kind", "outcome"],
    registers: [this.registry],
  });
  readonly #points = new Counter({
    name: "influx_writer_points_written_total",
    help: "Points InfluxDB stored",
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: "influx_writer_points_refused_total",
    help: "Points InfluxDB refused as bad data (dead-lettered, never retried), by reason",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly #failures = new Counter({
    name: "influx_writer_write_failures_total",
    help: "Batch writes that failed because InfluxDB was unavailable (each is retried)",
    registers: [this.registry],
  });
  readonly #deadLetters = new Counter({
    name: "influx_writer_dead_letters_total",
    help: "Dead letters the writer published, by outcome (published, failed: the message is left for redelivery)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly #seconds = new Histogram({
    name: "influx_writer_write_seconds",
    help: "Time per batch write that InfluxDB answered",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly #lines: LineWriter;
  readonly #consumer: MqttConsumer;
  /** Points waiting for a batch, then the batch being written. */
  #buffer: Buffered[] = [];
  /** Lines (points) in #buffer: batches are counted in points, and a prediction brings two. */
  #buffered = 0;
  #batch: Buffered[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #server: HealthServer | undefined;
  #influxError: string | undefined;
  #stopping = false;
  /** Ends backoff waits: on drain or close, and when the connection the batch came on closed. */
  #abort = new AbortController();

  constructor(
    private readonly config: WriterConfig,
    private readonly log: Logger,
    lines: LineWriter = createLineWriter(config.influx, { log }),
  ) {
    super();
    this.#lines = lines;
    const { topics } = config;
    this.#consumer = new MqttConsumer({
      mqtt: config.mqtt,
      clientId: config.clientId,
      topics: [topics.anomaly, topics.deadletter, topics.alarm],
      // A session kept from an older writer still holds the telemetry topic: readings come from
      // the predictions now, and the telemetry topic also carries readings of fans not let in.
      unsubscribe: [topics.telemetry],
      deadLetterTopic: topics.deadletter,
      maxBytesInFlight: config.maxBufferBytes,
      log,
      onMessage: (message) => this.#receive(message),
      onConnectionLost: () => this.#dropAll(),
    });
    collectDefaultMetrics({ register: this.registry, prefix: "influx_writer_" });
    const points = () => this.#buffered + lineCount(this.#batch);
    const bytes = () => this.#consumer.status.bytesInFlight;
    const up = () => (this.#influxError === undefined ? 1 : 0);
    new Gauge({
      name: "influx_writer_buffered",
      help: "Points received and not yet stored",
      registers: [this.registry],
      collect() {
        this.set(points());
      },
    });
    new Gauge({
      name: "influx_writer_buffered_bytes",
      help: "Bytes of the MQTT messages received and not yet acknowledged (reading stops at INFLUX_MAX_BUFFER_BYTES)",
      registers: [this.registry],
      collect() {
        this.set(bytes());
      },
    });
    new Gauge({
      name: "influx_writer_influx_up",
      help: "1 while InfluxDB takes writes, 0 while they fail",
      registers: [this.registry],
      collect() {
        this.set(up());
      },
    });
  }

  get port(): number {
    return this.#server?.port ?? 0;
  }

  /** Resolves once the broker granted the subscriptions; rejects if it refused one. */
  protected async onStart(): Promise<void> {
    this.#server = await startHealthServer(
      { port: this.config.port, host: this.config.healthHost },
      () => this.#health(),
      this.registry,
    );
    await this.#consumer.start();
    const { influx, topics } = this.config;
    const target = influx.api === "v1" ? `database ${influx.database}` : `bucket ${influx.bucket}`;
    this.log.info(
      {
        event: "started",
        broker: redactUrl(this.config.mqtt.url),
        topics,
        influx: influx.url,
        api: influx.api,
        target,
      },
      `writing ${topics.anomaly} (predictions and their readings), ${topics.deadletter} and ${topics.alarm} to InfluxDB ${target}`,
    );
  }

  /**
   * Stops taking messages, writes what it holds (one attempt, no retries), waits for its dead
   * letters, then disconnects (close()); whatever is unwritten stays with the broker.
   */
  protected override async onDrain(): Promise<void> {
    await this.#consumer.drain(async () => {
      this.#stopWriting();
      await this.#writing;
      while (this.#buffer.length > 0) {
        const batch = this.#take();
        if (!(await this.#writeOnce(batch))) break;
      }
    });
  }

  /** Disconnects at once: what was not written is not acknowledged, and the broker redelivers it. */
  protected async onClose(): Promise<void> {
    this.#stopWriting();
    await this.#consumer.close();
    await this.#server?.close();
    this.log.info({ event: "stopped", unwritten: this.#buffered }, "InfluxDB writer stopped");
  }

  #stopWriting(): void {
    this.#stopping = true;
    this.#abort.abort(new Error("the writer is stopping")); // ends a backoff wait at once
    clearTimeout(this.#timer);
  }

  #receive(message: ReceivedMessage): void {
    const source = this.#sourceOf(message.topic);
    if (source === undefined) {
      // A reading the old session still held (until the unsubscribe): its prediction brings it.
      this.#messages.inc({ kind: "telemetry", outcome: "skipped" });
      return message.ack();
    }
    const points = toLines(source, message.payload, Date.now(), this.config.topics.telemetry);
    if (!points.ok) {
      this.#messages.inc({ kind: source, outcome: "rejected" });
      this.#deadLetter(message, `influx-writer: ${points.error}`);
      return;
    }
    if (points.lines.length === 0) {
      this.#messages.inc({ kind: "sensor_notice", outcome: "skipped" });
      return message.ack();
    }
    this.#messages.inc({ kind: source, outcome: "accepted" });
    this.#buffer.push({ lines: points.lines, message });
    this.#buffered += points.lines.length;
    if (this.#buffered >= this.config.batchSize) void this.#flush();
    else this.#timer ??= setTimeout(() => void this.#flush(), this.config.flushMs);
  }

  #sourceOf(topic: string): Source | undefined {
    const { anomaly, deadletter, alarm } = this.config.topics;
    if (topic === anomaly) return "prediction";
    if (topic === deadletter) return "deadletter";
    if (topic === alarm) return "health";
    return undefined;
  }

  /** Starts the write loop unless it runs already; it empties the buffer batch by batch. */
  #flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= this.#writeAll().finally(() => {
      this.#writing = undefined;
      if (this.#buffer.length > 0 && !this.#stopping)
        this.#timer ??= setTimeout(() => void this.#flush(), this.config.flushMs);
    });
    return this.#writing;
  }

  async #writeAll(): Promise<void> {
    while (this.#buffer.length > 0 && !this.#stopping) {
      this.#batch = this.#take();
      const signal = this.#abort.signal;
      try {
        const outcome = await retry(() => this.#timed(this.#batch, signal), {
          baseMs: this.config.retryBaseMs,
          capMs: this.config.retryMaxMs,
          signal,
          // InfluxDB's bad data comes back in the outcome; whatever throws is an outage.
          retryable: () => true,
          onRetry: (error) => this.#failed(error, lineCount(this.#batch)),
        });
        this.#settle(this.#batch, outcome.rejected);
      } catch {
        // Every error is retried, so only the signal ends retry: stopping (onDrain() tries the batch
        // once more) or the batch's connection closed (its messages come again).
        if (this.#stopping) this.#putBack(this.#batch);
      } finally {
        this.#batch = [];
      }
    }
  }

  /** The next batch: messages from the front of the buffer up to batchSize points (at least one message). */
  #take(): Buffered[] {
    let count = 0;
    let lines = 0;
    for (const item of this.#buffer) {
      if (count > 0 && lines + item.lines.length > this.config.batchSize) break;
      count++;
      lines += item.lines.length;
    }
    this.#buffered -= lines;
    return this.#buffer.splice(0, count);
  }

  #putBack(batch: Buffered[]): void {
    this.#buffer.unshift(...batch);
    this.#buffered += lineCount(batch);
  }

  /** One attempt; false if InfluxDB did not take the batch. */
  async #writeOnce(batch: Buffered[]): Promise<boolean> {
    try {
      this.#settle(batch, (await this.#timed(batch)).rejected);
      return true;
    } catch (error) {
      this.#failed(error, lineCount(batch));
      this.#putBack(batch);
      return false;
    }
  }

  /** `signal` cuts a write that is no longer wanted (stopping, or its messages' connection closed). */
  async #timed(batch: Buffered[], signal?: AbortSignal): Promise<WriteOutcome> {
    const stopTimer = this.#seconds.startTimer();
    const outcome = await this.#lines.write(
      batch.flatMap((b) => b.lines),
      signal,
    );
    stopTimer();
    if (this.#influxError !== undefined) this.log.info({ event: "influx_back" }, "InfluxDB takes writes again");
    this.#influxError = undefined;
    return outcome;
  }

  #failed(error: unknown, points: number): void {
    this.#failures.inc();
    const message = error instanceof Error ? error.message : String(error);
    if (message !== this.#influxError)
      this.log.warn(
        { event: "write_failed", err: message, points },
        "InfluxDB did not take the batch; retrying with backoff",
      );
    this.#influxError = message;
  }

  /** Acknowledges the stored points and dead-letters the refused ones. */
  /**
   * Acknowledges the messages whose points were all stored and dead-letters those with a refused
   * point (the reason of its first; a prediction whose reading was refused is dead-lettered
   * whole: replayed, its stored point is written again, the same point).
   */
  #settle(batch: Buffered[], rejected: WriteOutcome["rejected"]): void {
    const refused = new Map(rejected.map((r) => [r.index, r.error]));
    let index = 0;
    for (const item of batch) {
      const errors = item.lines.map((_line, i) => refused.get(index + i)).filter((e) => e !== undefined);
      index += item.lines.length;
      const [error] = errors;
      if (error === undefined) {
        item.message.ack();
        continue;
      }
      for (const e of errors) this.#refused.inc({ reason: refusalReason(e) });
      this.#deadLetter(item.message, `influx-writer: ${error}`);
    }
    this.#points.inc(index - refused.size);
    if (refused.size > 0)
      this.log.warn(
        { event: "points_refused", points: refused.size, first: rejected[0]?.error },
        `InfluxDB refused ${refused.size} of ${index} points as bad data; dead-lettered`,
      );
  }

  #deadLetter(message: ReceivedMessage, reason: string): void {
    void this.#consumer.deadLetter(message, reason).then((outcome) => {
      if (outcome === "dropped") this.#messages.inc({ kind: "deadletter", outcome: "dropped" });
      else this.#deadLetters.inc({ outcome });
    });
  }

  /** The connection closed: the broker redelivers everything held, so the copies are dropped. */
  #dropAll(): void {
    this.#buffer = [];
    this.#buffered = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#batch.length > 0 && !this.#stopping) {
      this.#abort.abort(new Error("the batch's connection closed"));
      this.#abort = new AbortController();
    }
  }

  #health(): Health {
    const mqtt = this.#consumer.status;
    return {
      healthy: this.#consumer.healthy && this.#influxError === undefined,
      details: {
        broker: mqtt.connected ? (mqtt.subscribed ? "connected" : "connected, not subscribed") : "disconnected",
        brokerError: mqtt.error,
        influx: this.#influxError === undefined ? "ok" : `failing: ${this.#influxError}`,
        buffered: this.#buffered + lineCount(this.#batch),
        bufferedBytes: mqtt.bytesInFlight,
        reading: mqtt.paused === null ? "yes" : `paused: ${mqtt.paused}`,
        deadLettersPending: mqtt.deadLettersPending,
      },
    };
  }
}

function lineCount(items: readonly Buffered[]): number {
  return items.reduce((sum, item) => sum + item.lines.length, 0);
}

/** A label of few values for InfluxDB's reason (the reason itself names the point). */
function refusalReason(error: string): string {
  if (/cannot parse|unable to parse/i.test(error)) return "unparsable";
  if (/field type conflict/i.test(error)) return "field_type_conflict";
  if (/beyond retention/i.test(error)) return "beyond_retention";
  if (/\(413\)|too large/i.test(error)) return "too_large";
  return "other";
}
