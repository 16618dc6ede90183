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
  /** Transitions a second (alarms and clears together). */
  rate: number;
  /** How long each episode stays open before its clear. */
  episodeSeconds: number;
  /** Device IDs are `${prefix}-<n>`, one fan per episode. */
  prefix: string;
}

/**
 * Alarm episodes that open and clear, paced: every 1/rate s the oldest open episode clears if it
 * has been open `episodeSeconds`, else a new fan's alarm opens. So in the steady state half the
 * transitions are alarms and half clears, with rate × episodeSeconds / 2 episodes open. Each fan has
 * one episode (a fan's next episode soon after its clear is a scenario of its own, next-episode).
 * stopOpening() lets the open episodes clear in their time; `done` resolves once none is open and
 * every publish settled. Publishes are not awaited one by one, so NATS away holds up none of the
 * pacing; a fan's clear waits for its alarm's publish, so the two reach the stream in order.
 */
export class EpisodeLoad {
  readonly #open: Array<{ fan: string; alarmId: string; at: number; published: Promise<void> }> = [];
  readonly #publishes: Array<Promise<void>> = [];
  #opening = true;
  #fans = 0;
  readonly done: Promise<void>;

  constructor(
    private readonly publisher: HealthEventsPublisher,
    private readonly ledger: Ledger,
    private readonly options: EpisodeLoadOptions,
  ) {
    this.done = this.#run();
  }

  get openEpisodes(): number {
    return this.#open.length;
  }

  stopOpening(): void {
    this.#opening = false;
  }

  async #run(): Promise<void> {
    const { rate } = this.options;
    const started = Date.now();
    let ticks = 0;
    while (this.#opening || this.#open.length > 0) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      for (; ticks < due; ticks++) this.#tick();
      await sleep(10);
    }
    await Promise.all(this.#publishes);
  }

  #tick(): void {
    const oldest = this.#open[0];
    if (oldest !== undefined && Date.now() - oldest.at >= this.options.episodeSeconds * 1000) {
      this.#open.shift();
      const clear = makeTransition(oldest.fan, "cleared", { alarmId: oldest.alarmId });
      this.#publishes.push(oldest.published.then(() => publishRecorded(this.publisher, this.ledger, clear)));
    } else if (this.#opening) {
      const fan = `${this.options.prefix}-${this.#fans++}`;
      const alarm = makeTransition(fan, "alarm");
      const published = publishRecorded(this.publisher, this.ledger, alarm);
      this.#publishes.push(published);
      this.#open.push({ fan, alarmId: alarm.alarmId ?? fan, at: Date.now(), published });
    }
  }
}
