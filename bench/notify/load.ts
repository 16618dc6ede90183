import type { AlarmTransition } from "../../lib/domain/health.js";
import { makeTransition, type HealthEventsPublisher } from "../../test/support/notifier-events.js";
import type { Ledger } from "./ledger.js";
import { clock, sleep } from "./stats.js";

/** Appends one transition as health does and records it; never rejects (a publish that failed for good is recorded as such). */
export async function publishRecorded(
  publisher: HealthEventsPublisher,
  ledger: Ledger,
  transition: AlarmTransition,
): Promise<void> {
  const entry = ledger.add(transition, clock());
  try {
    await publisher.publish(transition);
    entry.stored = true;
  } catch (error) {
    entry.failed = (error as Error).message;
  }
}

export interface EpisodeLoadOptions {
  /** Fans the load goes round: each alternates between an alarm and its clear. */
  fans: number;
  /** Transitions a second (alarms and clears together). */
  rate: number;
  /** Device IDs are `${prefix}-<n>`. */
  prefix: string;
}

/**
 * Alarm episodes that open and clear, paced: every 1/rate s the next fan in turn either clears its
 * open episode or opens a new one (a new alarmId). So each episode lasts fans/rate seconds, and so
 * does the pause before the fan's next one. stopOpening() lets the open episodes clear at their
 * turn; done resolves once none is open and every publish settled. A fan's publishes are chained:
 * an alarm and its clear reach the stream in that order even while NATS is away.
 */
export class EpisodeLoad {
  readonly #open = new Map<string, string>();
  readonly #chains = new Map<string, Promise<void>>();
  #opening = true;
  readonly done: Promise<void>;

  constructor(
    private readonly publisher: HealthEventsPublisher,
    private readonly ledger: Ledger,
    private readonly options: EpisodeLoadOptions,
  ) {
    this.done = this.#run();
  }

  /** Seconds each episode stays open. */
  get episodeSeconds(): number {
    return this.options.fans / this.options.rate;
  }

  get openEpisodes(): number {
    return this.#open.size;
  }

  stopOpening(): void {
    this.#opening = false;
  }

  async #run(): Promise<void> {
    const { fans, rate, prefix } = this.options;
    const started = Date.now();
    let ticks = 0;
    while (this.#opening || this.#open.size > 0) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      for (; ticks < due && (this.#opening || this.#open.size > 0); ticks++) this.#tick(`${prefix}-${ticks % fans}`);
      await sleep(10);
    }
    await Promise.all(this.#chains.values());
  }

  #tick(fan: string): void {
    const alarmId = this.#open.get(fan);
    let transition: AlarmTransition;
    if (alarmId !== undefined) {
      transition = makeTransition(fan, "cleared", { alarmId });
      this.#open.delete(fan);
    } else if (this.#opening) {
      transition = makeTransition(fan, "alarm");
      this.#open.set(fan, transition.alarmId ?? fan);
    } else return;
    const previous = this.#chains.get(fan) ?? Promise.resolve();
    this.#chains.set(
      fan,
      previous.then(() => publishRecorded(this.publisher, this.ledger, transition)),
    );
  }
}
