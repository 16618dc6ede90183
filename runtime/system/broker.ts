import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { Aedes } from "aedes";
import type { Logger } from "../../lib/infra/log.js";
import { PacketTooLargeError } from "../../lib/errors.js";
import { ServiceBase } from "../../lib/infra/service.js";
import { PacketSizeGuard } from "./packet-size-guard.js";
import type { BrokerAuth, BrokerIdentity } from "./broker-auth.js";

/** As the shipped Mosquitto's max_packet_size: readings are under 200 bytes, dead letters carry up to 1 KiB escaped. */
export const MAX_PACKET_BYTES = 16 * 1024;
/** Connections at most; the broker is on loopback, so this only bounds a runaway local client. */
const MAX_CONNECTIONS = 1_000;

export interface EmbeddedBrokerOptions {
  /** The port to listen on; a free one when it is taken (see `movedFrom`). */
  port: number;
  /**
   * Who may log in, with which client ids, and what each user may publish and read (the ACL):
   * `fanwatch start` always gives one. Without, every client is let in and may do anything (the
   * benchmarks' and some tests' broker).
   */
  auth?: BrokerAuth | undefined;
  maxPacketBytes?: number;
  log?: Logger;
}

/**
 * The single-machine broker: aedes on 127.0.0.1 (nothing outside this machine can reach it). If
 * `port` is taken (a Mosquitto already running, say) it takes a free port instead, so that
 * `fanwatch start` always works; the caller says so. With `auth` (runtime/system/broker-auth.ts),
 * every client logs in as a user of this run, anonymous clients are refused, a client id bound to
 * another user is refused, and publishes and subscriptions follow the production ACL: a refused
 * publish closes the client's connection (MQTT 3.1.1 lets a broker either drop it silently or
 * close; closing makes a forger's or a misconfigured part's attempt visible on both sides), a
 * refused subscription is granted with the failure code 0x80 (MQTT.js rejects the subscribe with
 * "Subscribe error"); each refusal is logged with the client id, user and address.
 *
 * Memory per client is bounded: a packet over `maxPacketBytes` closes its connection before its body
 * is read (logged), packets sent before CONNACK are capped by aedes's queueLimit (42), a subscriber
 * that stops reading is dropped after drainTimeout, and aedes reads a client's next chunk only once
 * the previous one is handled. Not bounded: the QoS 1 messages kept for an offline persistent
 * session (aedes keeps them in memory, as Mosquitto keeps them on disk), which is how the connector
 * gets readings published while it restarts.
 */
export class EmbeddedBroker extends ServiceBase {
  readonly name = "broker";
  #aedes: Aedes | undefined;
  readonly #sockets = new Set<Socket>();
  /** The address of each connection aedes handles, for log lines. */
  readonly #addresses = new WeakMap<object, string>();
  readonly #identities = new WeakMap<object, BrokerIdentity>();
  readonly #server: Server;
  #movedFrom: number | undefined;

  constructor(private readonly options: EmbeddedBrokerOptions) {
    super();
    const maxPacketBytes = options.maxPacketBytes ?? MAX_PACKET_BYTES;
    this.#server = createServer((socket) => {
      const aedes = this.#aedes;
      if (aedes === undefined) return void socket.destroy();
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      const guard = new PacketSizeGuard(maxPacketBytes);
      guard.on("error", (error: NodeJS.ErrnoException) => {
        // A connection closed mid-stream (every client's, when the broker stops) is not a bad packet.
        if (error.name === "AbortError" || error.code === "ERR_STREAM_PREMATURE_CLOSE") return void socket.destroy();
        const event = error instanceof PacketTooLargeError ? "packet_too_large" : "malformed_packet";
        options.log?.warn(
          { event, client: `${socket.remoteAddress}:${socket.remotePort}`, err: error.message },
          `embedded broker: ${error.message}; connection closed`,
        );
        socket.destroy();
      });
      socket.pipe(guard);
      const connection = Duplex.from({ readable: guard, writable: socket });
      this.#addresses.set(connection, `${socket.remoteAddress}:${socket.remotePort}`);
      aedes.handle(connection);
    });
    this.#server.maxConnections = MAX_CONNECTIONS;
  }

  get port(): number {
    return (this.#server.address() as { port: number } | null)?.port ?? 0;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** The port asked for, when it was taken and the broker fell back to a free one. */
  get movedFrom(): number | undefined {
    return this.#movedFrom;
  }

  protected async onStart(): Promise<void> {
    const { auth, port } = this.options;
    const aedes = await Aedes.createBroker({ concurrency: 1000, drainTimeout: 30_000 });
    this.#aedes = aedes;
    if (auth !== undefined) this.#guard(aedes, auth);
    try {
      await listen(this.#server, port);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || port === 0) throw error;
      this.#movedFrom = port;
      await listen(this.#server, 0);
    }
    // Past the start, a server error (the socket failing) ends the broker: its supervisor starts another.
    this.#server.on("error", (error) => this.ended(error));
  }

  /** aedes's hooks: every CONNECT logs in, every PUBLISH and SUBSCRIBE is checked against the ACL. */
  #guard(aedes: Aedes, auth: BrokerAuth): void {
    aedes.authenticate = (client, username, password, done) => {
      const address = this.#addresses.get(client.conn) ?? "unknown";
      auth.login({ clientId: client.id, clean: client.clean, address }, username, password).then(
        (outcome) => {
          if (!outcome.ok) {
            const error = Object.assign(new Error("refused"), { returnCode: outcome.returnCode });
            return done(error, false);
          }
          this.#identities.set(client, outcome.identity);
          client.conn.once("close", () => auth.closed(outcome.identity));
          done(null, true);
        },
        (error: unknown) => done(Object.assign(error as Error, { returnCode: 3 }), false),
      );
    };
    aedes.authorizePublish = (client, packet, done) => {
      // A will published once its client is gone is checked as that client (aedes passes it, or null when none is left).
      const identity = client === null ? undefined : this.#identities.get(client);
      if (identity !== undefined && auth.mayPublish(identity, packet.topic)) return done(null);
      done(new Error(`not authorized to publish to ${packet.topic}`));
    };
    aedes.authorizeSubscribe = (client, subscription, done) => {
      const identity = this.#identities.get(client);
      // null: granted with the failure code 0x80, the connection stays (MQTT 3.1.1 §3.9.3).
      done(null, identity !== undefined && auth.maySubscribe(identity, subscription.topic) ? subscription : null);
    };
  }

  /** Clients are disconnected at once: what they did not get stays with their sessions (or, in memory, goes). */
  protected async onClose(): Promise<void> {
    const aedes = this.#aedes;
    if (aedes !== undefined) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", onError);
      resolve();
    });
  });
}
