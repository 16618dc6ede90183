import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freePort } from "../../lib/infra/net.js";
import { HttpStatusError } from "../../lib/errors.js";
import { backoffDelay, isRetryable, retry, systemClock, type Clock } from "../../lib/infra/retry.js";

/** Time moves only when a retry waits: each wait is recorded and, unless held, ends at once. */
class FakeClock implements Clock {
  time = 1_000;
  readonly waits: number[] = [];
  hold = false;
  now(): number {
    return this.time;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.waits.push(ms);
    signal?.throwIfAborted();
    if (!this.hold) {
      this.time += ms;
      return;
    }
    // Held: only an abort ends the wait, and throwIfAborted() throws the signal's reason as it is.
    await new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
    signal?.throwIfAborted();
  }
}

/** An attempt that fails `failures` times with `error`, then answers "ok". */
function failing(failures: number, error: unknown = new HttpStatusError(503, "unavailable")) {
  const calls: number[] = [];
  const attempt = async (n: number) => {
    calls.push(n);
    if (calls.length <= failures) throw error;
    return "ok";
  };
  return { attempt, calls };
}

const middle = () => 0.5; // no jitter: "half" jitter multiplies by 0.5 + 0.5

describe("backoffDelay", () => {
  it("doubles per retry up to the cap", () => {
    const delays = [1, 2, 3, 4, 5, 6].map((n) => backoffDelay({ baseMs: 100, capMs: 1_000 }, n, middle));
    assert.deepEqual(delays, [100, 200, 400, 800, 1_000, 1_000]);
  });

  it("caps at 30 s unless told otherwise", () => {
    assert.equal(backoffDelay({ baseMs: 500 }, 40, middle), 30_000);
  });

  it("spreads half jitter over ±50% and full jitter over [0, delay)", () => {
    const base = { baseMs: 100 };
    assert.equal(
      backoffDelay(base, 3, () => 0),
      200,
    );
    assert.equal(
      backoffDelay(base, 3, () => 0.999_999),
      400 * 1.499_999,
    );
    assert.equal(
      backoffDelay({ ...base, jitter: "full" }, 3, () => 0),
      0,
    );
    assert.equal(
      backoffDelay({ ...base, jitter: "full" }, 3, () => 0.75),
      300,
    );
    for (let i = 0; i < 1_000; i++) {
      const half = backoffDelay(base, 2);
      const full = backoffDelay({ ...base, jitter: "full" }, 2);
      assert.ok(half >= 100 && half < 300, `half ${half}`);
      assert.ok(full >= 0 && full < 200, `full ${full}`);
    }
  });
});

describe("isRetryable", () => {
  it("retries 429, 408 and 5xx, not other 4xx", () => {
    for (const status of [429, 408, 500, 502, 503, 504])
      assert.equal(isRetryable(new HttpStatusError(status, "x")), true, String(status));
    for (const status of [400, 401, 403, 404, 413, 422])
      assert.equal(isRetryable(new HttpStatusError(status, "x")), false, String(status));
  });

  it("retries timeouts and connection errors, also when fetch wraps them in its cause", async () => {
    assert.equal(isRetryable(new DOMException("timed out", "TimeoutError")), true);
    assert.equal(isRetryable(new DOMException("aborted", "AbortError")), true);
    assert.equal(isRetryable(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })), true);
    // A real refused connection, as fetch reports it: TypeError("fetch failed") caused by ECONNREFUSED.
    const refused = await fetch(`http://127.0.0.1:${await freePort()}/`).catch((error: unknown) => error);
    assert.equal(isRetryable(refused), true);
  });

  it("does not retry a bug or an error that says it is final", () => {
    assert.equal(isRetryable(new TypeError("x is not a function")), false);
    assert.equal(isRetryable(Object.assign(new Error("no"), { retryable: false, code: "ECONNRESET" })), false);
    assert.equal(isRetryable(Object.assign(new Error("later"), { retryable: true })), true);
    assert.equal(isRetryable("a string"), false);
  });
});

