import type { JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "../lib/infra/log.js";
import { HEALTH_EVENTS_STREAM } from "../lib/nats/health-events.js";
import { ensureNotifierStream, NOTIFIER_STREAM, type NeededStream } from "./streams.js";

/** A stream that went missing (deleted by hand) is looked for again at most this often. */
export const STREAM_CHECK_MS = 5_000;

/**
 * The two streams the notifier needs, kept there: made at start when missing, and made again
 * should one go (`nats stream rm` by hand) once a publish or a consumer's open fails, so that a
 * dead letter still lands and a queue reads again rather than retrying for ever against nothing.
 */
export class StreamKeeper {
  readonly #checkedAt = new Map<string, number>();

  constructor(
    readonly jsm: JetStreamManager,
    readonly replicas: number,
    readonly log: Logger,
    readonly intervalMs = STREAM_CHECK_MS,
  ) {}

  /**
   * Both streams, made when missing, one after the other while `go()` says so; rejects when NATS
   * or JetStream does not answer.
   */
  async ensure(go: () => boolean = () => true): Promise<void> {
    for (const stream of [HEALTH_EVENTS_STREAM, NOTIFIER_STREAM] as const)
      if (go()) await ensureNotifierStream(this.jsm, stream, this.replicas);
  }

  /**
   * After a failure that a missing `stream` would explain: makes it again if it is gone, in the
   * background and at most every `intervalMs` (the failing call retries on its own meanwhile).
   */
  recheck(stream: NeededStream): void {
    const now = Date.now();
    if (now - (this.#checkedAt.get(stream) ?? -Infinity) < this.intervalMs) return;
    this.#checkedAt.set(stream, now);
    ensureNotifierStream(this.jsm, stream, this.replicas).then(
      ({ created }) => {
        if (created)
          this.log.warn(
            { event: "stream_recreated", stream },
            `the stream ${stream} was missing (deleted by hand?) and was made anew` +
              (stream === NOTIFIER_STREAM
                ? ": the dead letters and the delivery log it held are gone"
                : ": the queues read what health appends from now on"),
          );
      },
      (error: unknown) =>
        this.log.debug(
          { event: "stream_check_failed", stream, err: (error as Error).message },
          `cannot look for the stream ${stream} (NATS away?)`,
        ),
    );
  }
}
