import type { MqttConsumer, ReceivedMessage } from "../../lib/mqtt/consumer.js";
import type { GateActions } from "./admission.js";
import type { Routing } from "./routed.js";
import { filtersOverlap, topicMatches } from "../../lib/mqtt/topic-filter.js";

/**
 * One subscribed topic filter's intake: a persistent MQTT session of its own, so that holding back
 * its messages (its function is down) holds back nothing else. MQTT acknowledges and redelivers
 * per session, and a session's only brake is the broker's window and its socket: whatever one
 * session holds stops everything behind it in that session, whatever its topic (measured with
 * bench/isolation: with one session for both filters, readings stopped within a second of health's
 * predictions being held; with one session each, they went on at the offered rate).
 */
export interface IntakeSession {
  /** The filter as configured (without `$share/<group>/`). */
  readonly filter: string;
  readonly clientId: string;
  readonly consumer: MqttConsumer;
  /** Bumped when the session's connection closes: what came on an older one is void. */
  connection: number;
  /** Received with no function to go to yet, waiting for one, in arrival order. */
  held: ReceivedMessage[];
  /** What its messages on their way need: this session's connection and dead letters. */
  readonly routing: Routing;
  /** What the registry's gate does with this session's readings that do not simply pass. */
  readonly gate: GateActions;
}

/**
 * The client id of the session of `filters[index]`. The first filter's session keeps `clientId`
 * as given, so that a connector that had one session for all its filters keeps its queue when it
 * gets one per filter (what that session still holds of the other filters is delivered, and it
 * unsubscribes them: `staleFilters`). The others are `<clientId>.<filter, URI-encoded>`: two filters
 * never get one id, and the id holds no `/`, `+` or `#` (Mosquitto refuses those in a client id
 * that an ACL pattern substitutes, %c). A filter's id changes only if it becomes, or stops being,
 * the first: keep the order of `topic` in a deployment, or a queue is left behind in the old id.
 */
export function sessionClientId(clientId: string, filters: readonly string[], index: number): string {
  return index === 0 ? clientId : `${clientId}.${encodeURIComponent(filters[index] as string)}`;
}

/**
 * The session that owns messages on `topic`: the first whose filter matches it. When filters
 * overlap (`fan/#` and `fan/anomaly`), the broker sends such a message to each session that
 * matches; only its owner routes it, the others acknowledge their copy. Undefined when no filter
 * matches (a subscription an earlier configuration left in a session, not yet dropped).
 */
export function ownerOf<S extends { filter: string }>(sessions: readonly S[], topic: string): S | undefined {
  return sessions.find((s) => topicMatches(s.filter, topic));
}

/** Whether some two of the filters can match one topic (then copies must be told apart: ownerOf). */
export function anyOverlap(filters: readonly string[]): boolean {
  return filters.some((a, i) => filters.slice(i + 1).some((b) => filtersOverlap(a, b)));
}
