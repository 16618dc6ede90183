// npm run bench:isolation — how one consumer design holds back one route while another flows
// (docs/pipeline.md, "One session per topic filter"). Two topics as the connector sees them:
// `fan/messages` (readings for predict, always acknowledged at once) and `fan/anomaly`
// (predictions for health, whose function is down: its messages are held). Each topic gets `rate`
// QoS 1 publishes a second from a publisher of its own; after `--before` seconds the anomaly route
// fails for `--hold` seconds, then recovers. Reported per phase, for each design and broker: the
// readings delivered a second (the prediction path's intake), each publisher's acknowledged
// publishes a second (is a publisher slowed by the held route?), and at the end every prediction
// published that was never delivered (lost), and how long the backlog took once the route was back.
//   --designs a,b   one-session, per-filter, per-filter-parked (default: all)
//   --brokers a,b   mosquitto (the shipped config), aedes (fanwatch start's embedded broker) (default: both)
//   --rate N        publishes a second per topic (default 2000)
//   --before S --hold S --after S  phase lengths in seconds (default 5, 40, 10)
//   --bytes N       payload bytes (default 250, about a prediction's)
//   --cost          instead: what a session per filter costs the connector process. `fanwatch connector`
//                   against Mosquitto and a gateway stand-in that answers at once, `rate` readings and
//                   `rate` predictions a second for --seconds (default 20), routed alike either through
//                   one session (`topic=fan/+`) or one per filter (`topic=fan/messages,fan/anomaly`),
//                   alternated --rounds times (default 2); reports its CPU ms per 1,000 messages.
import { rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { createLogger } from "../../lib/infra/log.js";
import { MqttConsumer, type ReceivedMessage } from "../../lib/mqtt/consumer.js";
import { CONNECTOR_NODE_OPTIONS } from "../../connectors/mqtt/node-options.js";
import { freePort } from "../../lib/infra/net.js";
import { EmbeddedBroker } from "../../runtime/system/broker.js";
import { GatewayStandIn, STAND_IN_PASSWORD, STAND_IN_USER } from "../../test/support/gateway-stand-in.js";
import { startMosquitto } from "../../test/support/mosquitto.js";
import { spawnCli, terminate, waitForOutput } from "../../test/support/process.js";
import { cpuSeconds } from "../support/process-stats.js";
import { writeGatewaySecrets } from "../../test/support/gateway-secrets.js";

const DESIGNS = ["one-session", "per-filter", "per-filter-parked"] as const;
type Design = (typeof DESIGNS)[number];
const BROKERS = ["mosquitto", "aedes"] as const;
type BrokerName = (typeof BROKERS)[number];

const { values } = parseArgs({
  options: {
    designs: { type: "string" },
    brokers: { type: "string" },
    rate: { type: "string", default: "2000" },
    before: { type: "string", default: "5" },
    hold: { type: "string", default: "40" },
    after: { type: "string", default: "10" },
    bytes: { type: "string", default: "250" },
    cost: { type: "boolean", default: false },
    seconds: { type: "string", default: "20" },
    rounds: { type: "string", default: "2" },
  },
});
const rate = Number(values.rate);
const padding = "x".repeat(Math.max(0, Number(values.bytes) - 40));
const phases = {
  before: Number(values.before) * 1000,
  hold: Number(values.hold) * 1000,
  after: Number(values.after) * 1000,
};
const designs = (values.designs?.split(",") ?? DESIGNS) as Design[];
const brokers = (values.brokers?.split(",") ?? BROKERS) as BrokerName[];
const log = createLogger("isolation", "silent");
const READINGS = "fan/messages";
const PREDICTIONS = "fan/anomaly";
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A QoS 1 publisher at a steady rate, counting acknowledged publishes. */
class Publisher {
  acked = 0;
  sent = 0;
  /** The sequence numbers the broker acknowledged. */
  readonly ackedNumbers = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  private constructor(
    readonly client: MqttClient,
    readonly topic: string,
  ) {}
  static async start(url: string, topic: string, clientId: string): Promise<Publisher> {
    const client = await mqtt.connectAsync(url, { clientId, clean: false, reconnectPeriod: 500, log: () => {} });
    client.on("error", () => {});
    const p = new Publisher(client, topic);
    let credit = 0;
    let last = Date.now();
    p.#timer = setInterval(() => {
      const now = Date.now();
      credit = Math.min(credit + (rate * (now - last)) / 1000, rate);
      last = now;
      for (; credit >= 1; credit--) {
        const n = p.sent++;
        client.publish(topic, JSON.stringify({ n, deviceID: `fan-${n % 200}`, padding }), { qos: 1 }, (error) => {
          if (error !== undefined && error !== null) return;
          p.acked++;
          p.ackedNumbers.add(n);
        });
      }
    }, 10);
    return p;
  }
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.client.endAsync(true);
  }
}

