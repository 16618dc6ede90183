import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Circuit } from "../../connectors/mqtt/circuit.js";
import { ManualClock } from "../support/manual-clock.js";

describe("a function's circuit breaker, on a clock the test moves", () => {
  function circuit(threshold: number) {
    const clock = new ManualClock();
    const changes: string[] = [];
    const stop = new AbortController();
    const c = new Circuit({
      threshold,
      backoff: { baseMs: 100, capMs: 400 },
      clock,
      signal: stop.signal,
      onChange: (open, reason) => changes.push(open ? `open: ${reason}` : "closed"),
    });
    return { c, clock, changes, stop };
  }

  it("opens after `threshold` failures in a row, not before, and a success in between starts the count again", async () => {
    const { c, changes } = circuit(3);
    c.failed("503");
    c.failed("503");
    c.succeeded();
    c.failed("503");
    c.failed("503");
    assert.deepEqual([c.open, changes], [false, []]);
    c.failed("refused");
    assert.deepEqual([c.open, changes], [true, ["open: refused"]]);
  });

  it("while open lets no one through until the backoff passed, then exactly one probe; its success lets everyone through", async () => {
    const { c, clock, changes } = circuit(1);
    c.failed("503");
    const through: number[] = [];
    const callers = [1, 2, 3].map((n) => c.admit().then(() => through.push(n)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(through, []);
    clock.advance();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(through, [1], "one probe");
    c.succeeded();
    await Promise.all(callers);
    assert.deepEqual(through, [1, 2, 3]);
    assert.deepEqual(changes, ["open: 503", "closed"]);
  });

  it("a failed probe opens it again for longer, up to the cap", async () => {
    const { c, clock } = circuit(1);
    const waits: number[] = [];
    const sleep = clock.sleep.bind(clock);
    clock.sleep = (ms, signal) => (waits.push(ms), sleep(ms, signal));
    c.failed("503");
    for (let probe = 0; probe < 4; probe++) {
      const admitted = c.admit();
      clock.advance();
      await admitted;
      c.failed("503");
    }
    assert.equal(waits.length, 5);
    // Doubling from 100 ms with ±50% jitter, capped at 400 ms (600 with jitter).
    assert.ok((waits[0] as number) >= 50 && (waits[0] as number) < 150, `first wait ${waits[0]}`);
    assert.ok(
      waits.slice(2).every((w) => w >= 200 && w < 600),
      `capped waits ${waits.join(", ")}`,
    );
  });

  it("stays closed when an attempt sent before it opened succeeds, whatever its probe timer says later", async () => {
    const { c, clock, changes } = circuit(1);
    c.failed("503");
    c.succeeded(); // an answer to an attempt that was already on its way
    clock.advance(); // the probe's time comes
    await c.admit();
    c.failed("503");
    assert.deepEqual(
      changes,
      ["open: 503", "closed", "open: 503"],
      "a failure after closing opens it again, as from closed",
    );
  });

  it("stops every waiter when the connector stops", async () => {
    const { c, stop } = circuit(1);
    c.failed("503");
    const waiting = c.admit();
    stop.abort(new Error("stopping"));
    await assert.rejects(waiting, /stopping/);
  });
});
