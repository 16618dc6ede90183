import mqtt from "mqtt";
import type { Ledger } from "./ledger.js";
import { healthy, invalidReading, TELEMETRY_TOPIC, type Load } from "./load.js";

/** Copies of each small poison message. */
const COPIES = 5;
/** Timestamps outside what InfluxDB stores (1677-09-21 to 2262-04-11): predict must refuse them. */
const BAD_TIMESTAMPS: Array<string | number> = [
  "9999-12-31 23:59:59",
  "1500-01-01 00:00:00",
  "2262-04-12T00:00:00Z",
  1e15,
];
const OVERSIZED_BYTES = [1024 * 1024, 1024 * 1024, 1024 * 1024, 100 * 1024, 100 * 1024];

export interface PoisonOptions {
  /**
   * Readings, otherwise valid, from this many distinct device IDs the registry does not know (a
   * cardinality attack, or a fleet of forged fans): each must be refused or quarantined.
   */
  distinctDevices: number;
}

/**
 * The poison scenario's messages: bad timestamps, 1 MB and 100 KiB payloads, bytes that are not
 * UTF-8, `__proto__` and `constructor.prototype` keys (from the registered INVALID_DEVICE), and one
 * reading each from many device IDs the registry does not know, sent while the steady load goes
 * on. Resolves once all were sent.
 */
export async function sendPoison(url: string, ledger: Ledger, load: Load, options: PoisonOptions): Promise<void> {
  load.addForgedDevices(Array.from({ length: options.distinctDevices }, (_, n) => `dev-${n}`));
  const client = await mqtt.connectAsync(url, { clientId: `faults-poison-${process.pid}`, log: () => {} });
  client.on("error", () => {});
  try {
    const small: Array<string | Buffer> = [];
    for (let copy = 0; copy < COPIES; copy++) {
      for (const timeStamp of BAD_TIMESTAMPS)
        small.push(
          JSON.stringify({ ...invalidReading(ledger.nextInvalid("bad-timestamp"), healthy(copy)), timeStamp }),
        );
      small.push(nonUtf8Text(ledger.nextInvalid("non-utf8")), nonUtf8Reading(ledger.nextInvalid("non-utf8")));
      small.push(
        withKey(ledger.nextInvalid("proto-key"), `"__proto__":{"isAdmin":true}`),
        withKey(ledger.nextInvalid("proto-key"), `"constructor":{"prototype":{"isAdmin":true}}`),
      );
    }
    await Promise.all(small.map((payload) => client.publishAsync(TELEMETRY_TOPIC, payload, { qos: 1 })));
  } finally {
    await client.endAsync();
  }
  for (const bytes of OVERSIZED_BYTES) await sendOversized(url, ledger, bytes);
  while (load.extraLeft > 0) await new Promise((resolve) => setTimeout(resolve, 100));
}

/**
 * A reading padded to `bytes`, from a client of its own: a broker with a packet size cap closes
 * the connection of a client that sends more, which must not disturb the steady load.
 */
async function sendOversized(url: string, ledger: Ledger, bytes: number): Promise<void> {
  const marker = ledger.nextInvalid("oversized");
  const head = JSON.stringify({ ...invalidReading(marker, healthy(0)), padding: "" }).slice(0, -2);
  const payload = `${head}${"x".repeat(Math.max(0, bytes - head.length - 2))}"}`;
  const client = mqtt.connect(url, {
    clientId: `faults-oversized-${process.pid}-${marker}`,
    reconnectPeriod: 0,
    log: () => {},
  });
  client.on("error", () => {});
  const accepted = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    client.once("close", () => {
      clearTimeout(timer);
      resolve(false);
    });
    client.once("connect", () =>
      client.publish(TELEMETRY_TOPIC, payload, { qos: 1 }, (error) => {
        clearTimeout(timer);
        resolve(!error);
      }),
    );
  });
  if (!accepted) ledger.refusedByBroker(marker);
  client.end(true);
}

function nonUtf8Text(marker: string): Buffer {
  return Buffer.concat([Buffer.from(`${marker} `), Buffer.from([0xff, 0xfe, 0xfd, 0x80]), Buffer.from(" not text")]);
}

/** JSON whose deviceID holds an invalid UTF-8 sequence (0xC3 0x28): decoded, it would become U+FFFD. */
function nonUtf8Reading(marker: string): Buffer {
  const rest = JSON.stringify({ timeStamp: new Date().toISOString(), ...healthy(1) }).slice(1);
  return Buffer.concat([Buffer.from(`{"deviceID":"${marker}`), Buffer.from([0xc3, 0x28]), Buffer.from(`",${rest}`)]);
}

function withKey(marker: string, member: string): string {
  const reading = JSON.stringify(invalidReading(marker, healthy(2)));
  return `${reading.slice(0, -1)},${member}}`;
}
