import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { HealthNotFoundError, InputError, StoreUnavailableError } from "../../lib/errors.js";
import { readEvidence, type EpisodeEvidence, type HealthySample } from "./evidence-read.js";
import { readHistory, type HistoryAnswer, type HistorySource } from "./history.js";
import { parseEvidenceQuery, parseHistoryQuery } from "./history-query.js";
import type { HealthStore } from "./store.js";

/**
 * GET /function/health/history and /function/health/evidence (docs/health.md, "History" and
 * "Evidence"): the gateway passes what follows /function/health as the path. Both read NATS:
 * without NATS_URL they answer 501, while NATS is unreachable 503, for a fan with neither a
 * record nor anything kept 404.
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
): Promise<HistoryAnswer | EpisodeEvidence | HealthySample> {
  // The query first: a bad one is a 400 whatever the state of NATS.
  if (route === "history") {
    const q = parseHistoryQuery(query);
    const source = await sourceOf(deps, route);
    const answer = await fromNats(route, () => readHistory(source, q));
    if (answer !== undefined) return answer;
    await mustKnow(deps.store, q.deviceID);
    return { deviceID: q.deviceID, episodes: [], other: [], cursor: null, truncated: false };
  }
  const q = parseEvidenceQuery(query);
  const source = await sourceOf(deps, route);
  const answer = await fromNats(route, () => readEvidence(source, q));
  if (answer.readings.length === 0) await mustKnow(deps.store, q.deviceID);
  return answer;
}

async function sourceOf(deps: HistoryDeps, route: HistoryRoute): Promise<HistorySource> {
  if (deps.nats === undefined)
    throw new InputError(
      `health keeps the ${route} in NATS JetStream, and runs without NATS_URL (its state in memory); set NATS_URL`,
      "NATS_URL",
      { status: 501, code: "FANWATCH_HISTORY_NEEDS_NATS" },
    );
  const nc = deps.nats.connection;
  if (nc === undefined)
    throw new StoreUnavailableError(`NATS is unreachable (${deps.store.description}); try again later`);
  return fromNats(route, async () => ({ js: jetstream(nc), jsm: await jetstreamManager(nc), site: deps.site }));
}

/** A failed read of NATS is a 503: the caller tries again. */
async function fromNats<T>(route: HistoryRoute, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new StoreUnavailableError(
      `the ${route} could not be read from NATS: ${(error as Error).message}; try again later`,
      {
        cause: error,
      },
    );
  }
}

/** 404 for a fan health has no record of (and nothing kept about). */
async function mustKnow(store: HealthStore, deviceID: string): Promise<void> {
  const fan = store.cached(deviceID) ?? (await store.read(deviceID));
  if (fan === undefined) throw new HealthNotFoundError(deviceID);
}
