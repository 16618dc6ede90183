import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type MsgRequest,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";

/** JetStream's "stream name already in use with a different configuration" (nats.js names no constant for it). */
export const STREAM_NAME_IN_USE = 10058;

/** `error` is JetStream's API error `code` (JetStreamApiCodes, or STREAM_NAME_IN_USE). */
export function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

/**
 * The first message of `stream` at or after sequence `seq` whose subject matches `filter`, or null
 * when there is none. STREAM.MSG.GET takes `next_by_subj` (nats-server 2.9 and later); nats.js
 * types it for direct gets only, hence the one cast.
 */
export function nextMessageBySubject(
  jsm: JetStreamManager,
  stream: string,
  seq: number,
  filter: string,
): Promise<StoredMsg | null> {
  const query = { seq, next_by_subj: filter } as unknown as MsgRequest;
  return jsm.streams.getMessage(stream, query);
}

/** A stream's configuration as ensureStream creates it: the name, subjects and limits. */
export type WantedStream = Partial<StreamConfig> & Pick<StreamConfig, "name" | "subjects">;

/**
 * Creates the stream `wanted` describes when it is missing. An existing one is used as it is,
 * unless `adjust` returns changes for it, which are applied (its limits brought to the caller's).
 * Two processes creating it at once both end with the one stream. Resolves to its info, and
 * whether it was created now.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  wanted: WantedStream,
  adjust?: (existing: StreamInfo) => Partial<StreamConfig> | undefined,
): Promise<{ info: StreamInfo; created: boolean }> {
  try {
    const info = await jsm.streams.info(wanted.name);
    const changes = adjust?.(info);
    if (changes === undefined || Object.keys(changes).length === 0) return { info, created: false };
    return { info: await jsm.streams.update(wanted.name, { ...info.config, ...changes }), created: false };
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
  }
  try {
    return { info: await jsm.streams.add(wanted), created: true };
  } catch (error) {
    // Another process created it between the two calls (with other limits: an identical add succeeds).
    if (isApiError(error, STREAM_NAME_IN_USE)) return { info: await jsm.streams.info(wanted.name), created: false };
    throw error;
  }
}
