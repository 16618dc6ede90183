/** How much of a rejected payload a dead letter keeps; a longer one is cut and ends with "…". */
export const DEAD_LETTER_PAYLOAD_LIMIT = 1024;

/**
 * The X-Connector our MQTT connector sends. It dead-letters every message a function answers 4xx
 * to, so a function leaves the dead letter of a body it cannot parse to it (one letter, not two).
 */
export const FANWATCH_CONNECTOR = "fanwatch-mqtt-connector";

/**
 * The topic a message came from, for its dead letter: the connectors say it (X-Topic); a caller
 * that does not (curl, faas-cli invoke) gets the topic the function is fed from.
 */
export function sourceTopic(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  fallback: string,
): string {
  const header = headers["x-topic"];
  return typeof header === "string" && header !== "" ? header : fallback;
}

export interface DeadLetter {
  error: string;
  topic: string;
  payload: string;
  at: string;
  /**
   * The error code, where the reason has one a reader acts on (FANWATCH_READING_IMPLAUSIBLE: a
   * sensor fault). Optional and additive: older letters and readers have none.
   */
  code?: string;
}

/**
 * `{"error","topic","payload","at"}` (docs/architecture.md, "Contracts"), the payload as text,
 * truncated; `code` added only when given.
 */
export function deadLetter(error: string, topic: string, payload: unknown, at = new Date(), code?: string): DeadLetter {
  const text =
    typeof payload === "string"
      ? payload
      : Buffer.isBuffer(payload)
        ? payload.toString("utf8")
        : safeStringify(payload);
  const letter: DeadLetter = {
    error,
    topic,
    payload: text.length > DEAD_LETTER_PAYLOAD_LIMIT ? `${text.slice(0, DEAD_LETTER_PAYLOAD_LIMIT)}…` : text,
    at: at.toISOString(),
  };
  if (code !== undefined) letter.code = code;
  return letter;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
