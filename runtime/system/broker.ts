import { timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { Aedes } from "aedes";
import type { Logger } from "../../lib/infra/log.js";
import { PacketTooLargeError } from "../../lib/errors.js";
import { PacketSizeGuard } from "./packet-size-guard.js";

/** As the shipped Mosquitto's max_packet_size: readings are under 200 bytes, dead letters carry up to 1 KiB escaped. */
export const MAX_PACKET_BYTES = 16 * 1024;
/** Connections at most; the broker is on loopback, so this only bounds a runaway local client. */
const MAX_CONNECTIONS = 1_000;

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** True when the asked-for port was taken and the broker fell back to a free one. */
  movedFrom: number | undefined;
  close(): Promise<void>;
}

/**
 * The single-machine broker: aedes on 127.0.0.1 (nothing outside this machine can reach it). If
 * `port` is taken (a Mosquitto already running, say) it takes a free port instead, so that
 * `fanwatch start` always works; the caller says so. With credentials, every client must log in.
 *
 * Memory per client is bounded: a packet over `maxPacketBytes` closes its connection before its body
 * is read (logged), packets sent before CONNACK are capped by aedes's queueLimit (42), a subscriber
 * that stops reading is dropped after drainTimeout, and aedes reads a client's next chunk only once
 * the previous one is handled. Not bounded: the QoS 1 messages kept for an offline persistent
 * session (aedes keeps them in memory, as Mosquitto keeps them on disk), which is how the connector
 * gets readings published while it restarts.
 */
export async function startEmbeddedBroker(options: {
  port: number;
  username?: string;
  password?: string;
  maxPacketBytes?: number;
  log?: Logger;
}): Promise<EmbeddedBroker> {
  const maxPacketBytes = options.maxPacketBytes ?? MAX_PACKET_BYTES;
  const aedes = await Aedes.createBroker({ concurrency: 1000, drainTimeout: 30_000 });
  if (options.username !== undefined || options.password !== undefined) {
    const expected = Buffer.from(`${options.username ?? ""}\0${options.password ?? ""}`);
    aedes.authenticate = (_client, username, password, done) => {
      const given = Buffer.from(`${username ?? ""}\0${password?.toString() ?? ""}`);
      done(null, given.length === expected.length && timingSafeEqual(given, expected));
    };
  }
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
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
    aedes.handle(Duplex.from({ readable: guard, writable: socket }));
  });
  server.maxConnections = MAX_CONNECTIONS;
  let movedFrom: number | undefined;
  try {
    await listen(server, options.port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || options.port === 0) throw error;
    movedFrom = options.port;
    await listen(server, 0);
  }
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    movedFrom,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
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
