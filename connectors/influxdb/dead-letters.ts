import { DEAD_LETTER_PAYLOAD_LIMIT } from "../../lib/domain/dead-letter.js";
import { UsageError } from "../../lib/errors.js";
import type { InfluxTarget } from "./config.js";
import { influxQuery } from "./influx-http.js";

/** A dead letter as stored (points.ts, measurement `deadletter`); no topic when what arrived was not a dead letter. */
export interface StoredDeadLetter {
  /** RFC 3339, as InfluxDB returns it (nanoseconds). */
  time: string;
  /** The topic the rejected message came from, in full (the field `sourceTopic`; the tag is normalised). */
  topic: string | undefined;
  /** The refusal's FANWATCH_* error code, when the refuser gave one. */
  code?: string;
  error: string;
  payload: string;
}

/** An InfluxQL duration literal, e.g. 90s, 30m, 1h, 7d. */
export const DURATION = /^[1-9]\d*(s|m|h|d|w)$/;

/** The newest `limit` dead letters of the last `since`, oldest first, and how many the window holds. */
export async function readDeadLetters(
  target: InfluxTarget,
  options: { since: string; limit: number; signal?: AbortSignal },
): Promise<{ letters: StoredDeadLetter[]; total: number }> {
  // Both go into the statement as they are: check them here, whoever the caller.
  if (!DURATION.test(options.since))
    throw new UsageError(`since takes a duration such as 30m, 1h or 7d, not "${options.since}"`);
  if (!Number.isSafeInteger(options.limit) || options.limit < 1)
    throw new UsageError(`limit is a whole number from 1, not ${options.limit}`);
  const where = `WHERE time > now() - ${options.since}`;
  const query = { signal: options.signal };
  const [count] = await influxQuery(target, `SELECT count("error") FROM "deadletter" ${where}`, query);
  const total = Number(count?.values[0]?.[1] ?? 0);
  if (total === 0) return { letters: [], total };
  const [series] = await influxQuery(
    target,
    `SELECT "error", "payload", "sourceTopic", "topic", "code" FROM "deadletter" ${where} ORDER BY time DESC LIMIT ${options.limit}`,
    query,
  );
  const letters = (series?.values ?? []).map((row) => {
    // Text as stored; whatever else a misconfigured writer stored is shown, not refused.
    const [time, error, payload, sourceTopic, topicTag, code] = [0, 1, 2, 3, 4, 5].map((i) => storedText(row[i]));
    // Dead letters stored before `sourceTopic` have only the tag, then the topic in full.
    const topic = sourceTopic ?? topicTag;
    const letter: StoredDeadLetter = { time: time ?? "", topic, error: error ?? "", payload: payload ?? "" };
    if (code !== undefined) letter.code = code;
    return letter;
  });
  return { letters: letters.reverse(), total };
}

/** A stored value as text: a string as it is, another JSON value (a number, a boolean) as JSON writes it. */
function storedText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Why a stored dead letter cannot be published again as it was, or undefined when it can. */
export function cannotReplay(letter: StoredDeadLetter, deadLetterTopic: string): string | undefined {
  if (letter.topic === undefined) return "not a dead letter: no source topic";
  if (letter.topic === deadLetterTopic) return "from the dead-letter topic itself";
  if (/[+#]/.test(letter.topic)) return "its topic is a filter, not a topic to publish to";
  if (letter.payload.length > DEAD_LETTER_PAYLOAD_LIMIT) return "payload truncated";
  return undefined;
}
