import { setTimeout as sleep } from "node:timers/promises";
import type { MqttClient } from "mqtt";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { backoffDelay } from "../../lib/backoff.js";
import { deadLetter } from "../../lib/dead-letter.js";
import { startHealthServer, type Health, type HealthServer } from "../../lib/health-server.js";
import type { Logger } from "../../lib/log.js";
import { takeOverAcks, type ReceivedMessage } from "../../lib/mqtt-acks.js";
import { connectMqtt, redactUrl } from "../../lib/mqtt.js";
import type { WriterConfig } from "./config.js";
import { createLineWriter, type LineWriter } from "./influx-client.js";
import { toLine } from "./points.js";

interface Buffered {
  line: string;
  ack(): void;
}

/**
 * MQTT → InfluxDB for single machines (clusters use Telegraf with the same schema). Subscribes to
 * the telemetry and anomaly topics at QoS 1 with a persistent session, turns each message into one
 * point, writes them in batches (batchSize lines or flushMs), and acknowledges a message only once
 * its batch is written. While InfluxDB is down it retries the same batch with backoff and takes
 * nothing more off the broker than its in-flight window: the broker keeps the rest. A message that
 * is not a valid reading or prediction is dead-lettered and acknowledged, never written in part.
 */
export class InfluxWriter {
  readonly registry = new Registry();
  readonly #messages = new Counter({ name: "influx_writer_messages_total", help: "MQTT messages by kind and outcome", labelNames: ["kind", "outcome"], registers: [this.registry] });
  readonly #points = new Counter({ name: "influx_writer_points_written_total", help: "Points InfluxDB accepted", registers: [this.registry] });
  readonly #failures = new Counter({ name: "influx_writer_write_failures_total", help: "Batch writes InfluxDB refused or did not answer (each is retried)", registers: [this.registry] });
  readonly #seconds = new Histogram({ name: "influx_writer_write_seconds", help: "Time per successful batch write", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [this.registry] });
  readonly #lines: LineWriter;
  #buffer: Buffered[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #client: MqttClient | undefined;
  #server: HealthServer | undefined;
  #influxError: string | undefined;
  #stopping = false;
  readonly #abort = new AbortController();

  constructor(
    private readonly config: WriterConfig,
    private readonly log: Logger,
    lines: LineWriter = createLineWriter(config.influx),
  ) {
    this.#lines = lines;
    collectDefaultMetrics({ register: this.registry, prefix: "influx_writer_" });
    const buffered = () => this.#buffer.length;
    new Gauge({ name: "influx_writer_buffered", help: "Points received and not yet written", registers: [this.registry], collect() { this.set(buffered()); } });
  }

  get port(): number {
    return this.#server?.port ?? 0;
  }

  /** Resolves once the broker confirmed the subscription. */
  async start(): Promise<void> {
    this.#server = await startHealthServer({ port: this.config.port, host: this.config.healthHost }, () => this.#health(), this.registry);
    const client = connectMqtt(this.config.mqtt, {
      clientId: this.config.clientId,
      clean: false,
      resubscribe: true,
      onError: (error) => this.log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
    });
    this.#client = client;
    takeOverAcks(client, (message) => this.#receive(message));
    const topics = [this.config.topics.telemetry, this.config.topics.anomaly];
    await new Promise<void>((resolve) => {
      client.on("connect", () => {
        client.subscribe(topics, { qos: 1 }, (error) => {
          if (error) this.log.error({ event: "subscribe_failed", err: error.message }, "subscribe failed");
          else resolve();
        });
      });
    });
    const target = this.config.influx.api === "v1" ? `database ${this.config.influx.database}` : `bucket ${this.config.influx.bucket}`;
    this.log.info({ event: "started", broker: redactUrl(this.config.mqtt.url), topics, influx: this.config.influx.url, api: this.config.influx.api, target }, `writing ${topics.join(" and ")} to InfluxDB ${target}`);
  }

  /** Writes what it holds (one attempt), then disconnects; anything unwritten stays with the broker. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort(); // ends a backoff wait at once
    clearTimeout(this.#timer);
    await this.#writing;
    if (this.#buffer.length > 0) await this.#flush();
    await this.#client?.endAsync();
    await this.#server?.close();
    this.log.info({ event: "stopped", unwritten: this.#buffer.length }, "InfluxDB writer stopped");
  }

  #receive(message: ReceivedMessage): void {
    if (this.#stopping) return; // unacknowledged: the broker keeps it for the next session
    const kind = message.topic === this.config.topics.anomaly ? "prediction" : "telemetry";
    const point = toLine(kind, message.payload, Date.now());
    if (!point.ok) {
      this.#messages.inc({ kind, outcome: "rejected" });
      this.#client?.publish(this.config.topics.deadletter, JSON.stringify(deadLetter(`influx-writer: ${point.error}`, message.topic, message.payload)), { qos: 1 }, (error) => {
        if (error) this.log.warn({ event: "dead_letter_failed", err: error.message }, "cannot publish a dead letter; the broker will redeliver");
        else message.ack();
      });
      return;
    }
    this.#messages.inc({ kind, outcome: "accepted" });
    this.#buffer.push({ line: point.line, ack: message.ack });
    if (this.#buffer.length >= this.config.batchSize) void this.#flush();
    else this.#timer ??= setTimeout(() => void this.#flush(), this.config.flushMs);
  }

  /** Starts the write loop unless it runs already; it empties the buffer batch by batch. */
  #flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= this.#writeAll().finally(() => {
      this.#writing = undefined;
      if (this.#buffer.length > 0 && !this.#stopping) this.#timer ??= setTimeout(() => void this.#flush(), this.config.flushMs);
    });
    return this.#writing;
  }

  async #writeAll(): Promise<void> {
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.slice(0, this.config.batchSize);
      if (!(await this.#writeWithRetries(batch))) return;
      this.#buffer.splice(0, batch.length);
      for (const item of batch) item.ack();
    }
  }

  /** True once written; false if the writer is stopping before InfluxDB took the batch. */
  async #writeWithRetries(batch: Buffered[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const stopTimer = this.#seconds.startTimer();
      try {
        await this.#lines.write(batch.map((b) => b.line));
        stopTimer();
        this.#points.inc(batch.length);
        if (this.#influxError !== undefined) this.log.info({ event: "influx_back", afterAttempts: attempt }, "InfluxDB takes writes again");
        this.#influxError = undefined;
        return true;
      } catch (error) {
        this.#failures.inc();
        const message = (error as Error).message;
        if (message !== this.#influxError) this.log.warn({ event: "write_failed", err: message, points: batch.length }, "InfluxDB did not take the batch; retrying with backoff");
        this.#influxError = message;
        if (this.#stopping) return false;
        const waited = await sleep(backoffDelay(this.config.retryBaseMs, attempt), true, { signal: this.#abort.signal }).catch(() => false);
        if (!waited) return false;
      }
    }
  }

  #health(): Health {
    const broker = this.#client?.connected === true;
    return {
      healthy: broker && this.#influxError === undefined && !this.#stopping,
      details: { broker: broker ? "connected" : "disconnected", influx: this.#influxError === undefined ? "ok" : `failing: ${this.#influxError}`, buffered: this.#buffer.length },
    };
  }
}
