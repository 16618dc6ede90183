import { setTimeout as sleep } from "node:timers/promises";
import type { MqttClient } from "mqtt";
import type { FunctionContext, FunctionEvent } from "../../templates/node22-ts/types.js";
import { readHealthConfig, type HealthConfig } from "./config.js";
import { deadLetter, FANWATCH_CONNECTOR, sourceTopic } from "../../lib/domain/dead-letter.js";
import { FanwatchError, HealthNotFoundError, InputError, StoreUnavailableError } from "../../lib/errors.js";
import type { AlarmTransition, HealthRecord } from "../../lib/domain/health.js";
import { createLogger } from "../../lib/infra/log.js";
import { connectMqtt } from "../../lib/mqtt/client.js";
import { mqttSettingsFromEnv, redactUrl } from "../../lib/mqtt/settings.js";
import { Deadline } from "../../lib/infra/deadline.js";
import { Publisher } from "../../lib/mqtt/publisher.js";
import { parseJsonBody, toInputError } from "../../lib/infra/validation.js";
import { canAct, USER_HEADER, verifyUser } from "../../lib/infra/signed-user.js";
import { acknowledge, evaluate, maintain, shelve, type MaintenancePlan } from "./evaluator.js";
import { assign, comment, recordFinding } from "./episode-notes.js";
import { FanUpdater, type HealthEventLog } from "./fan-updates.js";
import {
  AcknowledgeSchema,
  ACTIONS,
  AssignActionSchema,
  CommentActionSchema,
  FindingActionSchema,
  groupByFan,
  isCommand,
  MaintenanceSchema,
  MAX_MAINTENANCE_FANS,
  ShelveSchema,
} from "./inputs.js";
import { EvidenceRecorder } from "./evidence.js";
import type { EpisodeEvidence, HealthySample } from "./evidence-read.js";
import type { HistoryAnswer } from "./history.js";
import { historyGet, historyRoute } from "./history-route.js";
import { BaselinePublisher } from "./baseline-publisher.js";
import { baselineGet, isBaselineRoute } from "./baseline-route.js";
import type { PublishedBaseline } from "../../lib/domain/baseline.js";
import { HealthMetrics } from "./metrics.js";
import { readHealthPolicy, type HealthPolicy } from "./policy.js";
import { listFans, parseQuery, type HealthListing } from "./query.js";
import { SilenceTimer } from "./silence.js";
import { RetiredFans } from "./retired.js";
import type { HealthStore } from "./store.js";
import { MemoryStore } from "./store-memory.js";
import { NatsStore } from "./store-nats.js";

/**
 * health: evaluates the predictions on the anomaly topic into one health record per fan, kept in
 * a NATS key-value bucket with compare-and-set (fan-updates.ts), and publishes each transition at
 * QoS 1 on the alarm topic and appends it to the event stream FAN_HEALTH_EVENTS. GET lists the
 * records; POST takes predictions (one or an array, what our connector sends) or an action:
 * acknowledge, shelve, maintenance, and the notes comment, assign, finding (with PAGE_USER_SECRET
 * set, only from the page's signed-in users who may act). A bad prediction is rejected alone and
 * dead-lettered. While NATS or the broker is unreachable the answer is a 503 and the connector
 * tries again; a batch it sends again is recognised and not counted twice.
 */
export interface EvaluateAnswer {
  evaluated: number;
  rejected: number;
  transitions: number;
}

/** What acknowledge, shelve and the notes answer: the fan's record after the action, and the transition it made. */
export interface AcknowledgeAnswer {
  record: HealthRecord;
  transition: AlarmTransition;
}

/** What maintenance answers: each fan's record, and the transitions made (none for a fan that had this very window already). */
export interface MaintenanceAnswer {
  records: HealthRecord[];
  transitions: AlarmTransition[];
}

interface Health {
  config: HealthConfig;
  policy: HealthPolicy;
  mqtt: MqttClient;
  publisher: Publisher;
  store: HealthStore;
  updater: FanUpdater;
  silence: SilenceTimer;
  /** With NATS: the store that holds the connection the history reads through, and the evidence writer. */
  nats: NatsStore | undefined;
  evidence: EvidenceRecorder | undefined;
  /** With NATS: which fans the device registry says are retired. */
  retired: RetiredFans | undefined;
  /** With NATS: publishes the fans' baselines in fan_baselines. */
  baselines: BaselinePublisher | undefined;
}

