import { DeliverPolicy, JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { Deadline } from "../infra/deadline.js";
import { isApiError, nextMessageBySubject } from "./jetstream.js";

/**
 * How long a read waits for the next message it was told is there before it asks the stream
 * whether the range holds any more (messages counted as pending can expire before they come).
 */
const IDLE_MS = 1_000;

/** Quiet spells, each followed by the stream saying more is there, before a read gives up as stalled. */
const MAX_IDLE = 5;

/** A message read from a stream: where it is, when JetStream stored it (ms), and its bytes. */
export interface ReadMessage {
  seq: number;
  subject: string;
  /** When JetStream stored it, in epoch ms. */
  storedAt: number;
  data: Uint8Array;
}

export interface RangeRead {
  /** The messages of the range in stream order, at most `max`. */
  messages: ReadMessage[];
  /** True when the range held more than `max`: the next one to read is after the last returned. */
  more: boolean;
}

/** The stream's first and last sequence, and its message count (0, 0, 0 for an empty stream). */
export async function streamBounds(
  jsm: JetStreamManager,
  stream: string,
): Promise<{ first: number; last: number; messages: number }> {
  const { state } = await jsm.streams.info(stream);
  return { first: state.first_seq, last: state.last_seq, messages: state.messages };
}

/**
 * The messages whose subject matches `filter` with a sequence in [from, before), oldest first, at
 * most `max`. The first is found with one direct get (next by subject), so an empty range costs
 * one request and no consumer; the rest come through an ordered consumer that starts there (one
 * request per batch, not per message) and is stopped at the range's end. With a `deadline`, every
 * request waits for it, and the read stops with its BudgetExhaustedError (503) once it runs out.
 */
export async function readRange(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  range: { from: number; before: number; max: number },
  deadline?: Deadline,
): Promise<RangeRead> {
  const { before, max } = range;
  const from = Math.max(1, range.from);
  if (from >= before || max <= 0) return { messages: [], more: false };
  const nextAfter = (seq: number) => timed(deadline, nextMessageBySubject(jsm, stream, seq, filter).catch(noMessage));
  const first = await nextAfter(from);
  if (first === null || first.seq >= before) return { messages: [], more: false };
  const messages: ReadMessage[] = [
    { seq: first.seq, subject: first.subject, storedAt: first.time.getTime(), data: first.data },
  ];
  const next = await nextAfter(first.seq + 1);
  if (next === null || next.seq >= before) return { messages, more: false };
  if (max === 1) return { messages, more: true };
  const consumer = await timed(
    deadline,
    js.consumers.get(stream, {
      filter_subjects: filter, // one subject as a string: nats-server 2.9 knows only filter_subject
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: next.seq,
    }),
  );
  const feed = await timed(deadline, consumer.consume({ max_messages: Math.min(256, max) }));
  const stop = () => void feed.close().catch(() => undefined);
  // A quiet feed: the stream says whether the range holds more (else the rest expired, the range is read).
  let quiet = 0;
  let stalled = false;
  let finished = false;
  const onIdle = () =>
    void nextAfter((messages.at(-1)?.seq ?? first.seq) + 1)
      .then((left) => {
        if (finished) return;
        if (left === null || left.seq >= before) return stop();
        if (++quiet >= MAX_IDLE) {
          stalled = true;
          return stop();
        }
        clearTimeout(idle);
        idle = setTimeout(onIdle, IDLE_MS);
      })
      .catch(() => {
        // Unanswered: not known to be read whole.
        if (finished) return;
        stalled = true;
        stop();
      });
  let idle = setTimeout(onIdle, IDLE_MS);
  deadline?.signal.addEventListener("abort", stop, { once: true });
  let more = false;
  try {
    for await (const m of feed) {
      clearTimeout(idle);
      idle = setTimeout(onIdle, IDLE_MS);
      quiet = 0;
      if (m.seq >= before) break;
      if (messages.length >= max) {
        more = true;
        break;
      }
      messages.push({
        seq: m.seq,
        subject: m.subject,
        storedAt: Math.floor(m.info.timestampNanos / 1e6),
        data: m.data.slice(),
      });
      if (m.info.pending === 0) break; // the last one there is: nothing more to wait for
    }
  } finally {
    finished = true;
    clearTimeout(idle);
    deadline?.signal.removeEventListener("abort", stop);
    await feed.close().catch(() => undefined);
  }
  deadline?.check(`${stream} (${filter}) to be read`);
  if (stalled) throw new Error(`${stream} (${filter}) stopped sending before the range was read`);
  return { messages, more };
}

/** `work` within the deadline, when there is one. */
function timed<T>(deadline: Deadline | undefined, work: Promise<T>): Promise<T> {
  return deadline === undefined ? work : deadline.wait(work, "NATS JetStream to answer a read");
}

/**
 * The first sequence of the stream whose message was stored at or after `at` (ms), or `last + 1`
 * when none was: a binary search over direct gets (sequences grow with time), some 25 requests for
 * a stream of millions, on any nats-server (a consumer can start by time, but cannot tell an empty
 * range without waiting for it).
 */
export async function sequenceAt(
  jsm: JetStreamManager,
  stream: string,
  allSubjects: string,
  at: number,
  deadline?: Deadline,
): Promise<number> {
  const { first, last } = await timed(deadline, streamBounds(jsm, stream));
  if (last === 0 || first > last) return last + 1;
  let lo = first;
  let hi = last + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const message = await timed(deadline, nextMessageBySubject(jsm, stream, mid, allSubjects).catch(noMessage));
    if (message === null) hi = mid;
    else if (message.time.getTime() >= at) hi = mid;
    else lo = message.seq + 1;
  }
  return lo;
}

/** STREAM.MSG.GET answers "no message found" with an API error on some servers and null on others. */
function noMessage(error: unknown): null {
  if (isApiError(error, JetStreamApiCodes.NoMessageFound)) return null;
  throw error;
}