interface Counts {
  readings: number;
  readingsAcked: number;
  predictionsAcked: number;
}

async function run(design: Design, brokerName: BrokerName): Promise<Record<string, unknown>> {
  const broker = brokerName === "mosquitto" ? await startMosquitto() : await embeddedBroker();
  const delivered = new Set<number>();
  let readings = 0;
  let holding = false;
  /** Predictions held while their route is down: acknowledged once it is back. */
  let held: ReceivedMessage[] = [];
  let backlogDrainedAt: number | undefined;
  /** Predictions sent before the route came back (0: not back yet), and how many of them were delivered. */
  let backlog = 0;
  let backlogDelivered = 0;
  const onMessage = (m: ReceivedMessage) => {
    if (m.topic === READINGS) {
      readings++;
      m.ack();
      return;
    }
    if (holding) {
      held.push(m);
      return;
    }
    const { n } = JSON.parse(m.payload.toString()) as { n: number };
    m.ack();
    if (delivered.has(n)) return;
    delivered.add(n);
    if (n < backlog && ++backlogDelivered === backlog) backlogDrainedAt = Date.now();
  };
  const consumer = (clientId: string, topics: string[]) =>
    new MqttConsumer({
      mqtt: { url: broker.url },
      clientId,
      topics,
      deadLetterTopic: "fan/deadletter",
      log,
      onMessage,
      onConnectionLost: () => (held = []),
    });
  const consumers: Record<string, MqttConsumer> = {};
  if (design === "one-session") consumers.all = consumer("iso", [READINGS, PREDICTIONS]);
  else {
    consumers.readings = consumer("iso-readings", [READINGS]);
    consumers.predictions = consumer("iso-predictions", [PREDICTIONS]);
  }
  await Promise.all(Object.values(consumers).map((c) => c.start()));
  const [pubReadings, pubPredictions] = await Promise.all([
    Publisher.start(broker.url, READINGS, "iso-pub-readings"),
    Publisher.start(broker.url, PREDICTIONS, "iso-pub-predictions"),
  ]);
  const snap = (): Counts => ({
    readings,
    readingsAcked: pubReadings.acked,
    predictionsAcked: pubPredictions.acked,
  });
  const perSecond = (a: Counts, b: Counts, ms: number) =>
    Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Math.round((v - a[k as keyof Counts]) / (ms / 1000))]));
  const report: Record<string, unknown> = { design, broker: brokerName, rate };
  const c0 = snap();
  await sleep(phases.before);
  const c1 = snap();
  // The anomaly route fails: the one session holds its messages unacknowledged (the only way one
  // session can hold back one topic); a session of its own is paused, or disconnected (parked).
  holding = true;
  if (design === "per-filter") consumers.predictions?.pause("route", "down");
  if (design === "per-filter-parked") await consumers.predictions?.close();
  const timeline: number[] = [];
  const publishTimeline: number[] = [];
  let previous = snap();
  for (let s = 0; s < phases.hold / 1000; s++) {
    await sleep(1000);
    const now = snap();
    timeline.push(now.readings - previous.readings);
    publishTimeline.push(now.predictionsAcked - previous.predictionsAcked);
    previous = now;
  }
  const c2 = snap();
  holding = false;
  const backAt = Date.now();
  backlog = pubPredictions.sent;
  backlogDelivered = [...delivered].filter((n) => n < backlog).length;
  if (design === "one-session") for (const m of held.splice(0)) onMessage(m);
  if (design === "per-filter") consumers.predictions?.resume("route");
  if (design === "per-filter-parked") {
    consumers.predictions = consumer("iso-predictions", [PREDICTIONS]);
    await consumers.predictions.start();
  }
  await sleep(phases.after);
  const c3 = snap();
  await pubPredictions.stop();
  await pubReadings.stop();
  const acked = pubPredictions.ackedNumbers;
  const deadline = Date.now() + 60_000;
  while ([...acked].some((n) => !delivered.has(n)) && Date.now() < deadline) await sleep(500);
  Object.assign(report, {
    before: perSecond(c0, c1, phases.before),
    hold: perSecond(c1, c2, phases.hold),
    after: perSecond(c2, c3, phases.after),
    readingsPerSecondDuringHold: timeline,
    predictionsPublishedPerSecondDuringHold: publishTimeline,
    predictionsPublished: acked.size,
    predictionsLost: [...acked].filter((n) => !delivered.has(n)).length,
    backlogDrainedS: backlogDrainedAt === undefined ? null : Math.round((backlogDrainedAt - backAt) / 100) / 10,
  });
  await Promise.all(Object.values(consumers).map((c) => c.close()));
  await broker.stop();
  return report;
}