const log = createLogger("health");
/**
 * How long init() waits for the health bucket to open: long enough for NATS that is there (a
 * connection and the bucket's fans take milliseconds to a few hundred), short enough that health
 * is alive well within OpenFaaS's liveness budget when NATS is not.
 */
const INIT_NATS_WAIT_MS = 1_000;
let health: Health | undefined;

/**
 * The body as sent, whatever its content type: parseJsonBody parses it here, so that malformed
 * JSON reaches this handler, and the dead-letter topic, also when it comes as application/json
 * (what the official MQTT connector sends), rather than being answered 400 by the template.
 */
export const rawBody = true;

/** Errors of the shared error contract answered as {"error","code","field"} with their status (docs/errors.md). */
export { errorAnswer } from "../../lib/errors.js";
const counters = new HealthMetrics(() =>
  health === undefined ? {} : listFans(records(health.store, health.retired), parseQuery({})).counts,
);

export async function init(): Promise<void> {
  const config = readHealthConfig();
  const policy = readHealthPolicy();
  const settings = mqttSettingsFromEnv();
  const mqtt = connectMqtt(settings, {
    clientId: `health-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    onError: (error) => log.warn({ event: "mqtt_error", err: error.message }, "MQTT error"),
  });
  mqtt.on("connect", () =>
    log.info({ event: "mqtt_connected", broker: redactUrl(settings.url) }, "connected to the broker"),
  );
  mqtt.on("offline", () =>
    log.warn(
      { event: "mqtt_offline" },
      "broker unreachable; transitions wait in their fans' outboxes, invocations answer 503",
    ),
  );
  let store: HealthStore;
  // The event stream lives in NATS: the memory store has none.
  let events: HealthEventLog | undefined;
  let natsStore: NatsStore | undefined;
  let evidence: EvidenceRecorder | undefined;
  if (config.natsUrl === undefined) {
    store = new MemoryStore();
    log.warn(
      { event: "store_memory" },
      "NATS_URL is not set: fan health is kept in memory and is lost when health stops (not durable)",
    );
  } else {
    const nats = new NatsStore({
      url: config.natsUrl,
      bucket: config.bucket,
      replicas: config.kvReplicas,
      requestTimeoutMs: config.natsTimeoutMs,
      historyMaxAgeMs: config.historyMaxAgeMs,
      log,
    });
    // Waited for a moment only: where NATS is there the store is open before the first request;
    // where it is not, health is alive anyway and says what it waits for at /_/ready (waitingFor
    // below), the store opening in the background for as long as NATS takes (calls answer 503
    // meanwhile). A longer wait would hold the watchdog's /_/health at 503, and OpenFaaS restarts a
    // function whose /_/health fails three times from 2 s after its start (liveness).
    await Promise.race([
      nats.opened(),
      sleep(Math.min(INIT_NATS_WAIT_MS, config.natsTimeoutMs), undefined, { ref: false }),
    ]);
    store = nats;
    events = nats;
    natsStore = nats;
    evidence = new EvidenceRecorder({
      site: config.site,
      maxAgeMs: config.historyMaxAgeMs,
      replicas: config.kvReplicas,
      timeoutMs: config.natsTimeoutMs,
      connection: () => nats.connection,
      registry: counters.registry,
      log,
    });
  }
  // With NATS, each fan's baseline is published in fan_baselines (baseline-publisher.ts).
  const baselines =
    natsStore === undefined
      ? undefined
      : new BaselinePublisher({
          connection: () => natsStore.connection,
          replicas: config.kvReplicas,
          policy,
          log,
          writes: counters.baselinePublishes,
        });
  // Not waiting for a broker that is away: transitions wait in their fans' outboxes instead.
  const publisher = new Publisher(mqtt, { waitForConnection: false });
  const updater = new FanUpdater(store, publisher, {
    alarmTopic: config.topics.alarm,
    site: config.site,
    events,
    casAttempts: config.casAttempts,
    resendMs: config.outboxResendMs,
    recentBatches: 16,
    now: Date.now,
    log,
    metrics: counters,
    onWritten: baselines === undefined ? undefined : (id, before, after) => baselines.written(id, before, after),
  });
  // With NATS, the device registry says which fans are retired: no silence, no alarm for them.
  const retired = config.natsUrl === undefined ? undefined : new RetiredFans(config.natsUrl, config.kvReplicas, log);
  // As for the store: a moment, so that a retired fan's first predictions after a start are not
  // taken for an active fan's while the registry is read (it goes on in the background after).
  if (retired !== undefined)
    await Promise.race([
      retired.opened(),
      sleep(Math.min(INIT_NATS_WAIT_MS, config.natsTimeoutMs), undefined, { ref: false }),
    ]);
  const silence = new SilenceTimer({
    store,
    updater,
    policy,
    intervalMs: config.silentCheckMs,
    budgetMs: config.budgetMs,
    resendMs: config.outboxResendMs,
    log,
    ...(retired === undefined ? {} : { retired: (id: string) => retired.isRetired(id) }),
  });
  silence.start();
  health = { config, policy, mqtt, publisher, store, updater, silence, nats: natsStore, evidence, retired, baselines };
  log.info(
    {
      event: "configured",
      store: store.description,
      nats: config.natsUrl === undefined ? undefined : redactUrl(config.natsUrl),
      topics: config.topics,
      site: config.site,
      budgetMs: config.budgetMs,
      broker: redactUrl(settings.url),
    },
    `health ready; state in ${store.description}`,
  );
}

export async function handler(
  event: FunctionEvent,
  context: FunctionContext,
): Promise<
  | EvaluateAnswer
  | AcknowledgeAnswer
  | MaintenanceAnswer
  | HealthListing
  | HistoryAnswer
  | EpisodeEvidence
  | HealthySample
  | PublishedBaseline
  | Record<string, unknown>
> {
  const h = ready();
  if (event.method === "GET") {
    // /history and /evidence: a fan's story, read from NATS (history-route.ts).
    const route = historyRoute(event.path);
    if (route !== undefined) {
      const budget = Deadline.forCall(event.headers["x-timeout-ms"], h.config.budgetMs, "health", "HEALTH_BUDGET_MS");
      return historyGet(route, { store: h.store, nats: h.nats, site: h.config.site }, event.query, budget);
    }
    if (isBaselineRoute(event.path)) return baselineGet(h.store, h.policy, event.query);
    const query = parseQuery(event.query);
    if (!h.store.available)
      throw new StoreUnavailableError(`the health store is unavailable (${h.store.description}); try again later`);
    return listFans(records(h.store, h.retired), query);
  }
  if (event.method !== "POST") {
    context.headers({ allow: "GET, POST" });
    throw new InputError(
      `method ${event.method} is not allowed; GET the fans' health, POST predictions or an action (${Object.keys(ACTIONS).join(", ")})`,
      "method",
      { status: 405, code: "FANWATCH_METHOD_NOT_ALLOWED" },
    );
  }
  const budget = Deadline.forCall(event.headers["x-timeout-ms"], h.config.budgetMs, "health", "HEALTH_BUDGET_MS");
  const topic = sourceTopic(event.headers, h.config.topics.anomaly);
  let body: unknown;
  try {
    body = parseJsonBody(event.body);
  } catch (error) {
    // Our connector dead-letters what a function answers 4xx to; other callers do not (as predict).
    if (event.headers["x-connector"] !== FANWATCH_CONNECTOR)
      await h.publisher.publish(
        h.config.topics.deadletter,
        [deadLetter((error as Error).message, topic, event.body ?? "")],
        budget,
      );
    counters.predictions.inc({ outcome: "rejected" });
    throw error;
  }
  if (isCommand(body)) return command(h, body as ActionBody, event, budget);
  return evaluatePredictions(h, body, topic, budget).catch((error: unknown) => {
    // Refused for want of NATS or the broker (or time): the connector sends them again later, so
    // until then the fans' silence is this process's, not theirs (silence.ts).
    if (error instanceof FanwatchError && error.status === 503) h.silence.missed(Date.now());
    throw error;
  });
}

