import type { IncomingMessage } from "node:http";
import { BodyAbortedError, BodyTimeoutError, BodyTooLargeError } from "../../errors.js";

/** How long a client may take to send a whole body, unless the caller says otherwise. */
export const BODY_DEADLINE_MS = 10_000;

/**
 * Reads a request body of at most `limit` bytes (`source` says what sets the limit, for the
 * message). The one body reader of our servers; the function server keeps a copy
 * (templates/node22-ts/body.ts, readLimitedBody) because the template builds alone, and
 * test/unit/body-reader.test.ts runs one table of cases against both.
 *
 * - A declared Content-Length over the limit is refused before a byte is read; a body that
 *   streams past it is refused as soon as it does (BodyTooLargeError).
 * - The rest of a refused body is read and dropped, not cut off: a client still sending would
 *   otherwise see a reset connection rather than the answer. The deadline still holds for it.
 * - A client that leaves mid-body settles the read (BodyAbortedError).
 * - A body that has not ended within `deadlineMs` is refused (BodyTimeoutError) and its connection
 *   closed: a body that never ends would hold whatever waits for it.
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  source: string,
  deadlineMs = BODY_DEADLINE_MS,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (then: () => void): void => {
      if (settled) return;
      settled = true;
      then();
    };
    const refuse = (error: Error): void => settle(() => reject(error));
    const timer = setTimeout(() => {
      refuse(new BodyTimeoutError(`the body did not arrive within ${deadlineMs / 1000} s`));
      req.destroy();
    }, deadlineMs);
    // Node tells a request nothing more once its answer is out: a connection that closes then (the
    // client asked for `Connection: close`) would otherwise leave the deadline pending for nothing.
    const socket = req.socket;
    const done = (): void => {
      clearTimeout(timer);
      socket.off("close", closed);
    };
    const aborted = (cause?: Error): void => {
      done();
      refuse(new BodyAbortedError("the client closed the connection before sending the whole body", { cause }));
    };
    // A client that goes away mid-body ends neither way on every Node version: settle here too.
    const closed = (): void => (req.complete ? done() : aborted());
    socket.once("close", closed);
    req.once("close", closed);
    req.on("error", aborted);

    const chunks: Buffer[] = [];
    let size = 0;
    let dropping = false;
    const drop = (error: Error): void => {
      dropping = true;
      chunks.length = 0;
      refuse(error);
      req.resume(); // flowing, whatever a caller did: the rest is read and dropped
    };
    req.on("data", (chunk: Buffer) => {
      if (dropping) return;
      size += chunk.length;
      if (size > limit) drop(new BodyTooLargeError(`the body is over the limit of ${limit} bytes (${source})`));
      else chunks.push(chunk);
    });
    req.once("end", () => {
      done();
      settle(() => resolve(Buffer.concat(chunks, size)));
    });

    const declared = Number(req.headers["content-length"]);
    if (declared > limit)
      drop(new BodyTooLargeError(`the body is ${declared} bytes; the limit is ${limit} bytes (${source})`));
  });
}
