import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger, readableLine } from "../../lib/infra/log.js";

describe("log lines on a terminal (readableLine)", () => {
  it("renders an error record as one line with its message and no stack", () => {
    const lines: string[] = [];
    const log = createLogger("score", "info", (line) => void lines.push(line));
    const error = new Error("model missing\nsecond line of the message");
    log.error({ err: error, event: "handler_threw", path: "/" }, "handler threw");
    assert.equal(lines.length, 1);
    const shown = readableLine(lines[0] ?? "");
    assert.equal(shown, "error score: handler threw: model missing (event=handler_threw, path=/)");
    assert.ok(!shown.includes("\n"));
    assert.ok(!shown.includes("at "), "no stack frame");
  });

  it("keeps the fields a record carries, and leaves lines that are not records as they are", () => {
    const record = JSON.stringify({ level: 40, time: "t", service: "connector", msg: "holding", held: 3, reason: "x" });
    assert.equal(readableLine(record), "warn  connector: holding (held=3, reason=x)");
    assert.equal(
      readableLine("score listening on port 3000 (Ctrl-C to stop)"),
      "score listening on port 3000 (Ctrl-C to stop)",
    );
    assert.equal(readableLine("{not json"), "{not json");
  });
});