/** The connector process's CPU per 1,000 messages with `topic` as given (one session, or one per filter). */
async function cost(topic: string): Promise<Record<string, unknown>> {
  const broker = await startMosquitto();
  const gateway = new GatewayStandIn();
  gateway.hold = false;
  gateway.functions = [
    { name: "predict", annotations: { topic: READINGS }, availableReplicas: 1 },
    { name: "health", annotations: { topic: PREDICTIONS }, availableReplicas: 1 },
  ];
  const url = await gateway.listen();
  const secrets = await writeGatewaySecrets("fanwatch-isolation-", STAND_IN_USER, STAND_IN_PASSWORD);
  const child = spawnCli(["connector"], {
    gateway_url: url,
    broker: broker.url,
    basic_auth: "true",
    secret_mount_path: secrets,
    port: String(await freePort()),
    topic,
    client_id: "isolation-cost",
    NODE_OPTIONS: CONNECTOR_NODE_OPTIONS,
  });
  try {
    await waitForOutput(child, /connector running/);
    const publishers = await Promise.all([
      Publisher.start(broker.url, READINGS, "cost-readings"),
      Publisher.start(broker.url, PREDICTIONS, "cost-predictions"),
    ]);
    await sleep(3_000); // warm-up
    const [cpu0, delivered0] = [await cpuSeconds(child.pid), gateway.delivered.length];
    const bodies0 = delivered0;
    await sleep(Number(values.seconds) * 1000);
    const cpu1 = await cpuSeconds(child.pid);
    const messages = gateway.delivered
      .slice(bodies0)
      .reduce((n, body) => n + (JSON.parse(body) as unknown[]).length, 0);
    await Promise.all(publishers.map((p) => p.stop()));
    return {
      topic,
      sessions: topic.split(",").length,
      messagesPerSecond: Math.round(messages / Number(values.seconds)),
      cpuMsPer1000: Math.round(((cpu1 - cpu0) * 10_000_000) / messages) / 10,
    };
  } finally {
    await terminate(child);
    await gateway.close();
    await broker.stop();
    await rm(secrets, { recursive: true, force: true });
  }
}

if (values.cost) {
  for (let round = 0; round < Number(values.rounds); round++)
    for (const topic of ["fan/+", `${READINGS},${PREDICTIONS}`]) console.log(JSON.stringify(await cost(topic)));
} else
  for (const brokerName of brokers)
    for (const design of designs) {
      const result = await run(design, brokerName);
      console.log(JSON.stringify(result));
    }

/** The embedded broker, with the stop() the benchmark calls on either broker. */
async function embeddedBroker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const broker = new EmbeddedBroker({ port: 0 });
  await broker.start();
  return { url: broker.url, stop: () => broker.close() };
}