async function evaluatePredictions(h: Health, body: unknown, topic: string, budget: Deadline): Promise<EvaluateAnswer> {
  const items = Array.isArray(body) ? body : [body];
  if (items.length === 0) throw new InputError("the array of predictions is empty", "body");
  if (items.length > h.config.maxPredictions)
    throw new InputError(`at most ${h.config.maxPredictions} predictions per invocation, got ${items.length}`, "body", {
      status: 413,
    });
  // Checked before anything is published, so that the connector's retry dead-letters nothing twice.
  if (!h.store.available)
    throw new StoreUnavailableError(`the health store is unavailable (${h.store.description}); try again later`);
  const now = Date.now();
  const grouped = groupByFan(items, now);
  const { rejections } = grouped;
  // A retired fan raises nothing: its predictions (the connector lets none through; a stray one
  // still may come) are left unevaluated, counted, and not dead-lettered: they are not malformed.
  const fans = grouped.fans.filter((fan) => h.retired?.isRetired(fan.deviceID) !== true);
  const ignored = grouped.fans
    .filter((fan) => !fans.includes(fan))
    .reduce((n, fan) => n + fan.inputs.length + fan.notices.length, 0);
  if (ignored > 0) counters.predictions.inc({ outcome: "retired" }, ignored);
  const valid = grouped.valid - ignored;
  const letters = rejections.map((r) => deadLetter(r.error, topic, r.item));
  // Fans are independent: evaluated and written concurrently, one write each (fan-updates.ts).
  const [updates] = await Promise.all([
    Promise.allSettled(
      fans.map((fan) =>
        h.updater.apply(
          fan.deviceID,
          (current) => evaluate(current, fan.deviceID, fan.inputs, now, h.policy, fan.notices),
          budget,
          fan.digest,
        ),
      ),
    ),
    h.publisher.publish(h.config.topics.deadletter, letters, budget),
  ]);
  counters.predictions.inc({ outcome: "rejected" }, letters.length);
  // The readings kept for training, for each fan written (evidence.ts): never fails the invocation,
  // nor keeps it past its budget (what is still under way then goes on unwaited for).
  const evidence = h.evidence;
  if (evidence !== undefined)
    await budget
      .wait(
        Promise.all(
          updates.map((u, i) => {
            const fan = fans[i];
            if (u.status === "rejected" || fan === undefined) return Promise.resolve();
            return evidence.record({ deviceID: fan.deviceID, inputs: fan.inputs, ...u.value });
          }),
        ),
        "JetStream to store the evidence",
      )
      .catch(() => undefined);
  let transitions = 0;
  let failure: { reason: unknown } | undefined;
  updates.forEach((u, i) => {
    const size = (fans[i]?.inputs.length ?? 0) + (fans[i]?.notices.length ?? 0);
    if (u.status === "rejected") failure ??= { reason: u.reason };
    else {
      transitions += u.value.transitions.length;
      counters.predictions.inc({ outcome: u.value.duplicate ? "duplicate" : "evaluated" }, size);
    }
  });
  // Fans written stay written: the retry of this batch finds their digests and skips them.
  if (failure !== undefined) throw failure.reason;
  return { evaluated: valid, rejected: rejections.length, transitions };
}

