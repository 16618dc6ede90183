// The ceiling for bench:score: a bare node:http server that only parses the JSON body and answers
// JSON, with no validation, model or framework. Nothing that scores can answer faster.
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? 3000);
createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { params?: number[]; instances?: number[][] };
    const answer =
      body.params !== undefined
        ? { fault: 0, probability: 0 }
        : { predictions: (body.instances ?? []).map(() => ({ fault: 0, probability: 0 })) };
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify(answer));
  });
}).listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
