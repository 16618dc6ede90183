import type { MqttClient } from "mqtt";
import { Counter, Registry } from "prom-client";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readPredictConfig, type PredictConfig } from "./config.js";
import { deadLetter, FANWATCH_CONNECTOR, sourceTopic, type DeadLetter } from "../../lib/domain/dead-letter.js";
import { BudgetExhaustedError, InputError, ScoreRejectedError } from "../../lib/errors.js";
import { createLogger } from "../../lib/infra/log.js";
import { connectMqtt } from "../../lib/mqtt/client.js";
import { mqttSettingsFromEnv, redactUrl } from "../../lib/mqtt/settings.js";
import { FEATURES } from "../../lib/domain/features.js";
import type { PerSensor, Prediction } from "../../lib/domain/prediction.js";
import { ScoreClient } from "./score-client.js";
import { features, parseTelemetry, type Telemetry } from "../../lib/domain/telemetry.js";
import { parseJsonBody } from "../../lib/infra/validation.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { Publisher } from "../../lib/mqtt/publisher.js";
import { describeImplausible, findImplausible } from "../../lib/domain/plausibility.js";
import { sensorNotice, type SensorNotice } from "../../lib/domain/sensor-notice.js";
import { ShadowComparer } from "./shadow-compare.js";
import { readHealthPolicy } from "../../functions/health/policy.js";
import { ComparisonWriter } from "./comparison-writer.js";
import type { ScoreBatchAnswer } from "./score-client.js";

/**
 * predict: scores fan readings and publishes one prediction per reading to the anomaly topic.
 * Takes one reading (what the official MQTT connector sends) or an array (what ours sends when
 * batching). A bad reading is rejected alone and dead-lettered; one a sensor cannot physically give
 * (findImplausible) is a sensor fault: dead-lettered with FANWATCH_READING_IMPLAUSIBLE, and a
 * SensorNotice on the anomaly topic tells health. The rest are scored with one call
 * to the score function. Readings found faulty are explained with a second call, for those
 * readings only (an explanation costs score about 8 to 14 plain predictions, and most readings
 * are healthy): their predictions carry the `cause` and each sensor's `contributions`. It answers
 * 200 only once the broker acknowledged every publish (QoS 1); the score calls and the publishes
 * share one time budget, and when it runs out, or score is unavailable, the answer is a 503 and
 * the caller (the connector, the one layer that retries) tries again.
 *
 * When score has a shadow model loaded, its answer carries the shadow's verdicts too: predict
 * publishes only the active's, and compares the two (shadow-compare.ts; docs/models.md, "Shadow"),
 * writing the comparison to NATS when NATS_URL is set (comparison-writer.ts).
 */
export interface Rejection {
  index: number;
  error: string;
  field: string;
  /** FANWATCH_READING_IMPLAUSIBLE for a sensor fault; absent for a malformed reading. */
  code?: "FANWATCH_READING_IMPLAUSIBLE";
}

export interface PredictAnswer {
  scored: number;
  rejected: number;
  results: Array<Prediction | Rejection>;
}

interface Predictor {
  config: PredictConfig;
  mqtt: MqttClient;
  publisher: Publisher;
  score: ScoreClient;
  comparer: ShadowComparer;
  writer: ComparisonWriter | undefined;
}

const log = createLogger("predict");
const registry = new Registry();
const readings = new Counter({
  name: "predict_readings_total",
  help: "Readings by outcome",
  labelNames: ["outcome"],
  registers: [registry],
});
const scoreCalls = new Counter({
  name: "predict_score_calls_total",
  help: "Calls to the score function by outcome (one per invocation with valid readings; never retried here)",
  labelNames: ["outcome"],
  registers: [registry],
});
const explainCalls = new Counter({
  name: "predict_explain_calls_total",
  help: "Calls to the score function for explanations by outcome (one per invocation with faulty readings; never retried here)",
  labelNames: ["outcome"],
  registers: [registry],
});
const shadowReadings = new Counter({
  name: "predict_shadow_readings_total",
  help: "Readings scored by a shadow model next to the active one, by shadow",
  labelNames: ["shadow"],
  registers: [registry],
});
const shadowDisagreements = new Counter({
  name: "predict_shadow_disagreements_total",
  help: "Readings on which the shadow's fault differed from the active model's, by shadow",
  labelNames: ["shadow"],
  registers: [registry],
});
let predictor: Predictor | undefined;

