import { timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

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
 */
export async function startEmbeddedBroker(options: { port: number; username?: string; password?: string }): Promise<EmbeddedBroker> {
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
    aedes.handle(socket);
  });
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