describe("retry", () => {
  it("retries a retryable failure with doubling delays until it succeeds", async () => {
    const clock = new FakeClock();
    const { attempt, calls } = failing(4);
    const retries: number[] = [];
    const result = await retry(attempt, {
      baseMs: 100,
      capMs: 500,
      clock,
      random: middle,
      onRetry: (_e, n) => retries.push(n),
    });
    assert.equal(result, "ok");
    assert.deepEqual(calls, [1, 2, 3, 4, 5]);
    assert.deepEqual(clock.waits, [100, 200, 400, 500]);
    assert.deepEqual(retries, [1, 2, 3, 4]);
  });

  it("does not retry a definitive rejection", async () => {
    const clock = new FakeClock();
    const { attempt, calls } = failing(1, new HttpStatusError(400, "bad reading"));
    await assert.rejects(retry(attempt, { baseMs: 100, clock }), { name: "HttpStatusError", status: 400 });
    assert.deepEqual(calls, [1]);
    assert.deepEqual(clock.waits, []);
  });

  it("takes a classification of its own", async () => {
    const { attempt, calls } = failing(2, new Error("anything"));
    assert.equal(await retry(attempt, { baseMs: 1, clock: new FakeClock(), retryable: () => true }), "ok");
    assert.equal(calls.length, 3);
  });

  it("gives up after the attempt limit with the last error", async () => {
    const clock = new FakeClock();
    const { attempt, calls } = failing(10);
    await assert.rejects(retry(attempt, { baseMs: 100, attempts: 3, clock }), { status: 503 });
    assert.deepEqual(calls, [1, 2, 3]);
    assert.equal(clock.waits.length, 2);
  });

  it("makes no retry that would wait past the deadline", async () => {
    const clock = new FakeClock();
    const { attempt, calls } = failing(10);
    // Waits of 100, 200 and 400 end at +700; the next one (800) would pass +1000.
    await assert.rejects(retry(attempt, { baseMs: 100, deadline: clock.now() + 1_000, clock, random: middle }), {
      status: 503,
    });
    assert.deepEqual(clock.waits, [100, 200, 400]);
    assert.deepEqual(calls, [1, 2, 3, 4]);
  });

  it("ends a wait at once when the signal aborts, without another attempt", async () => {
    const clock = new FakeClock();
    clock.hold = true; // the wait would never end by itself
    const abort = new AbortController();
    const { attempt, calls } = failing(10);
    const running = retry(attempt, {
      baseMs: 60_000,
      clock,
      signal: abort.signal,
      onRetry: () => abort.abort(new Error("stopping")),
    });
    await assert.rejects(running, { message: "stopping" });
    assert.deepEqual(calls, [1]);
  });

  it("makes no attempt once aborted, and does not retry an attempt the signal aborted", async () => {
    const abort = new AbortController();
    abort.abort(new Error("stopped"));
    const first = failing(0);
    await assert.rejects(retry(first.attempt, { baseMs: 1, clock: new FakeClock(), signal: abort.signal }), {
      message: "stopped",
    });
    assert.deepEqual(first.calls, []);

    const during = new AbortController();
    const calls: number[] = [];
    const attempt = async (n: number) => {
      calls.push(n);
      during.abort(new Error("shutting down"));
      throw new DOMException("aborted", "AbortError"); // would be retryable as a timeout
    };
    await assert.rejects(retry(attempt, { baseMs: 1, clock: new FakeClock(), signal: during.signal }), {
      message: "shutting down",
    });
    assert.deepEqual(calls, [1]);
  });

  it("the system clock's sleep ends when its signal aborts", async () => {
    const abort = new AbortController();
    const waiting = systemClock.sleep(3_600_000, abort.signal);
    abort.abort(new Error("now"));
    await assert.rejects(waiting, { message: "now" });
  });
});
