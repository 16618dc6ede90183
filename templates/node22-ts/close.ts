import type { Server } from "node:http";
import type { Socket } from "node:net";

/** How long requests in flight get by default before their connections are closed. */
export const DEFAULT_CLOSE_DEADLINE_MS = 2_000;

export interface ServerCloser {
  /**
   * Stops listening; closes at once the connections that carry no request (idle keep-alive ones,
   * and those that never sent one: a browser opens spare connections to a page it showed, and
   * Node counts those as busy); lets the requests in flight finish for `deadlineMs`, then closes
   * what is left. Resolves once every connection is gone. Safe to repeat.
   */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * The one close policy of every HTTP server fanwatch runs: the function server's. The template
 * builds alone, so this is a copy of lib/infra/http/close.ts; test/unit/server-close.test.ts runs
 * one table of cases against both. Call it right after createServer(): it counts requests from
 * the first connection on.
 */
export function serverCloser(server: Server): ServerCloser {
  const requests = new Map<Socket, number>();
  let closing: Promise<void> | undefined;
  server.on("connection", (socket: Socket) => {
    requests.set(socket, 0);
    socket.once("close", () => requests.delete(socket));
  });
  server.on("request", (req, res) => {
    const socket = req.socket;
    requests.set(socket, (requests.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const left = (requests.get(socket) ?? 1) - 1;
      if (requests.has(socket)) requests.set(socket, left);
      // Closing: a connection whose last request is answered goes now, not at the deadline.
      if (closing !== undefined && left === 0) socket.destroySoon();
    });
  });
  return {
    close(deadlineMs = DEFAULT_CLOSE_DEADLINE_MS) {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) {
          for (const socket of requests.keys()) socket.destroy();
          return resolve();
        }
        const deadline = setTimeout(() => server.closeAllConnections(), deadlineMs);
        server.close(() => {
          clearTimeout(deadline);
          resolve();
        });
        server.closeIdleConnections();
        for (const [socket, open] of requests) if (open === 0) socket.destroy();
      });
      return closing;
    },
  };
}
