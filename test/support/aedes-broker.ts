import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Aedes, type AedesOptions } from "aedes";
import { topicMatches } from "../../lib/mqtt/topic-filter.js";

/**
 * An MQTT broker in this process (aedes, as `fanwatch start` embeds), for the unit tier: no
 * Debian binary, nothing to install. What a test with Mosquitto does with signals it does here
 * with hooks: `hold` is a broker that takes a publish and does not answer it (SIGSTOP), and
 * `dropConnections` closes every connection as a restart does, keeping the sessions and the
 * messages they have not acknowledged, as Mosquitto's persistence does.
 */
export interface InProcessBroker {
  url: string;
  port: number;
  /**
   * From now on, publishes to topics matching `filter` are neither acknowledged nor delivered
   * until `release()`; the client that sent one is read no further meanwhile, as by a frozen broker.
   */
  hold(filter: string): void;
  /** Publishes held so far and not yet released. */
  readonly held: number;
  /** Lets every held publish through and holds no more. */
  release(): void;
  /** Closes every client's connection; persistent sessions keep what was not acknowledged. */
  dropConnections(): Promise<void>;
  close(): Promise<void>;
}

export async function startAedes(options: Pick<AedesOptions, "authorizeSubscribe"> = {}): Promise<InProcessBroker> {
  const aedes = await Aedes.createBroker();
  const filters: string[] = [];
  let waiting: Array<() => void> = [];
  aedes.authorizePublish = (_client, packet, callback) => {
    if (filters.some((f) => topicMatches(f, packet.topic))) waiting.push(() => callback(null));
    else callback(null);
  };
  if (options.authorizeSubscribe !== undefined) aedes.authorizeSubscribe = options.authorizeSubscribe;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const release = () => {
    filters.length = 0;
    const held = waiting;
    waiting = [];
    for (const go of held) go();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    hold: (filter) => void filters.push(filter),
    get held() {
      return waiting.length;
    },
    release,
    async dropConnections() {
      const closed = [...sockets].map((s) => once(s, "close"));
      for (const socket of sockets) socket.destroy();
      await Promise.all(closed);
    },
    async close() {
      release();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
