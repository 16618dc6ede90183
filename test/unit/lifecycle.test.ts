import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { Lifecycle } from "../../runtime/system/lifecycle.js";

/** A lifecycle whose warnings and console lines are kept. */
function lifecycle(stepTimeoutMs?: number): {
  parts: Lifecycle;
  warnings: Array<Record<string, unknown>>;
  said: string[];
} {
  const warnings: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: "warn" },
    { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const said: string[] = [];
  return {
    parts: new Lifecycle({
      log,
      say: (line) => said.push(line),
      ...(stepTimeoutMs === undefined ? {} : { stepTimeoutMs }),
    }),
    warnings,
    said,
  };
}

describe("lifecycle", () => {
  it("drains every part, then closes every part, each in reverse order of start", async () => {
    const { parts } = lifecycle();
    const events: string[] = [];
    for (const name of ["broker", "gateway", "page", "connector", "fleet"]) {
      await parts.start({
        name,
        start: () => events.push(`start ${name}`),
        drain: () => void events.push(`drain ${name}`),
        close: () => void events.push(`close ${name}`),
      });
    }
    await parts.stop();
    assert.deepEqual(events, [
      ...["broker", "gateway", "page", "connector", "fleet"].map((n) => `start ${n}`),
      ...["fleet", "connector", "page", "gateway", "broker"].map((n) => `drain ${n}`),
      ...["fleet", "connector", "page", "gateway", "broker"].map((n) => `close ${n}`),
    ]);
  });

  it("waits for each step before the next, and gives a part what its start returned", async () => {
    const { parts } = lifecycle();
    const events: string[] = [];
    await parts.start({
      name: "broker",
      start: () => "mqtt://127.0.0.1:1883",
      close: (url) => void events.push(`close ${url}`),
    });
    await parts.start({
      name: "connector",
      start: () => ({ inFlight: 3 }),
      drain: async (c) => {
        await new Promise((resolve) => setImmediate(resolve));
        events.push(`drained ${c.inFlight} in flight`);
      },
    });
    await parts.stop();
    assert.deepEqual(events, ["drained 3 in flight", "close mqtt://127.0.0.1:1883"]);
  });

  it("stops once, however often stop() is called, also while it is stopping", async () => {
    const { parts } = lifecycle();
    let closes = 0;
    await parts.start({ name: "gateway", start: () => undefined, close: () => void closes++ });
    await Promise.all([parts.stop(), parts.stop()]);
    await parts.stop();
    assert.equal(closes, 1);
    await assert.rejects(parts.start({ name: "late", start: () => undefined }), /cannot start late: stopping/);
  });

  it("logs a part that fails to drain or close, says so on the console, and stops the others", async () => {
    const { parts, warnings, said } = lifecycle();
    const closed: string[] = [];
    await parts.start({ name: "broker", start: () => undefined, close: () => void closed.push("broker") });
    await parts.start({
      name: "writer",
      start: () => undefined,
      drain: () => {
        throw new Error("InfluxDB is unreachable");
      },
      close: () => Promise.reject(new Error("socket already closed")),
    });
    await parts.start({ name: "fleet", start: () => undefined, close: () => void closed.push("fleet") });
    await parts.stop();
    assert.deepEqual(closed, ["fleet", "broker"]);
    assert.deepEqual(
      warnings.map((w) => [w.event, w.part, w.phase, w.err]),
      [
        ["stop_failed", "writer", "drain", "InfluxDB is unreachable"],
        ["stop_failed", "writer", "close", "socket already closed"],
      ],
    );
    assert.deepEqual(said, [
      "writer failed to drain: InfluxDB is unreachable; stopping the rest",
      "writer failed to close: socket already closed; stopping the rest",
    ]);
  });

  it("goes on past a part that never finishes closing", async () => {
    const { parts, warnings } = lifecycle(20);
    const closed: string[] = [];
    await parts.start({ name: "broker", start: () => undefined, close: () => void closed.push("broker") });
    await parts.start({ name: "stuck", start: () => undefined, close: () => new Promise(() => {}) });
    await parts.stop();
    assert.deepEqual(closed, ["broker"]);
    assert.deepEqual(
      warnings.map((w) => [w.event, w.part, w.phase]),
      [["stop_timeout", "stuck", "close"]],
    );
  });

  it("registers no part whose start failed", async () => {
    const { parts } = lifecycle();
    let closes = 0;
    await assert.rejects(
      parts.start({
        name: "gateway",
        start: () => Promise.reject(new Error("port 8080 is in use")),
        close: () => void closes++,
      }),
      /port 8080 is in use/,
    );
    await parts.stop();
    assert.equal(closes, 0);
  });
});
