import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../lib/infra/net.js";
import { findNatsServer, NatsServerProcess } from "../../runtime/system/nats.js";

export interface TestNats {
  url: string;
  port: number;
  readonly pid: number | undefined;
  /** Why the server ended by itself (a crash), with its last lines; undefined while it runs or after a stop asked for. */
  readonly exited: string | undefined;
  /** Kills the server outright (SIGKILL: no flush, as a crash or a pulled plug). */
  kill(): Promise<void>;
  /** Stops the server (SIGTERM: JetStream flushes) and keeps its store: `restart` starts it again on it. */
  halt(): Promise<void>;
  /** Starts it again on the same port with the same store directory (stopping it first if it runs). */
  restart(): Promise<void>;
  /** Stops the server and deletes its store. */
  stop(): Promise<void>;
}

/**
 * A real nats-server with JetStream on a free port and a temporary store directory, ready when
 * this resolves ("Server is ready"). Fails naming the package when nats-server is not installed.
 */
export async function startNats(): Promise<TestNats> {
  const binary = findNatsServer();
  if (binary === undefined)
    throw new Error("nats-server is missing: apt-get install -y nats-server (or set NATS_SERVER to its path)");
  const storeDir = await mkdtemp(join(tmpdir(), "fanwatch-nats-"));
  const port = await freePort();
  let exited: string | undefined;
  const started = async () => {
    const server = new NatsServerProcess({ binary, port, storeDir });
    await server.start();
    exited = undefined;
    // A server that ends by itself fails tests with "connection refused": say why, where CI shows it.
    void server.closed.then((error) => {
      if (error === undefined) return;
      exited = `test nats-server on port ${port} ${error.message}; its last lines:\n${server.output()}`;
      console.error(exited);
    });
    return server;
  };
  let server: NatsServerProcess | undefined = await started().catch(async (error: unknown) => {
    await rm(storeDir, { recursive: true, force: true });
    throw error;
  });
  return {
    url: server.url,
    port,
    get pid() {
      return server?.pid;
    },
    get exited() {
      return exited;
    },
    async kill() {
      await server?.close();
      server = undefined;
    },
    async halt() {
      await server?.drain();
      server = undefined;
    },
    async restart() {
      await server?.drain();
      server = await started();
    },
    async stop() {
      await server?.drain();
      server = undefined;
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}
