import { JetStreamApiCodes } from "@nats-io/jetstream";
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { CasConflictError, StoreUnavailableError } from "../../lib/errors.js";

interface Waiting {
  resolve: (revision: number) => void;
  reject: (error: Error) => void;
  deadline: number;
  /** What is written, for the errors: "the health bucket", "the health event stream". */
  what: string;
}

interface Queued {
  subject: string;
  bytes: Uint8Array;
  /** The one header a write carries: the CAS condition of a key, or the message id of an event. */
  header: string;
  value: string;
  token: string;
}

/**
 * Compare-and-set writes to a key-value bucket, as kv.update() makes them (a publish to the key's
 * subject with Nats-Expected-Last-Subject-Sequence, answered by JetStream's publish
 * acknowledgement), but many at a time: health writes one fan per prediction or so, and profiled
 * at 4,000 predictions/s through kv.update() a third of its CPU went to the request machinery
 * rather than to the writes:
 * - each write was its own socket write (20% of the CPU in writeBuffer): nats.js flushes in a
 *   microtask, and the fans of one invocation reach their publish in different ones. Here the
 *   writes queued during one turn of the event loop go out together (setImmediate), one socket
 *   write for all the fans of an invocation, and nats-server reads them in one go too;
 * - each request had its own timer and built a RequestError("cancelled"), with its stack trace,
 *   after its answer had arrived (6%). Here one subscription takes every answer and one timer
 *   times out what is left unanswered.
 * Answers: a revision, a CasConflictError when the key moved on, a StoreUnavailableError when
 * JetStream does not answer in `timeoutMs` or cannot take the write.
 *
 * The transitions appended to health's event stream (append(), with their id as Nats-Msg-Id) go
 * the same way: the few of a turn share its socket write, and no request of their own is made.
 */
export class KvWriter {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #inbox: string;
  readonly #subscription: Subscription;
  readonly #waiting = new Map<string, Waiting>();
  #queue: Queued[] = [];
  #sequence = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection, bucket: string, timeoutMs: number) {
    this.#nc = nc;
    this.#prefix = `$KV.${bucket}.`;
    this.#timeoutMs = timeoutMs;
    this.#inbox = createInbox();
    this.#subscription = nc.subscribe(`${this.#inbox}.*`, {
      callback: (error, msg) => (error === null ? this.#answer(msg) : undefined),
    });
  }

  /** Writes `bytes` under `key` if the key is at `previous` (0: if it has no value); resolves to the new revision. */
  update(key: string, bytes: Uint8Array, previous: number): Promise<number> {
    return this.#write(
      this.#prefix + key,
      bytes,
      "Nats-Expected-Last-Subject-Sequence",
      String(previous),
      "the health bucket",
    );
  }

  /**
   * Appends `bytes` to the stream that holds `subject`, with the message id `msgId`: JetStream
   * stores a message id once within its duplicate window (a repeat is acknowledged, not stored).
   * Resolves to the message's sequence in the stream.
   */
  append(subject: string, bytes: Uint8Array, msgId: string): Promise<number> {
    return this.#write(subject, bytes, "Nats-Msg-Id", msgId, "the health event stream");
  }

  #write(subject: string, bytes: Uint8Array, header: string, value: string, what: string): Promise<number> {
    const token = String(++this.#sequence);
    return new Promise<number>((resolve, reject) => {
      this.#waiting.set(token, { resolve, reject, deadline: Date.now() + this.#timeoutMs, what });
      if (this.#queue.length === 0) setImmediate(() => this.#flush());
      this.#queue.push({ subject, bytes, header, value, token });
      this.#sweeper ??= setInterval(() => this.#sweep(), Math.max(10, Math.min(250, this.#timeoutMs / 4))).unref();
    });
  }

  /** Fails what waits for an answer (the connection is closing). */
  close(): void {
    if (!this.#subscription.isClosed()) this.#subscription.unsubscribe();
    this.#queue = [];
    for (const [token, w] of this.#waiting) {
      this.#waiting.delete(token);
      w.reject(new StoreUnavailableError("the health store is closing"));
    }
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const q of queue) {
      const h = headers();
      h.set(q.header, q.value);
      try {
        this.#nc.publish(q.subject, q.bytes, { reply: `${this.#inbox}.${q.token}`, headers: h });
      } catch (error) {
        this.#settle(
          q.token,
          new StoreUnavailableError(`the health store failed to write: ${(error as Error).message}; try again later`, {
            cause: error,
          }),
        );
      }
    }
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length + 1);
    const waiting = this.#waiting.get(token);
    if (waiting === undefined) return; // timed out already
    // No JetStream behind the subject (its stream is gone, the server is restarting): a status message, no body.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      this.#settle(
        token,
        new StoreUnavailableError(`JetStream has no stream for ${waiting.what} right now; try again later`),
      );
      return;
    }
    let ack: { seq?: unknown; error?: { err_code?: number; description?: string } };
    try {
      ack = msg.json();
    } catch {
      this.#settle(
        token,
        new StoreUnavailableError("JetStream answered a write with something that is not JSON; try again later"),
      );
      return;
    }
    if (ack.error !== undefined) {
      const code = ack.error.err_code;
      const conflict =
        code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
      this.#settle(
        token,
        conflict
          ? new CasConflictError(`the key was written by someone else (${ack.error.description ?? code})`)
          : new StoreUnavailableError(
              `JetStream refused a write to ${waiting.what}: ${ack.error.description ?? code}; try again later`,
            ),
      );
    } else if (typeof ack.seq === "number") this.#settle(token, ack.seq);
    else
      this.#settle(
        token,
        new StoreUnavailableError("JetStream acknowledged a write without its sequence; try again later"),
      );
  }

  #settle(token: string, outcome: number | Error): void {
    const w = this.#waiting.get(token);
    if (w === undefined) return;
    this.#waiting.delete(token);
    if (typeof outcome === "number") w.resolve(outcome);
    else w.reject(outcome);
  }

  #sweep(): void {
    const now = Date.now();
    // Deadlines grow with insertion order: the first one still in the future ends the sweep.
    for (const [token, w] of this.#waiting) {
      if (now < w.deadline) break;
      this.#settle(
        token,
        new StoreUnavailableError(
          `NATS did not answer a write to ${w.what} within ${this.#timeoutMs} ms; try again later`,
        ),
      );
    }
    if (this.#waiting.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