/**
 * The body as sent, whatever its content type: parseJsonBody parses it here, so that malformed
 * JSON reaches this handler, and the dead-letter topic, also when it comes as application/json
 * (what the official MQTT connector sends), rather than being answered 400 by the template.
 */
export const rawBody = true;

/** Errors of the shared error contract answered as {"error","code","field"} with their status (docs/errors.md). */
export { errorAnswer } from "../../lib/errors.js";

export async function init(): Promise<void> {
  const config = readPredictConfig();
  for (const name of config.ignored) {
    log.warn(
      { event: "setting_removed", setting: name },
      `${name} no longer has an effect: the connector retries, and predict's score call and publishes share PREDICT_BUDGET_MS`,
    );
  }
  const settings = mqttSettingsFromEnv();
  const mqtt = connectMqtt(settings, {
    clientId: `predict-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    onError: (error) => log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
  });
  mqtt.on("connect", () =>
    log.info({ event: "mqtt_connected", broker: redactUrl(settings.url) }, "connected to the broker"),
  );
  mqtt.on("offline", () =>
    log.warn(
      { event: "mqtt_offline" },
      "broker unreachable; invocations wait for it within their budget, then answer 503",
    ),
  );
  const score = new ScoreClient(config.scoreUrl, { timeoutMs: config.scoreTimeoutMs });
  // The site's health rules (HEALTH_* settings, read as health reads them), so that the comparison judges as health does.
  const comparer = new ShadowComparer({
    site: config.site,
    replica: config.replica,
    maxFans: config.shadowMaxFans,
    policy: readHealthPolicy(),
  });
  const writer =
    config.natsUrl === undefined
      ? undefined
      : new ComparisonWriter({
          url: config.natsUrl,
          everyMs: config.compareEveryMs,
          log,
          current: () => comparer.current(Date.now()),
        });
  await writer?.start();
  predictor = { config, mqtt, publisher: new Publisher(mqtt), score, comparer, writer };
  log.info(
    {
      event: "configured",
      scoreUrl: config.scoreUrl,
      topics: config.topics,
      budgetMs: config.budgetMs,
      scoreTimeoutMs: config.scoreTimeoutMs,
      broker: redactUrl(settings.url),
      comparisons: config.natsUrl === undefined ? "metrics only" : redactUrl(config.natsUrl),
      site: config.site,
      replica: config.replica,
    },
    "predict ready",
  );
}

export async function handler(
  event: FunctionEvent,
  context: FunctionContext,
): Promise<PredictAnswer | Record<string, unknown>> {
  const state = ready();
  const { config, mqtt, publisher } = state;
  if (event.method === "GET")
    return {
      broker: mqtt.connected ? "connected" : "disconnected",
      scoreUrl: config.scoreUrl,
      topics: config.topics,
      // What this replica has seen of a shadow so far (docs/models.md, "Shadow"); null without one.
      shadow: state.comparer.current(Date.now())?.comparison ?? null,
    };
  if (event.method !== "POST") {
    context.headers({ allow: "GET, POST" });
    throw new InputError(`method ${event.method} is not allowed; POST readings`, "method", {
      status: 405,
      code: "FANWATCH_METHOD_NOT_ALLOWED",
    });
  }
  const deadline = Deadline.forCall(event.headers["x-timeout-ms"], config.budgetMs, "predict", "PREDICT_BUDGET_MS");
  const topic = sourceTopic(event.headers, config.topics.telemetry);
  const items = await readItems(event, topic, state, deadline);
  const { valid, results, letters, notices } = sortReadings(items, topic);
  const scored = valid.length === 0 ? undefined : await predictAll(state, valid, results, deadline);
  const predictions = scored?.predictions ?? [];
  await Promise.all([
    publisher.publish(config.topics.anomaly, [...predictions, ...notices], deadline),
    publisher.publish(config.topics.deadletter, letters, deadline),
  ]);
  // Only once published: an invocation that fails is retried by the connector with the same
  // readings, which the comparison would otherwise count again.
  if (scored !== undefined) {
    // The readings are published: a fault in the comparison must not fail the invocation, which
    // the connector would retry, publishing them twice.
    try {
      compareShadow(state.comparer, state.writer, scored.answer, predictions);
    } catch (error) {
      log.error(
        { event: "shadow_compare_failed", err: error },
        "the shadow comparison failed; the readings were published",
      );
    }
  }
  readings.inc({ outcome: "scored" }, predictions.length);
  readings.inc({ outcome: "implausible" }, notices.length);
  readings.inc({ outcome: "rejected" }, letters.length - notices.length);
  return { scored: predictions.length, rejected: letters.length, results };
}

/** The body as a list of items, one per reading; a body that is not JSON is refused (400) and dead-lettered whole. */
async function readItems(
  event: FunctionEvent,
  topic: string,
  { config, publisher }: Predictor,
  deadline: Deadline,
): Promise<unknown[]> {
  let body: unknown;
  try {
    body = parseJsonBody(event.body);
  } catch (error) {
    // Our connector dead-letters what a function answers 4xx to; other callers (the official
    // connector, curl) do not, so predict does it for them: one dead letter per bad message.
    if (event.headers["x-connector"] !== FANWATCH_CONNECTOR) {
      await publisher.publish(
        config.topics.deadletter,
        [deadLetter((error as Error).message, topic, event.body ?? "")],
        deadline,
      );
    }
    readings.inc({ outcome: "rejected" });
    throw error;
  }
  const items: unknown[] = Array.isArray(body) ? body : [body];
  if (items.length === 0) throw new InputError("the array of readings is empty", "body");
  if (items.length > config.maxReadings)
    throw new InputError(`at most ${config.maxReadings} readings per invocation, got ${items.length}`, "body", {
      status: 413,
    });
  return items;
}

interface ValidReading {
  index: number;
  telemetry: Telemetry;
}

/**
 * Valid readings to score, and a rejection (in `results`) and a dead letter for each bad one; for
 * each implausible one also the SensorNotice that tells health of it.
 */
function sortReadings(
  items: unknown[],
  topic: string,
): {
  valid: ValidReading[];
  results: Array<Prediction | Rejection>;
  letters: DeadLetter[];
  notices: SensorNotice[];
} {
  const valid: ValidReading[] = [];
  const results = new Array<Prediction | Rejection>(items.length);
  const letters: DeadLetter[] = [];
  const notices: SensorNotice[] = [];
  for (const [index, item] of items.entries()) {
    const parsed = parseTelemetry(item);
    if (!parsed.ok) {
      results[index] = { index, error: parsed.error, field: parsed.field };
      letters.push(deadLetter(parsed.error, topic, item));
      continue;
    }
    const telemetry = parsed.telemetry;
    // The default limits: a fan's own (its registry record's `limits`) are the connector's to apply.
    const implausible = findImplausible(telemetry);
    if (implausible === undefined) {
      valid.push({ index, telemetry });
      continue;
    }
    const code = "FANWATCH_READING_IMPLAUSIBLE";
    const error = describeImplausible(implausible);
    results[index] = { index, error, field: implausible.sensor, code };
    letters.push(deadLetter(error, topic, item, new Date(), code));
    notices.push(sensorNotice(telemetry.deviceID, telemetry.timeStamp, implausible));
  }
  return { valid, results, letters, notices };
}

/** Scores the valid readings with one call, explains the faulty ones, and puts each prediction in its place in `results`. */
async function predictAll(
  { score }: Predictor,
  valid: ValidReading[],
  results: Array<Prediction | Rejection>,
  deadline: Deadline,
): Promise<{ predictions: Prediction[]; answer: ScoreBatchAnswer }> {
  const answer = await within(
    scoreCalls,
    score.score(
      valid.map((v) => features(v.telemetry)),
      deadline.signal,
    ),
    deadline,
    "the score function",
  );
  const predictions: Prediction[] = [];
  valid.forEach(({ index, telemetry }, i) => {
    const p = answer.predictions[i]!;
    const prediction: Prediction = { deviceID: telemetry.deviceID, fault: p.fault, probability: p.probability };
    if (telemetry.timeStamp !== undefined) prediction.timeStamp = telemetry.timeStamp;
    if (answer.model !== undefined) prediction.model = answer.model;
    prediction.reading = readingOf(telemetry);
    predictions.push(prediction);
    results[index] = prediction;
  });
  await explainFaults(score, predictions, deadline);
  return { predictions, answer };
}

/**
 * The shadow's verdicts next to the active's published predictions: counted, and handed to the
 * comparer. A shadow answer of the wrong length is score's bug; it is logged and left out, never
 * a reason to fail the readings.
 */
function compareShadow(
  comparer: ShadowComparer,
  writer: ComparisonWriter | undefined,
  answer: ScoreBatchAnswer,
  predictions: Prediction[],
): void {
  const shadow = answer.shadow;
  if (shadow === undefined || answer.model === undefined) return;
  if (shadow.predictions.length !== predictions.length) {
    log.warn(
      {
        event: "shadow_answer_mismatch",
        shadow: shadow.model,
        got: shadow.predictions.length,
        want: predictions.length,
      },
      "the score function answered a shadow of another length than the batch; not compared",
    );
    return;
  }
  const pairs = predictions.map((active, i) => ({ active, shadow: shadow.predictions[i]! }));
  const disagreed = pairs.filter((p) => p.active.fault !== p.shadow.fault).length;
  shadowReadings.inc({ shadow: shadow.model }, pairs.length);
  shadowDisagreements.inc({ shadow: shadow.model }, disagreed);
  const ended = comparer.observe(
    { active: answer.model, shadow: shadow.model, pairs, timing: answer.timing },
    Date.now(),
  );
  if (ended !== undefined) writer?.keepEnded(ended);
}

export async function close(): Promise<void> {
  if (predictor === undefined) return;
  const { mqtt, score, writer } = predictor;
  predictor = undefined;
  score.close();
  // The comparison's last totals: written once more, so that compare and the gates count every reading.
  await writer?.drain();
  await mqtt.endAsync();
}

export function metrics(): Promise<string> {
  return registry.metrics();
}

/**
 * Adds score's explanation to the faulty predictions: one more call, for those readings only,
 * within the same budget and under the same rule as the first (no retry; failing fails the
 * invocation, so that a faulty prediction is never published without its cause).
 */
async function explainFaults(score: ScoreClient, predictions: Prediction[], deadline: Deadline): Promise<void> {
  const faulty = predictions.filter((p) => p.fault === 1);
  if (faulty.length === 0) return;
  const instances = faulty.map((p) => FEATURES.map((f) => (p.reading as PerSensor)[f]));
  const answer = await within(
    explainCalls,
    score.explain(instances, deadline.signal),
    deadline,
    `the score function to explain ${instances.length} faulty readings`,
  );
  faulty.forEach((prediction, i) => {
    const { cause, contributions } = answer.predictions[i]!;
    prediction.cause = cause;
    prediction.contributions = contributions;
  });
}

/** One call, no retry, within what is left of the budget; counted by outcome. */
async function within<T>(
  calls: Counter<"outcome">,
  call: Promise<T>,
  deadline: Deadline,
  waitingFor: string,
): Promise<T> {
  try {
    const answer = await deadline.wait(call, waitingFor);
    calls.inc({ outcome: "ok" });
    return answer;
  } catch (error) {
    calls.inc({
      outcome:
        error instanceof BudgetExhaustedError
          ? "out_of_time"
          : error instanceof ScoreRejectedError
            ? "rejected"
            : "unavailable",
    });
    throw error;
  }
}

/** The values scored, by name, in FEATURES order (the order of the published JSON's keys). */
function readingOf(telemetry: Telemetry): PerSensor {
  const reading = {} as PerSensor;
  for (const f of FEATURES) reading[f] = telemetry[f];
  return reading;
}

function ready(): Predictor {
  if (predictor === undefined)
    throw new Error("the predict function was not initialised: init() must run before handler()");
  return predictor;
}
