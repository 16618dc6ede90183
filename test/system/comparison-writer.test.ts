import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { ComparisonWriter } from "../../functions/predict/comparison-writer.js";
import { createLogger } from "../../lib/infra/log.js";
import { eventually } from "../support/eventually.js";

/**
 * A stand-in for a NATS server that holds each client's handshake until told to go on: the test
 * decides when a connection attempt completes. It speaks only the handshake (INFO, then PONG to
 * the client's PING) and counts the client sockets still open.
 */
async function slowNats(): Promise<{ url: string; server: Server; open: Set<Socket>; release(): void }> {
  const open = new Set<Socket>();
  const held: Socket[] = [];
  const server = createServer((socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (data: Buffer) => {
      if (data.toString().includes("PING")) socket.write("PONG\r\n");
    });
    held.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const info = { server_id: "stand-in", version: "2.10.0", proto: 1, max_payload: 1_048_576, headers: true };
  return {
    url: `nats://127.0.0.1:${port}`,
    server,
    open,
    release: () => {
      for (const socket of held.splice(0)) socket.write(`INFO ${JSON.stringify(info)}\r\n`);
    },
  };
}

describe("predict's comparison writer", () => {
  const servers: Server[] = [];
  after(() => {
    for (const server of servers) server.close();
  });

  it("closed while its connection attempt is under way, lets go of the connection once it is made", async () => {
    const nats = await slowNats();
    servers.push(nats.server);
    const writer = new ComparisonWriter({
      url: nats.url,
      everyMs: 60_000,
      log: createLogger("predict", "silent"),
      current: () => undefined,
    });
    await writer.start();
    await eventually("the writer connecting", () => nats.open.size === 1);
    await writer.close();
    nats.release(); // the attempt completes after the close
    await eventually("the writer's connection closed", () => nats.open.size === 0);
    assert.equal(nats.open.size, 0);
  });
});
