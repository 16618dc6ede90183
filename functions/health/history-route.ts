import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { BudgetExhaustedError, HealthNotFoundError, InputError, StoreUnavailableError } from "../../lib/errors.js";
import type { Deadline } from "../../lib/infra/deadline.js";
import { readEvidence, type EpisodeEvidence, type HealthySample } from "./evidence-read.js";
import { episodeInHistory, readHistory, type HistoryAnswer, type HistorySource } from "./history.js";
import { parseEvidenceQuery, parseHistoryQuery } from "./history-query.js";
import type { HealthStore, StoredFan } from "./store.js";

/**
 * GET /function/health/history and /function/health/evidence (docs/health.md, "History" and
 * "Evidence"): the gateway passes what follows /function/health as the path. Both read NATS:
 * without NATS_URL they answer 501, while NATS is unreachable or the call's time runs out 503,
 * for a fan with neither a record nor anything kept 404, for an episode the fan never had 404.
 */
export type HistoryRoute = "history" | "evidence";

export function historyRoute(path: string): HistoryRoute | undefined {
  const name = path.replace(/\/+$/, "");
  return name === "/history" ? "history" : name === "/evidence" ? "evidence" : undefined;
}

export interface HistoryDeps {
  store: HealthStore;
  /** Health's NATS connection while it is up; undefined as a value without NATS_URL. */
  nats: { readonly connection: NatsConnection | undefined } | undefined;
  site: string;
}

export async function historyGet(
  route: HistoryRoute,
  deps: HistoryDeps,
  query: Record<string, string | string[] | undefined>,
  deadline: Deadline,
): Promise<HistoryAnswer | EpisodeEvidence | HealthySample> {
  // The query first: a bad one is a 400 whatever the state of NATS.
  if (route === "history") {
    const q = parseHistoryQuery(query);
    const source = await sourceOf(deps, route, deadline);
    const answer = await fromNats(route, () => readHistory(source, q));
    if (answer !== undefined) return answer;
    await mustKnow(deps.store, q.deviceID);
    return { deviceID: q.deviceID, episodes: [], other: [], cursor: null, truncated: false };
  }
  const q = parseEvidenceQuery(query);
  const source = await sourceOf(deps, route, deadline);
  const answer = await fromNats(route, () => readEvidence(source, q));
  if (answer.readings.length > 0) return answer;
  const fan = await mustKnow(deps.store, q.deviceID);
  if (q.kind === "episode") {
    // Nothing kept: an episode just opened, or none at all (as the actions, docs/health.md).
    const episodes = fan.entry?.health.tracker.episodes ?? [];
    const known =
      fan.entry?.health.record.alarmId === q.alarmId ||
      episodes.includes(q.alarmId) ||
      (await fromNats(route, () => episodeInHistory(source, q.deviceID, q.alarmId)));
    if (!known)
      throw new InputError(
        `fan "${q.deviceID}" has no episode ${JSON.stringify(q.alarmId)} in its history; its episodes' alarmIds are in GET /function/health/history?deviceID=${encodeURIComponent(q.deviceID)}`,
        "alarmId",
        { status: 404, code: "FANWATCH_HEALTH_NOT_FOUND" },
      );
  }
  return answer;
}

async function sourceOf(deps: HistoryDeps, route: HistoryRoute, deadline: Deadline): Promise<HistorySource> {
  if (deps.nats === undefined)
    throw new InputError(
      `health keeps the ${route} in NATS JetStream, and runs without NATS_URL (its state in memory); set NATS_URL`,
      "NATS_URL",
      { status: 501, code: "FANWATCH_HISTORY_NEEDS_NATS" },
    );
  const nc = deps.nats.connection;
  if (nc === undefined)
    throw new StoreUnavailableError(`NATS is unreachable (${deps.store.description}); try again later`);
  return fromNats(route, async () => ({
    js: jetstream(nc),
    jsm: await deadline.wait(jetstreamManager(nc), "NATS JetStream"),
    site: deps.site,
    deadline,
  }));
}

/** A failed read of NATS is a 503: the caller tries again. */
async function fromNats<T>(route: HistoryRoute, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof BudgetExhaustedError) throw error;
    throw new StoreUnavailableError(
      `the ${route} could not be read from NATS: ${(error as Error).message}; try again later`,
      {
        cause: error,
      },
    );
  }
}

/** The fan's stored health; 404 for a fan health has no record of (and nothing kept about). */
async function mustKnow(store: HealthStore, deviceID: string): Promise<StoredFan> {
  const fan = store.cached(deviceID) ?? (await store.read(deviceID));
  if (fan === undefined) throw new HealthNotFoundError(deviceID);
  return fan;
}