/** A body with an `action` (isCommand), before its action's schema checks it. */
type ActionBody = { action?: unknown; deviceIDs?: unknown; by?: unknown } & Record<string, unknown>;

/** An action on fans: what people do about their health (docs/health.md, "Actions"). */
function command(
  h: Health,
  body: ActionBody,
  event: FunctionEvent,
  budget: Deadline,
): Promise<AcknowledgeAnswer | MaintenanceAnswer> {
  const action = body.action;
  if (typeof action !== "string" || !Object.hasOwn(ACTIONS, action))
    throw new InputError(
      `unknown action ${JSON.stringify(action)}; the actions are ${Object.values(ACTIONS).join(", ")}`,
      "action",
    );
  const signed = signedBody(h, action, body, event);
  switch (action as keyof typeof ACTIONS) {
    case "acknowledge":
      return acknowledgeAlarm(h, signed, budget);
    case "shelve":
      return shelveAlarm(h, signed, budget);
    case "maintenance":
      return planMaintenance(h, signed, budget);
    case "comment":
      return commentEpisode(h, signed, budget);
    case "assign":
      return assignEpisode(h, signed, budget);
    case "finding":
      return findingOfEpisode(h, signed, budget);
  }
}

/**
 * Who acts. Without PAGE_USER_SECRET, whoever the body's `by` names (`npm start` on loopback,
 * tests). With it, only a user the page signed (USER_HEADER) whose role may act, and `by` is that
 * user's name whatever the body says: no other caller can act in someone's name. The signature
 * covers the raw body as received, so a captured header carries no other action. A refusal is
 * logged with its reason, never with the header's value (a credential for that action, a minute).
 */
