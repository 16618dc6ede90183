import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addressKey, AttemptThrottle } from "../../lib/infra/http/attempt-throttle.js";

/** Time that moves only when the test moves it. */
function clock(): { now(): number; time: number } {
  return {
    time: 0,
    now() {
      return this.time;
    },
  };
}

describe("AttemptThrottle", () => {
  it("lets a key fail maxFailures times, then makes it wait, and a success before the limit forgets it", () => {
    const time = clock();
    const throttle = new AttemptThrottle({ maxFailures: 3, firstWaitMs: 10_000, clock: time });
    assert.deepEqual(throttle.recordFailure("a"), { allowed: true, retryAfterSeconds: 0 });
    throttle.recordFailure("a");
    throttle.recordSuccess("a");
    assert.equal(throttle.size, 0, "a success forgets the key");
    throttle.recordFailure("a");
    throttle.recordFailure("a");
    assert.equal(throttle.check("a").allowed, true, "two failures after the success: still allowed");
    assert.deepEqual(throttle.recordFailure("a"), { allowed: false, retryAfterSeconds: 10 });
    assert.deepEqual(throttle.check("a"), { allowed: false, retryAfterSeconds: 10 });
    assert.equal(throttle.check("b").allowed, true, "another key is not held up");
    time.time = 9_001;
    assert.deepEqual(throttle.check("a"), { allowed: false, retryAfterSeconds: 1 }, "rounded up to whole seconds");
    time.time = 10_000;
    assert.equal(throttle.check("a").allowed, true, "the wait has passed");
  });

  it("doubles the wait for each further failure, up to the longest wait", () => {
    const time = clock();
    const throttle = new AttemptThrottle({ maxFailures: 1, firstWaitMs: 1_000, maxWaitMs: 5_000, clock: time });
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const verdict = throttle.recordFailure("a");
      waits.push(verdict.retryAfterSeconds);
      time.time += verdict.retryAfterSeconds * 1000;
    }
    assert.deepEqual(waits, [1, 2, 4, 5, 5]);
  });

  it("forgets a key's failures forgetAfterMs after its last failure or the end of its wait", () => {
    const time = clock();
    const throttle = new AttemptThrottle({ maxFailures: 2, firstWaitMs: 1_000, forgetAfterMs: 60_000, clock: time });
    throttle.recordFailure("a");
    time.time = 59_999;
    assert.equal(throttle.recordFailure("a").allowed, false, "a slow guesser is still counted");
    time.time = 59_999 + 1_000 + 60_000;
    assert.equal(throttle.check("a").allowed, true);
    assert.equal(throttle.size, 0, "forgotten");
    assert.equal(throttle.recordFailure("a").allowed, true, "starts afresh");
  });

  it("asking does not count: only failures make a key wait", () => {
    const throttle = new AttemptThrottle({ maxFailures: 1, clock: clock() });
    for (let i = 0; i < 10; i++) assert.equal(throttle.check("a").allowed, true);
    assert.equal(throttle.size, 0);
  });

  it("remembers at most maxKeys keys, pushing out the one that failed least recently", () => {
    const throttle = new AttemptThrottle({ maxFailures: 1, maxKeys: 100, clock: clock() });
    throttle.recordFailure("attacker");
    for (let i = 0; i < 99; i++) throttle.recordFailure(`flood-${i}`);
    throttle.recordFailure("attacker"); // failed again: now the most recent
    for (let i = 99; i < 100_000; i++) {
      throttle.recordFailure(`flood-${i}`);
      assert.ok(throttle.size <= 100);
    }
    assert.equal(throttle.size, 100);
    assert.equal(throttle.check("flood-99999").allowed, false, "the newest keys are kept");
    assert.equal(throttle.check("flood-0").allowed, true, "the oldest were pushed out");
  });

  it("refuses options that would make no sense", () => {
    assert.throws(() => new AttemptThrottle({ maxFailures: 0 }), /maxFailures must be a whole number of at least 1/);
    assert.throws(() => new AttemptThrottle({ maxKeys: 1.5 }), /maxKeys/);
  });
});

describe("addressKey", () => {
  it("keys IPv4 by address and IPv6 by its /64 network", () => {
    assert.equal(addressKey("192.0.2.7"), "192.0.2.7");
    assert.equal(addressKey("::ffff:192.0.2.7"), "192.0.2.7", "IPv4-mapped is the IPv4 address");
    assert.equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(addressKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64", "the same /64");
    assert.equal(addressKey("2001:0db8::1"), "2001:db8:0:0::/64");
    assert.equal(addressKey("::1"), "0:0:0:0::/64");
    assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
    assert.equal(addressKey("64:ff9b::192.0.2.1"), "64:ff9b:0:0::/64");
    assert.equal(addressKey(undefined), "unknown");
  });
});
