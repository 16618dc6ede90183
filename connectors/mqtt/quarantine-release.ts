import { parseUntrustedJson } from "../../lib/infra/json.js";
import type { Logger } from "../../lib/infra/log.js";
import type { FanRecord } from "../../lib/registry/fan-record.js";
import type { Verdict } from "./gate.js";
import type { HeldReading, JetStreamQuarantine } from "./quarantine.js";

export interface QuarantineReleaseOptions {
  quarantine: JetStreamQuarantine;
  /** The fan's record in the registry cache now. */
  record(id: string): FanRecord | undefined;
  /** The gate's verdict on a reading of fan `id` with that record. */
  judge(id: string, record: FanRecord | undefined, reading: unknown): Verdict;
  /** Tells health and dead-letters a held reading found implausible with the fan's limits. */
  refuseImplausible(
    id: string,
    verdict: Extract<Verdict, { kind: "implausible" }>,
    reading: HeldReading,
  ): Promise<void>;
  /** Hands a released reading to the functions of its topic; resolves once they took it (or it was dead-lettered). */
  deliver(reading: HeldReading, signal: AbortSignal): Promise<void>;
  /** Counts a reading released. */
  released(): void;
  /** `work` again with backoff until it succeeds or the connector stops; the first failure is logged when `what` says what failed. */
  retry(work: () => Promise<void>, what?: string): Promise<void>;
  /** Aborts when the connector stops. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * What happens to a fan's readings held in FAN_QUARANTINE once its state is known: released to the
 * functions when it is active, purged when it is neither active nor pending (docs/pipeline.md,
 * "Release"). One release or purge per fan at a time, retried until done or the connector stops.
 */
export class QuarantineRelease {
  /** Releases and purges under way per fan; `again`: run once more when done (a reading came meanwhile). */
  readonly #running = new Map<string, { again: boolean }>();

  constructor(private readonly options: QuarantineReleaseOptions) {}

  /** Releases or purges the fan's held readings as its record's state says; nothing while it is pending. */
  settle(id: string, state: FanRecord["state"] | undefined): void {
    if (state === "active") this.#release(id);
    else if (state !== "pending") this.#purge(id);
  }

  /** At start: readings held for fans approved or refused while no connector ran. */
  async settleHeld(): Promise<void> {
    const { quarantine } = this.options;
    let held = new Map<string, number>();
    await this.options.retry(async () => void (held = await quarantine.heldFans())).catch(() => {});
    for (const id of held.keys()) this.settle(id, this.options.record(id)?.state);
  }

  /** Releases an approved fan's held readings in order; again afterwards if asked meanwhile. */
  #release(id: string): void {
    this.#serialize(id, async () => {
      // Refused or pending again meanwhile: that change's own handling takes over.
      if (this.options.record(id)?.state !== "active") return;
      const { signal } = this.options;
      const released = await this.options.quarantine.release(
        id,
        (reading) => this.#releaseOne(id, reading, signal),
        signal,
      );
      if (released > 0)
        this.options.log.info(
          { event: "quarantine_released", deviceID: id, readings: released },
          `fan ${JSON.stringify(id)} approved: ${released} held readings released to the functions`,
        );
    });
  }

  /** A held reading of a fan now active: checked as any reading (its limits), then delivered. */
  async #releaseOne(id: string, reading: HeldReading, signal: AbortSignal): Promise<void> {
    let parsed: unknown;
    try {
      parsed = parseUntrustedJson(reading.payload);
    } catch {
      parsed = undefined; // held as it came: predict dead-letters it with its own words
    }
    const verdict = this.options.judge(id, this.options.record(id), parsed);
    if (verdict.kind === "implausible") return this.options.refuseImplausible(id, verdict, reading);
    // Retired or pending again while releasing: stop; the change's own handling takes over.
    if (verdict.kind !== "pass") throw new Error(`fan ${JSON.stringify(id)} is no longer active`);
    await this.options.deliver(reading, signal);
    this.options.released();
  }

  /** Forgets a refused fan's held readings. */
  #purge(id: string): void {
    this.#serialize(id, async () => {
      const purged = await this.options.quarantine.purge(id);
      if (purged > 0)
        this.options.log.info(
          { event: "quarantine_purged", deviceID: id, readings: purged },
          `fan ${JSON.stringify(id)} refused: its ${purged} held readings are dropped`,
        );
    });
  }

  /** One release or purge per fan at a time, retried until it succeeds or the connector stops. */
  #serialize(id: string, work: () => Promise<void>): void {
    const running = this.#running.get(id);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.#running.set(id, state);
    void (async () => {
      do {
        state.again = false;
        await this.options
          .retry(work, `cannot release or drop the held readings of fan ${JSON.stringify(id)} yet`)
          .catch(() => {});
      } while (state.again && !this.options.signal.aborted);
      this.#running.delete(id);
    })();
  }
}
