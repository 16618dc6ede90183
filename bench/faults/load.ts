import mqtt, { type MqttClient } from "mqtt";
import type { InvalidKind, Ledger } from "./ledger.js";

export const TELEMETRY_TOPIC = "fan/messages";

/** Every hundredth message is malformed, one of these in turn. */
const MALFORMED: InvalidKind[] = ["not-json", "missing-field", "non-numeric", "out-of-range"];
const INVALID_EVERY = 100;
const TICK_MS = 10;

/**
 * The fleet: one MQTT client publishing readings from `fans` fans round robin at `rate` messages a
 * second (QoS 1, paced every 10 ms), 1% of them malformed. Its session is persistent, so what it
 * published while the broker was away is sent when it is back: nothing is lost on this side.
 */
export class Load {
  readonly #client: MqttClient;
  readonly #ledger: Ledger;
  readonly #fans: number;
  #rate: number;
  #credit = 0;
  #sequence = 0;
  #pending = 0;
  #failed = 0;
  #extra: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #last = Date.now();
  #stopped = false;

  private constructor(client: MqttClient, ledger: Ledger, rate: number, fans: number) {
    this.#client = client;
    this.#ledger = ledger;
    this.#rate = rate;
    this.#fans = fans;
  }

  static async start(
    url: string,
    ledger: Ledger,
    options: { rate: number; fans: number; clientId: string },
  ): Promise<Load> {
    const client = await mqtt.connectAsync(url, {
      clientId: options.clientId,
      clean: false,
      reconnectPeriod: 500,
      log: () => {},
    });
    client.on("error", () => {}); // reconnects by itself; a refused reconnect while the broker restarts is expected
    const load = new Load(client, ledger, options.rate, options.fans);
    load.#timer = setInterval(() => load.#tick(), TICK_MS);
    return load;
  }

  get pending(): number {
    return this.#pending;
  }

  /** Publishes whose PUBACK never came (the client gave up on them): 0 unless something is wrong here. */
  get failed(): number {
    return this.#failed;
  }

  setRate(rate: number): void {
    this.#rate = rate;
  }

  /** Also sends one reading from each of these devices, at the load's own rate, on top of it. */
  addDevices(deviceIDs: string[]): void {
    this.#extra.push(...deviceIDs);
  }

  get extraLeft(): number {
    return this.#extra.length;
  }

  /** Stops sending; resolves once every publish was acknowledged or `capMs` passed. */
  async stop(capMs = 60_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    const deadline = Date.now() + capMs;
    while (this.#pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await this.#client.endAsync(this.#pending > 0);
  }

  #tick(): void {
    const now = Date.now();
    // After a stalled event loop send at most one second's worth at once.
    this.#credit = Math.min(this.#credit + (this.#rate * (now - this.#last)) / 1000, this.#rate);
    this.#last = now;
    const due = Math.floor(this.#credit);
    this.#credit -= due;
    for (let i = 0; i < due; i++) this.#publish(this.#next());
    for (const deviceID of this.#extra.splice(0, due))
      this.#publish(
        JSON.stringify({ deviceID, timeStamp: this.#ledger.nextReading(deviceID), ...healthy(deviceNumber(deviceID)) }),
      );
  }

  #next(): string | Buffer {
    const n = this.#sequence++;
    if (n % INVALID_EVERY === INVALID_EVERY / 2)
      return malformed(this.#ledger, MALFORMED[Math.floor(n / INVALID_EVERY) % MALFORMED.length] as InvalidKind);
    const deviceID = `fan-${n % this.#fans}`;
    return JSON.stringify({ deviceID, timeStamp: this.#ledger.nextReading(deviceID), ...healthy(n) });
  }

  #publish(payload: string | Buffer): void {
    this.#pending++;
    this.#client.publish(TELEMETRY_TOPIC, payload, { qos: 1 }, (error) => {
      this.#pending--;
      if (error) this.#failed++;
    });
  }
}

/** Plausible readings of a healthy fan (docs/model.md's ranges), varied by n. */
export function healthy(n: number): { rotation: number; temperature: number; vibration: number; sound: number } {
  return { rotation: 550 + (n % 150), temperature: 38 + (n % 15), vibration: 120 + (n % 100), sound: 44 + (n % 12) };
}

function deviceNumber(deviceID: string): number {
  return Number(/\d+$/.exec(deviceID)?.[0] ?? 0);
}

/** A malformed message that names its marker first, so the dead letter's payload keeps it. */
export function malformed(ledger: Ledger, kind: InvalidKind): string {
  const marker = ledger.nextInvalid(kind);
  const reading = { deviceID: marker, timeStamp: new Date().toISOString(), ...healthy(Number(marker.slice(4))) };
  switch (kind) {
    case "not-json":
      return `${marker} {"rotation": 612.3, "temperature":`;
    case "missing-field": {
      const { sound: _, ...rest } = reading;
      return JSON.stringify(rest);
    }
    case "non-numeric":
      return JSON.stringify({ ...reading, temperature: "hot" });
    case "out-of-range":
      return JSON.stringify({ ...reading, rotation: 1e9 });
    default:
      throw new RangeError(`the steady load sends no ${kind} messages`);
  }
}