function signedBody(h: Health, action: string, body: ActionBody, event: FunctionEvent): ActionBody {
  const secret = h.config.userSecret;
  if (secret === undefined) return body;
  const header = event.headers[USER_HEADER];
  const raw = Buffer.isBuffer(event.body) ? event.body : Buffer.alloc(0);
  const verified = verifyUser(typeof header === "string" ? header : undefined, secret, raw);
  if ("error" in verified) {
    log.warn(
      { event: "action_refused", action, status: 401, reason: verified.error },
      `${action} refused: ${verified.error}`,
    );
    throw new InputError(
      `${verified.error}: health takes actions only from the page's signed-in users (PAGE_USER_SECRET is set)`,
      USER_HEADER,
      { status: 401, code: "FANWATCH_UNAUTHENTICATED" },
    );
  }
  const { name, role } = verified.user;
  if (!canAct(role)) {
    const reason = `${name} is a ${role}; only engineers and admins act on fans`;
    log.warn(
      { event: "action_refused", action, status: 403, user: name, role, reason },
      `${action} refused: ${reason}`,
    );
    throw new InputError(reason, USER_HEADER, { status: 403, code: "FANWATCH_FORBIDDEN" });
  }
  if (body.by !== undefined && body.by !== name)
    log.info(
      { event: "by_ignored", action, user: name },
      `${action} by the signed user ${name}: the body's "by" is ignored`,
    );
  return { ...body, by: name };
}

async function acknowledgeAlarm(h: Health, body: unknown, budget: Deadline): Promise<AcknowledgeAnswer> {
  const parsed = AcknowledgeSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `an acknowledgement is ${ACTIONS.acknowledge}`);
  const { deviceID, by, note } = parsed.data;
  storeAvailable(h);
  const now = Date.now();
  // No such fan (404) or nothing to acknowledge (409) throw input errors, answered by errorAnswer.
  return oneTransition(
    await h.updater.apply(deviceID, (current) => acknowledge(current, deviceID, by, note, now), budget),
    `acknowledging fan ${deviceID}`,
  );
}

async function shelveAlarm(h: Health, body: unknown, budget: Deadline): Promise<AcknowledgeAnswer> {
  const parsed = ShelveSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `a shelving is ${ACTIONS.shelve}`);
  const { deviceID, until, by, note } = parsed.data;
  const now = Date.now();
  if (until <= now) throw new InputError(`until (${new Date(until).toISOString()}) is not in the future`, "until");
  storeAvailable(h);
  // No such fan (404) or nothing open to shelve (409) throw input errors.
  return oneTransition(
    await h.updater.apply(deviceID, (current) => shelve(current, deviceID, { until, by, note }, now), budget),
    `shelving fan ${deviceID}`,
  );
}

/**
 * A maintenance window for several fans: refused whole (404, naming the unknown IDs) before any
 * fan is changed when one of them is unknown. Each fan is written on its own; a 503 halfway leaves
 * some written, and the same request again changes only the rest (the same window is no change).
 */
async function planMaintenance(h: Health, body: { deviceIDs?: unknown }, budget: Deadline): Promise<MaintenanceAnswer> {
  if (Array.isArray(body.deviceIDs) && body.deviceIDs.length > MAX_MAINTENANCE_FANS)
    throw new InputError(
      `at most ${MAX_MAINTENANCE_FANS} fans per maintenance request, got ${body.deviceIDs.length}; send several`,
      "deviceIDs",
      { status: 413 },
    );
  const parsed = MaintenanceSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `a maintenance window is ${ACTIONS.maintenance}`);
  const { until, by, note } = parsed.data;
  const now = Date.now();
  const from = parsed.data.from ?? now;
  if (until <= from)
    throw new InputError(
      `the maintenance window ends (${new Date(until).toISOString()}) before it starts (${new Date(from).toISOString()})`,
      "until",
    );
  if (until <= now) throw new InputError(`until (${new Date(until).toISOString()}) is not in the future`, "until");
  storeAvailable(h);
  const ids = [...new Set(parsed.data.deviceIDs)];
  const known = await Promise.all(
    ids.map(async (id) =>
      h.store.cached(id) !== undefined
        ? true
        : (await budget.wait(h.store.read(id), `the health store to read fan ${id}`)) !== undefined,
    ),
  );
  const unknown = ids.filter((_, i) => !known[i]);
  if (unknown.length > 0) throw new HealthNotFoundError(unknown, "deviceIDs");
  const plan: MaintenancePlan = { from, until, by, note };
  const results = await Promise.allSettled(
    ids.map((id) => h.updater.apply(id, (current) => maintain(current, id, plan, now), budget)),
  );
  const records: HealthRecord[] = [];
  const transitions: AlarmTransition[] = [];
  for (const result of results) {
    if (result.status === "rejected") throw result.reason;
    if (result.value.record !== undefined) records.push(result.value.record);
    transitions.push(...result.value.transitions);
  }
  return { records, transitions };
}

