import mqtt, { type MqttClient } from "mqtt";
import { INVALID_DEVICE, type InvalidKind, type Ledger } from "./ledger.js";

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
  /** Fans that send faulty readings from now on (setFaulty). */
  readonly #faulty = new Set<string>();
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

  /** These fans send faulty readings from now on (the model predicts a fault; health raises an alarm). */
  setFaulty(deviceIDs: Iterable<string>): void {
    for (const id of deviceIDs) this.#faulty.add(id);
  }

  /**
   * Also sends one reading from each of these devices, which the registry does not know (forged
   * IDs), at the load's own rate, on top of it.
   */
  addForgedDevices(deviceIDs: string[]): void {
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
        JSON.stringify({ deviceID, timeStamp: this.#ledger.nextForged(deviceID), ...healthy(deviceNumber(deviceID)) }),
      );
  }

  #next(): string | Buffer {
    const n = this.#sequence++;
    if (n % INVALID_EVERY === INVALID_EVERY / 2)
      return malformed(this.#ledger, MALFORMED[Math.floor(n / INVALID_EVERY) % MALFORMED.length] as InvalidKind);
    const deviceID = `fan-${n % this.#fans}`;
    // Varied by the fan's own count of turns, so that each sensor's value changes from one reading
    // of a fan to its next whatever the number of fans: varied by n, a sensor whose modulus divides
    // --fans (faulty()'s temperature with 200 fans) repeated one value, which health rightly calls
    // a stuck sensor (HEALTH_STUCK_READINGS).
    const v = (n % this.#fans) + Math.floor(n / this.#fans);
    const values = this.#faulty.has(deviceID) ? faulty(v) : healthy(v);
    return JSON.stringify({ deviceID, timeStamp: this.#ledger.nextReading(deviceID), ...values });
  }

  #publish(payload: string | Buffer): void {
    this.#pending++;
    this.#client.publish(TELEMETRY_TOPIC, payload, { qos: 1 }, (error) => {
      this.#pending--;
      if (error) this.#failed++;
    });
  }
}

interface Values {
  rotation: number;
  temperature: number;
  vibration: number;
  sound: number;
}

/**
 * Plausible readings of a healthy fan, varied by n, inside every healthy range
 * (lib/domain/fan-ranges.ts): health sees no sensor leave its range, so no warning.
 */
export function healthy(n: number): Values {
  return { rotation: 550 + (n % 150), temperature: 36 + (n % 9), vibration: 110 + (n % 80), sound: 46 + (n % 6) };
}

/** A faulty fan's readings: inside the faulty ranges and outside the healthy ones on every sensor. */
export function faulty(n: number): Values {
  return { rotation: 410 + (n % 80), temperature: 47 + (n % 8), vibration: 205 + (n % 45), sound: 53 + (n % 7) };
}

function deviceNumber(deviceID: string): number {
  return Number(/\d+$/.exec(deviceID)?.[0] ?? 0);
}

/**
 * An invalid reading of the registered INVALID_DEVICE (so that the registry lets it through to the
 * checks it is for), its marker first, so that its dead letter's payload keeps it.
 */
export function invalidReading(marker: string, fields: object): Record<string, unknown> {
  return { marker, deviceID: INVALID_DEVICE, timeStamp: new Date().toISOString(), ...fields };
}

/** A malformed message that names its marker first, so the dead letter's payload keeps it. */
export function malformed(ledger: Ledger, kind: InvalidKind): string {
  const marker = ledger.nextInvalid(kind);
  const reading = invalidReading(marker, healthy(Number(marker.slice(4))));
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
