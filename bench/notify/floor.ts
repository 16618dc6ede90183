import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { HEALTH_EVENTS_STREAM, siteEventSubjects } from "../../lib/nats/health-events.js";
import { clock } from "./stats.js";

/**
 * The floor the notifier's latency is compared with: a plain durable pull consumer on the same
 * stream, filter and nats-server (acknowledging each message), in a connection of its own. It sees
 * the very transitions the notifier sends, so both are timed on the same publishes at the same
 * moment: what the notifier adds is its latency minus this.
 */
export class FloorConsumer {
  /** Receipt time (clock()) by transition id (the message id). */
  readonly received = new Map<string, number>();
  readonly #loop: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly messages: ConsumerMessages,
  ) {
    this.#loop = this.#read();
  }

  static async start(url: string, site: string): Promise<FloorConsumer> {
    const nc = await connect({ servers: url, name: "bench-notify-floor" });
    const name = "bench-floor";
    await (
      await jetstreamManager(nc)
    ).consumers.add(HEALTH_EVENTS_STREAM, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
      filter_subject: siteEventSubjects(site),
    });
    const consumer = await jetstream(nc).consumers.get(HEALTH_EVENTS_STREAM, name);
    return new FloorConsumer(nc, await consumer.consume());
  }

  async #read(): Promise<void> {
    for await (const msg of this.messages) {
      const at = clock();
      const id = msg.headers?.get("Nats-Msg-Id");
      if (id !== undefined && id !== "" && !this.received.has(id)) this.received.set(id, at);
      msg.ack();
    }
  }

  async stop(): Promise<void> {
    this.messages.stop();
    await this.#loop.catch(() => {});
    await this.nc.close();
  }
}