async function commentEpisode(h: Health, body: unknown, budget: Deadline): Promise<AcknowledgeAnswer> {
  const parsed = CommentActionSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `a comment is ${ACTIONS.comment}`);
  const { deviceID, alarmId, note, by } = parsed.data;
  storeAvailable(h);
  const now = Date.now();
  // No such fan or episode (404) throw input errors.
  return oneTransition(
    await h.updater.apply(deviceID, (current) => comment(current, deviceID, alarmId, { note, by }, now), budget),
    `commenting on fan ${deviceID}`,
  );
}

async function assignEpisode(h: Health, body: unknown, budget: Deadline): Promise<AcknowledgeAnswer> {
  const parsed = AssignActionSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `an assignment is ${ACTIONS.assign}`);
  const { deviceID, alarmId, to, by } = parsed.data;
  storeAvailable(h);
  const now = Date.now();
  return oneTransition(
    await h.updater.apply(deviceID, (current) => assign(current, deviceID, alarmId, { to, by }, now), budget),
    `assigning fan ${deviceID}`,
  );
}

async function findingOfEpisode(h: Health, body: unknown, budget: Deadline): Promise<AcknowledgeAnswer> {
  const parsed = FindingActionSchema.safeParse(body);
  if (!parsed.success) throw toInputError(parsed.error, "", `a finding is ${ACTIONS.finding}`);
  const { deviceID, alarmId, action: _, ...finding } = parsed.data;
  storeAvailable(h);
  const now = Date.now();
  // No such fan or episode (404), or an open episode nobody acknowledged (409), throw input errors.
  return oneTransition(
    await h.updater.apply(deviceID, (current) => recordFinding(current, deviceID, alarmId, finding, now), budget),
    `recording a finding on fan ${deviceID}`,
  );
}

function storeAvailable(h: Health): void {
  if (!h.store.available)
    throw new StoreUnavailableError(`the health store is unavailable (${h.store.description}); try again later`);
}

function oneTransition(result: { record: HealthRecord | undefined; transitions: AlarmTransition[] }, what: string) {
  const transition = result.transitions[0];
  if (result.record === undefined || transition === undefined) throw new Error(`${what} made no transition`);
  return { record: result.record, transition };
}

export async function close(): Promise<void> {
  if (health === undefined) return;
  const { silence, store, mqtt, retired, baselines } = health;
  health = undefined;
  baselines?.close();
  await silence.stop();
  await retired?.close();
  await store.close();
  await mqtt.endAsync();
}

/**
 * What health waits for before it can answer calls (the template's /_/ready names it): NATS, while
 * the health bucket is not open or NATS is unreachable, since every call reads or writes it. Not
 * the broker: without it the fans' list (the page's view) is still answered from NATS and
 * predictions wait in the connector, so taking health out of service would only hide the fleet.
 */
export function waitingFor(): string[] {
  if (health === undefined || health.store.available) return [];
  return [`NATS (${health.store.description})`];
}

export function metrics(): Promise<string> {
  return counters.registry.metrics();
}

/** The fans' records, retired fans left out: they are gone from the list and its counts (their history stays). */
function* records(store: HealthStore, retired: RetiredFans | undefined): Iterable<HealthRecord> {
  for (const fan of store.fans()) {
    const entry = fan.entry;
    if (entry !== null && retired?.isRetired(fan.deviceID) !== true) yield entry.health.record;
  }
}

function ready(): Health {
  if (health === undefined)
    throw new Error("the health function was not initialised: init() must run before handler()");
  return health;
}
