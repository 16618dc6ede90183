import type { MqttClient } from "mqtt";
import { Counter, Registry } from "prom-client";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readPredictConfig, type PredictConfig } from "../../lib/config.js";
import { deadLetter } from "../../lib/dead-letter.js";
import { InputError } from "../../lib/errors.js";
import { createLogger } from "../../lib/log.js";
import { connectMqtt, mqttSettingsFromEnv, redactUrl } from "../../lib/mqtt.js";
import type { Prediction } from "../../lib/prediction.js";
import { ScoreClient } from "../../lib/score-client.js";
import { features, parseTelemetry, type Telemetry } from "../../lib/telemetry.js";
import { parseJsonBody } from "../../lib/validation.js";

/**
 * predict: scores fan readings and publishes one prediction per reading to the anomaly topic.
 * Takes one reading (what the official MQTT connector sends) or an array (what ours sends when
 * batching). A bad reading is rejected alone and dead-lettered; the rest are scored with one call
 * to the score function. It answers only once the broker acknowledged every publish (QoS 1), so a
 * 200 means the predictions are out.
 */
export interface Rejection {
  index: number;
  error: string;
  field: string;
}

export interface PredictAnswer {
  scored: number;
  rejected: number;
  results: Array<Prediction | Rejection>;
}

interface Predictor {
  config: PredictConfig;
  mqtt: MqttClient;
  score: ScoreClient;
}

const log = createLogger("predict");
const registry = new Registry();
const readings = new Counter({ name: "predict_readings_total", help: "Readings by outcome", labelNames: ["outcome"], registers: [registry] });
let predictor: Predictor | undefined;

export async function init(): Promise<void> {
  const config = readPredictConfig();
  const settings = mqttSettingsFromEnv();
  const mqtt = connectMqtt(settings, {
    clientId: `predict-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    onError: (error) => log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
  });
  mqtt.on("connect", () => log.info({ event: "mqtt_connected", broker: redactUrl(settings.url) }, "connected to the broker"));
  mqtt.on("offline", () => log.warn({ event: "mqtt_offline" }, "broker unreachable; publishes wait for it"));
  const score = new ScoreClient(config.scoreUrl, { timeoutMs: config.scoreTimeoutMs, retries: config.scoreRetries });
  predictor = { config, mqtt, score };
  log.info({ event: "configured", scoreUrl: config.scoreUrl, topics: config.topics, broker: redactUrl(settings.url) }, "predict ready");
}

export async function handler(event: FunctionEvent, context: FunctionContext): Promise<PredictAnswer | Record<string, unknown>> {
  const { config, mqtt, score } = ready();
  if (event.method === "GET") return { broker: mqtt.connected ? "connected" : "disconnected", scoreUrl: config.scoreUrl, topics: config.topics };
  if (event.method !== "POST") {
    context.status(405).headers({ allow: "GET, POST" });
    return { error: `method ${event.method} is not allowed; POST readings`, field: "method" };
  }
  let body: unknown;
  try {
    body = parseJsonBody(event.body);
  } catch (error) {
    await publish(mqtt, config.topics.deadletter, [deadLetter((error as Error).message, topicOf(event, config), event.body ?? "")], config.publishTimeoutMs);
    readings.inc({ outcome: "rejected" });
    throw error;
  }
  const items = Array.isArray(body) ? body : [body];
  if (items.length === 0) throw new InputError("the array of readings is empty", "body");
  if (items.length > config.maxReadings) throw new InputError(`at most ${config.maxReadings} readings per invocation, got ${items.length}`, "body", { status: 413 });

  const topic = topicOf(event, config);
  const valid: Array<{ index: number; telemetry: Telemetry }> = [];
  const results: Array<Prediction | Rejection> = new Array(items.length);
  const letters = [];
  for (const [index, item] of items.entries()) {
    const parsed = parseTelemetry(item);
    if (parsed.ok) valid.push({ index, telemetry: parsed.telemetry });
    else {
      results[index] = { index, error: parsed.error, field: parsed.field };
      letters.push(deadLetter(parsed.error, topic, item));
    }
  }

  const predictions: Prediction[] = [];
  if (valid.length > 0) {
    const answer = await score.score(valid.map((v) => features(v.telemetry)));
    valid.forEach(({ index, telemetry }, i) => {
      const p = answer.predictions[i]!;
      const prediction: Prediction = { deviceID: telemetry.deviceID, fault: p.fault, probability: p.probability };
      if (telemetry.timeStamp !== undefined) prediction.timeStamp = telemetry.timeStamp;
      if (answer.model !== undefined) prediction.model = answer.model;
      predictions.push(prediction);
      results[index] = prediction;
    });
  }
  await Promise.all([publish(mqtt, config.topics.anomaly, predictions, config.publishTimeoutMs), publish(mqtt, config.topics.deadletter, letters, config.publishTimeoutMs)]);
  readings.inc({ outcome: "scored" }, predictions.length);
  readings.inc({ outcome: "rejected" }, letters.length);
  return { scored: predictions.length, rejected: letters.length, results };
}

export async function close(): Promise<void> {
  if (predictor === undefined) return;
  const { mqtt, score } = predictor;
  predictor = undefined;
  await Promise.all([mqtt.endAsync(), score.close()]);
}

export function metrics(): Promise<string> {
  return registry.metrics();
}

/** The connectors say which topic a message came from (X-Topic); default to the telemetry topic. */
function topicOf(event: FunctionEvent, config: PredictConfig): string {
  const header = event.headers["x-topic"];
  return typeof header === "string" && header !== "" ? header : config.topics.telemetry;
}

/** Publishes at QoS 1 and waits for the broker's acknowledgements, or fails after `timeoutMs`. */
async function publish(mqtt: MqttClient, topic: string, messages: readonly object[], timeoutMs: number): Promise<void> {
  if (messages.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`the broker did not acknowledge ${messages.length} publishes to ${topic} within ${timeoutMs} ms`), { status: 503 })), timeoutMs);
  });
  const acknowledged = new Promise<void>((resolve, reject) => {
    let left = messages.length;
    const onAck = (error?: Error) => {
      if (error !== undefined && error !== null) reject(error);
      else if (--left === 0) resolve();
    };
    for (const m of messages) mqtt.publish(topic, JSON.stringify(m), { qos: 1 }, onAck);
  });
  try {
    await Promise.race([acknowledged, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function ready(): Predictor {
  if (predictor === undefined) throw new Error("the predict function was not initialised: init() must run before handler()");
  return predictor;
}
