import type { MqttClient } from "mqtt";
import { ServiceBase } from "../lib/infra/service.js";
import { formatTime } from "./timestamp.js";
import type { ProfileName } from "./fan-profiles.js";
import { createFleet, type FanTruth, type FleetModelOptions, type SimulatedFan as FanModel } from "./fleet-model.js";

export interface FleetOptions extends FleetModelOptions {
  qos: 0 | 1;
  topic: string;
  /** Each fan on its own topic, `<topic>/<deviceID>`, as a fan bound to its credentials publishes. */
  perFanTopics?: boolean;
}

export interface SimulatedFan {
  deviceID: string;
  profile: ProfileName;
}

/** A fan's ground truth with the wall-clock times its readings are due (the timers may run late). */
export interface TimedTruth extends FanTruth {
  wearStartsAt: string | null;
  failsAt: string | null;
}

/**
 * A simulated fleet: every fan publishes the reference payload to `topic` every `intervalMs`, the
 * fans spread evenly over the interval so the broker sees a steady stream rather than bursts.
 * Fan n (from 1) has deviceID "n"; the same seed gives the same readings.
 */
export class FleetSimulator extends ServiceBase {
  readonly name = "simulated fleet";
  readonly fans: readonly SimulatedFan[];
  readonly #fans: readonly FanModel[];
  #published = 0;
  #failed = 0;
  #timers: NodeJS.Timeout[] = [];
  #startedAt: number | undefined;
  /** When the MQTT client last took a reading (at QoS 1: when the broker acknowledged it). */
  #lastSentAt: number | undefined;

  constructor(
    private readonly client: MqttClient,
    private readonly options: FleetOptions,
    /** Ends the client (forced) on close: readings still unsent then are simulated anyway. */
    private readonly ownsClient = false,
  ) {
    super();
    this.#fans = createFleet(options);
    this.fans = this.#fans.map(({ deviceID, profile }) => ({ deviceID, profile }));
  }

  /** Readings handed to the MQTT client so far (and, at QoS 1, how many the broker refused). */
  get published(): number {
    return this.#published;
  }

  get failed(): number {
    return this.#failed;
  }

  /**
   * Publishing, for a pod's readiness: the client is connected and a reading went out within three
   * intervals (10 s at least), or the fleet has only just started. A broker that is away, or a
   * client that stopped getting acknowledgements, makes it false; mqtt.js reconnects meanwhile.
   */
  publishing(now = Date.now()): boolean {
    if (!this.client.connected || this.#startedAt === undefined) return false;
    if (this.#fans.length === 0) return true;
    const staleAfter = Math.max(3 * this.options.intervalMs, 10_000);
    return now - (this.#lastSentAt ?? this.#startedAt) <= staleAfter;
  }

  /** When a reading last went out, for /healthz. */
  get lastSentAt(): number | undefined {
    return this.#lastSentAt;
  }

  /** Each fan's shape, when it starts to wear and when it fails: readings, and times once started. */
  get truth(): TimedTruth[] {
    return this.#fans.map((fan, i) => {
      const at = (reading: number | null) =>
        reading === null || this.#startedAt === undefined
          ? null
          : new Date(this.#startedAt + this.#offset(i) + reading * this.options.intervalMs).toISOString();
      return { ...fan.truth, wearStartsAt: at(fan.truth.wearStartsAtReading), failsAt: at(fan.truth.failsAtReading) };
    });
  }

  protected async onStart(): Promise<void> {
    this.#startedAt = Date.now();
    this.#fans.forEach((fan, i) => {
      const first = setTimeout(() => {
        this.#publish(fan);
        this.#timers.push(setInterval(() => this.#publish(fan), this.options.intervalMs));
      }, this.#offset(i));
      this.#timers.push(first);
    });
  }

  /** Stops publishing (and, when it owns it, ends its client at once). */
  protected async onClose(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers = [];
    if (this.ownsClient) await this.client.endAsync(true);
  }

  #offset(i: number): number {
    return Math.floor((i * this.options.intervalMs) / Math.max(1, this.#fans.length));
  }

  /** The next reading of a fan, as the reference simulator sends it. */
  #reading(fan: FanModel, now: number): string {
    return JSON.stringify({ deviceID: fan.deviceID, timeStamp: formatTime(new Date(now)), ...fan.next() });
  }

  #publish(fan: FanModel): void {
    this.#published++;
    const topic = this.options.perFanTopics === true ? `${this.options.topic}/${fan.deviceID}` : this.options.topic;
    this.client.publish(topic, this.#reading(fan, Date.now()), { qos: this.options.qos }, (error) => {
      if (error) this.#failed++;
      else this.#lastSentAt = Date.now();
    });
  }
}
